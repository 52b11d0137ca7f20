"""``offerhub export trial-balance|journal|entries|statement``: a streamed export to a file.

Runs against the configured database directly (the embedded one by default, started as
``offerhub serve`` does), reads one REPEATABLE READ snapshot and writes CSV or Parquet in
constant memory, with a progress line on stderr (rows written, rows/s). The file appears only
once it is complete: rows go to ``<out>.partial``, renamed at the end.
"""

import argparse
import asyncio
import contextlib
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Final, TextIO

import asyncpg

from api.exports import ExportFormat, export_chunks
from api.serve import apply_schema, database
from api.settings import Settings
from common.errors import NotFound
from common.times import format_time
from ledger import reads, reports
from ledger.report_types import LedgerPosition, Report

__all__ = ["Progress", "add_export_parser", "export_to_file", "run_export"]

REPORTS: Final = ("trial-balance", "journal", "entries", "statement")
_BEGINNING: Final = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
_END_OF_TIME: Final = datetime.fromisoformat("9999-01-01T00:00:00+00:00")


class ExportUsageError(ValueError):
    """An argument of ``offerhub export`` is missing or invalid; the message says which."""


def _moment(text: str) -> datetime:
    """An RFC 3339 time with a zone (``2026-01-12T10:00:00Z``)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    if moment.tzinfo is None or "T" not in text.upper():
        raise argparse.ArgumentTypeError(f"give a time with a zone, such as {text}T00:00:00Z")
    return moment


def add_export_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``offerhub export`` on the CLI's sub-commands."""
    parser = commands.add_parser("export", help="stream a ledger report to a CSV or Parquet file")
    parser.add_argument("report", choices=REPORTS)
    parser.add_argument("--marketplace", required=True, help="marketplace id or name")
    parser.add_argument("--from", dest="start", type=_moment, help="RFC 3339, inclusive")
    parser.add_argument("--to", dest="end", type=_moment, help="RFC 3339, exclusive")
    parser.add_argument("--as-of", dest="as_of", type=_moment, help="trial balance time")
    parser.add_argument("--account", help="ledger account id (statement, entries)")
    parser.add_argument("--currency", default="USD", choices=["USD"])
    parser.add_argument("--format", dest="format_name", choices=["csv", "parquet"], default="csv")
    parser.add_argument("--out", required=True, type=Path, help="file to write")


class Progress:
    """A carriage-return progress line: rows written and rows per second."""

    def __init__(self, stream: TextIO, interval_s: float = 0.2) -> None:
        self.rows = 0
        self._stream = stream
        self._interval_s = interval_s
        self._started = time.monotonic()
        self._shown = 0.0

    def rate(self) -> float:
        """Rows per second so far."""
        return self.rows / max(time.monotonic() - self._started, 1e-9)

    def update(self, rows: int) -> None:
        """Count ``rows`` more; redraw at most every ``interval_s``."""
        self.rows += rows
        now = time.monotonic()
        if now - self._shown >= self._interval_s:
            self._shown = now
            self._draw("\r")

    def finish(self) -> None:
        """Draw the final line."""
        self._draw("\r")
        self._stream.write("\n")
        self._stream.flush()

    def _draw(self, prefix: str) -> None:
        self._stream.write(f"{prefix}{self.rows:>12,} rows  {self.rate():>12,.0f} rows/s")
        self._stream.flush()


async def _marketplace_id(conn: asyncpg.Connection, given: str) -> str:
    found = await conn.fetchval(
        "SELECT id FROM marketplaces WHERE id = $1 OR name = $1 ORDER BY id = $1 DESC LIMIT 1",
        given,
    )
    if found is None:
        raise ExportUsageError(f"no marketplace {given!r}")
    return str(found)


async def _report(
    conn: asyncpg.Connection,
    marketplace_id: str,
    position: LedgerPosition,
    args: argparse.Namespace,
) -> Report:
    start, end = args.start or _BEGINNING, args.end or _END_OF_TIME
    if start >= end:
        raise ExportUsageError("--from must be before --to")
    if args.account is not None:
        await reads.account_at(conn, marketplace_id, args.account, None)
    if args.report == "trial-balance":
        return reports.trial_balance_report(
            conn, marketplace_id, args.currency, position, as_of=args.as_of
        )
    if args.report == "journal":
        return reports.journal_report(conn, marketplace_id, position, start=start, end=end)
    if args.report == "entries":
        return reports.entries_report(
            conn, marketplace_id, position, start=start, end=end, account_id=args.account
        )
    if args.account is None or args.start is None or args.end is None:
        raise ExportUsageError("statement needs --account, --from and --to")
    return await reports.statement_report(
        conn, marketplace_id, args.account, position, start=start, end=end
    )


async def export_to_file(dsn: str, args: argparse.Namespace, progress: Progress) -> Report:
    """Write the export named by ``args`` from one snapshot; return the report written."""
    conn = await asyncpg.connect(dsn)
    partial = args.out.with_name(args.out.name + ".partial")
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            marketplace_id = await _marketplace_id(conn, args.marketplace)
            position = await reports.snapshot_position(conn, marketplace_id)
            report = await _report(conn, marketplace_id, position, args)
            fmt = ExportFormat(args.format_name)
            chunks = export_chunks(report, fmt, on_rows=progress.update)
            async with contextlib.aclosing(chunks):
                with partial.open("wb") as out:
                    async for data in chunks:
                        out.write(data)
        partial.replace(args.out)
        return report
    finally:
        partial.unlink(missing_ok=True)
        await conn.close()


def run_export(settings: Settings, args: argparse.Namespace) -> int:
    """``offerhub export ...``: 0 when the file was written, 1 on a missing resource, 2 on
    bad arguments."""
    progress = Progress(sys.stderr)
    try:
        with database(settings) as dsn:
            asyncio.run(apply_schema(dsn))
            report = asyncio.run(export_to_file(dsn, args, progress))
    except ExportUsageError as error:
        print(f"offerhub: {error}", file=sys.stderr)
        return 2
    except NotFound as error:
        print(f"offerhub: {error.message} {error.details}", file=sys.stderr)
        return 1
    progress.finish()
    print(f"{args.out}: {progress.rows} rows, ledger as of {format_time(report.as_of)}")
    return 0
