"""Streamed exports: rows per second and peak memory of the general-ledger (entries) export.

Starts a throwaway PostgreSQL from the embedded binaries (or uses DATABASE_URL), seeds
1,000,000 postings (500,000 transfers, through the ledger's own insert trigger, in batched
statements), then streams ``GET /reports/entries``'s report through the CSV and the Parquet
writer into a byte counter, exactly as the API does, and measures:

- ``*_rows_per_s``: postings written per second (query, formatting and encoding included);
- ``*_peak_mb``: the largest growth of the process's resident memory over its level just before
  the export, sampled after every chunk (a whole-file approach would grow by the file's size);
- the baseline, ``copy_csv_rows_per_s``: the same query as CSV through PostgreSQL's own
  ``COPY ... TO STDOUT`` on the same server (``csv_ratio_vs_copy``).

If ``bench/reconcile_bench.py`` exists, its ``run(quick)`` figures are added. ``--quick`` seeds
100,000 postings. The last line of output is one JSON object.
"""

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import asyncpg

# Run as a script, this file's folder comes first on sys.path and would shadow the packages.
ROOT: Final = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.exports import ExportFormat, export_chunks  # noqa: E402
from common.ids import new_id  # noqa: E402
from ledger import (  # noqa: E402
    migrate,
    open_account,
    reports,
    system_account,
    user_account,
)
from ledger.queries import reports as ledger_queries  # noqa: E402

USERS: Final = 1_000
TRANSFERS_PER_STATEMENT: Final = 50_000
_PAGE_BYTES: Final = os.sysconf("SC_PAGE_SIZE")

# Inserts transfers straight into ledger_transfers: the ledger's statement trigger applies them
# (counters, entries, bounds, zero sum), as it does for create_transfers. Odd rows are
# deposits from the outside world, even rows move one minor unit between two funded users.
_SEED: Final = """
INSERT INTO ledger_transfers (
    marketplace_id, id, debit_account_id, credit_account_id, asset, amount, phase, code,
    description, created_at
)
SELECT $1, 'trf_' || md5($4 || ':' || g),
    CASE WHEN $6 OR g % 2 = 1 THEN $2 ELSE ($3::text[])[1 + g % cardinality($3::text[])] END,
    ($3::text[])[1 + (g + 1) % cardinality($3::text[])],
    'USD', CASE WHEN $6 THEN 1000000000000 ELSE 1 + g % 1000 END, 'SINGLE',
    CASE WHEN $6 OR g % 2 = 1 THEN 'deposit' ELSE 'adjustment' END,
    'bench posting ' || g, now()
FROM generate_series(1, $5) AS g
"""


async def seed_postings(conn: asyncpg.Connection, marketplace_id: str, postings: int) -> None:
    """Add ``postings`` ledger entries (half as many transfers) to ``marketplace_id``."""
    world = (await open_account(conn, marketplace_id, "USD", system_account("external:stellar"))).id
    users = [
        (await open_account(conn, marketplace_id, "USD", user_account(new_id("usr_")))).id
        for _ in range(USERS)
    ]
    async with conn.transaction():  # fund every user first, so user-to-user moves never bounce
        await conn.execute(_SEED, marketplace_id, world, users, "fund", USERS, True)
    remaining, batch = postings // 2 - USERS, 0
    while remaining > 0:
        count = min(remaining, TRANSFERS_PER_STATEMENT)
        async with conn.transaction():
            await conn.execute(_SEED, marketplace_id, world, users, str(batch), count, False)
        remaining, batch = remaining - count, batch + 1


def resident_bytes() -> int:
    """The process's resident memory now (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE_BYTES


class MemoryWatch:
    """The largest growth of resident memory over a baseline, sampled on every call."""

    def __init__(self) -> None:
        self.baseline = resident_bytes()
        self.peak_growth = 0
        self.rows = 0

    def __call__(self, rows: int) -> None:
        """Sample (used as the writers' ``on_rows`` progress callback)."""
        self.rows += rows
        self.peak_growth = max(self.peak_growth, resident_bytes() - self.baseline)


async def export_entries(
    conn: asyncpg.Connection, marketplace_id: str, export_format: ExportFormat
) -> dict[str, float]:
    """Stream the whole general ledger of ``marketplace_id`` and measure it."""
    watch = MemoryWatch()
    started = time.perf_counter()
    written = 0
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        position = await reports.snapshot_position(conn, marketplace_id)
        report = reports.entries_report(
            conn,
            marketplace_id,
            position,
            start=datetime(1970, 1, 1, tzinfo=UTC),
            end=datetime(9999, 1, 1, tzinfo=UTC),
        )
        async for data in export_chunks(report, export_format, on_rows=watch):
            written += len(data)
    elapsed = time.perf_counter() - started
    return {
        "rows": watch.rows,
        "rows_per_s": round(watch.rows / elapsed),
        "peak_mb": round(watch.peak_growth / 2**20, 1),
        "bytes": written,
        "seconds": round(elapsed, 2),
    }


async def copy_baseline(conn: asyncpg.Connection, marketplace_id: str) -> dict[str, float]:
    """The same general-ledger query as CSV through PostgreSQL's own ``COPY ... TO STDOUT``.

    The ceiling of a CSV export on this server: no Python row objects, no formatting by us.
    """
    written = 0

    async def count(data: bytes) -> None:
        nonlocal written
        written += len(data)

    span = (marketplace_id, datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))
    started = time.perf_counter()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(ledger_queries.SET_WHOLE_RESULT_PLANS)
        status = await conn.copy_from_query(
            ledger_queries.SELECT_GL_ENTRIES, *span, output=count, format="csv", header=True
        )
    elapsed = time.perf_counter() - started
    rows = int(status.split()[-1])
    return {"rows": rows, "rows_per_s": round(rows / elapsed), "bytes": written}


async def _reconcile_figures(quick: bool) -> dict[str, Any]:
    path = ROOT / "bench" / "reconcile_bench.py"
    if not path.exists():
        return {}
    spec = importlib.util.spec_from_file_location("reconcile_bench", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        figures: dict[str, Any] = await module.run(quick)
    except Exception as error:  # its failure must not hide the export figures
        return {"reconcile_error": f"{type(error).__name__}: {error}"[:200]}
    return figures


async def run(dsn: str, postings: int) -> dict[str, Any]:
    """Seed a fresh database on ``dsn``'s server and measure both formats."""
    admin = await asyncpg.connect(dsn)
    name = "bench_reports_" + new_id("")[:8].lower()
    await admin.execute(f"CREATE DATABASE {name}")
    database = dsn.rsplit("/", 1)[0] + "/" + name
    try:
        conn = await asyncpg.connect(database)
        try:
            await migrate(conn)
            marketplace_id = new_id("mkt_")
            await conn.execute(
                "INSERT INTO marketplaces (id, name) VALUES ($1, $1)", marketplace_id
            )
            started = time.perf_counter()
            await seed_postings(conn, marketplace_id, postings)
            seed_s = time.perf_counter() - started
            await conn.execute("ANALYZE")
            csv_figures = await export_entries(conn, marketplace_id, ExportFormat.CSV)
            parquet_figures = await export_entries(conn, marketplace_id, ExportFormat.PARQUET)
            copy_figures = await copy_baseline(conn, marketplace_id)
        finally:
            await conn.close()
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()
    print(f"seeded {postings:,} postings in {seed_s:.1f} s")
    print(f"csv:     {csv_figures}")
    print(f"parquet: {parquet_figures}")
    print(f"COPY:    {copy_figures}")
    return {
        "export_rows": csv_figures["rows"],
        "csv_rows_per_s": csv_figures["rows_per_s"],
        "csv_peak_mb": csv_figures["peak_mb"],
        "parquet_rows_per_s": parquet_figures["rows_per_s"],
        "parquet_peak_mb": parquet_figures["peak_mb"],
        "csv_bytes": csv_figures["bytes"],
        "parquet_bytes": parquet_figures["bytes"],
        "seed_postings_per_s": round(postings / seed_s),
        "copy_csv_rows_per_s": copy_figures["rows_per_s"],
        "csv_ratio_vs_copy": round(csv_figures["rows_per_s"] / copy_figures["rows_per_s"], 3),
    }


def main() -> None:
    """Run the benchmark; print the figures, the last line as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="100,000 postings instead of 1,000,000"
    )
    args = parser.parse_args()
    postings = 100_000 if args.quick else 1_000_000
    # Imported here: the tests import this module as bench.reports, where bench/ is no script
    # folder on sys.path.
    from _postgres import bench_database  # noqa: PLC0415

    with bench_database(durable=False, prefix="bench-reports-") as dsn:
        figures = asyncio.run(run(dsn, postings))
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the reconciler's requests
    figures.update(asyncio.run(_reconcile_figures(args.quick)))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
