"""Helpers of the ledger and report routes: query values, and streamed exports on a snapshot.

An export opens its REPEATABLE READ, READ ONLY transaction and builds its report *before* the
response starts, so every error up to then (unknown account, bad range) is a JSON error and the
snapshot is known for ``X-Ledger-As-Of``. The rows then stream from that same transaction; the
connection goes back to the pool when the stream ends, fails or is abandoned. A failure after
the first byte propagates to the server, which aborts the connection (the body is then visibly
truncated: chunked encoding never completes).
"""

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final, cast

import asyncpg
from litestar.response import Stream

from api.database import pool_of
from api.errors import FieldError, invalid
from api.exports import MEDIA_TYPES, ExportFormat, export_chunks, export_filename
from api.orders_support import time_filter
from common.errors import InvalidCurrency, InvalidRequest, ValidationFailed
from common.times import format_time
from ledger import reports
from ledger.report_types import LedgerPosition, Report

__all__ = [
    "ReportBuilder",
    "currency_filter",
    "export_format",
    "open_range",
    "range_or_all",
    "required_range",
    "stream_report",
]

ReportBuilder = Callable[[asyncpg.Connection, LedgerPosition], Awaitable[Report]]
# Open range ends: the first and the last representable transfer times.
_BEGINNING: Final = datetime(1970, 1, 1, tzinfo=UTC)
_END_OF_TIME: Final = datetime(9999, 1, 1, tzinfo=UTC)


def currency_filter(value: str | None) -> str | None:
    """The ``currency`` query value: only ``USD`` (400 ``INVALID_CURRENCY`` otherwise)."""
    if value is not None and value != "USD":
        raise InvalidCurrency(fields=[FieldError("query.currency", "only USD is supported")])
    return value


def export_format(value: str | None, *, allow_json: bool) -> ExportFormat | None:
    """The ``format`` query value; ``None`` means JSON (where allowed)."""
    allowed = ("json", "csv", "parquet") if allow_json else ("csv", "parquet")
    if value is None:
        if allow_json:
            return None
        raise invalid("query.format", "required")
    if value not in allowed:
        raise invalid("query.format", f"must be one of {', '.join(allowed)}")
    return None if value == "json" else ExportFormat(value)


def open_range(
    start_text: str | None, end_text: str | None
) -> tuple[datetime | None, datetime | None]:
    """Optional ``from``/``to`` query values; 400 ``INVALID_REQUEST`` when ``from >= to``."""
    start = time_filter("from", start_text)
    end = time_filter("to", end_text)
    if start is not None and end is not None and start >= end:
        raise InvalidRequest(fields=[FieldError("query.from", "must be before `to`")])
    return start, end


def required_range(start_text: str | None, end_text: str | None) -> tuple[datetime, datetime]:
    """Required ``from``/``to`` query values (``[from, to)``)."""
    missing = [
        FieldError(f"query.{name}", "required")
        for name, value in (("from", start_text), ("to", end_text))
        if value is None
    ]
    if missing:
        raise ValidationFailed(fields=missing)
    start, end = open_range(start_text, end_text)
    assert start is not None
    assert end is not None
    return start, end


def range_or_all(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """An optional range made whole: an absent end is the beginning or the end of time."""
    return start or _BEGINNING, end or _END_OF_TIME


class _SnapshotExport:
    """One export on its own snapshot; :meth:`start` builds the report before any byte."""

    def __init__(
        self, pool: asyncpg.Pool, tenant: str, build: ReportBuilder, fmt: ExportFormat
    ) -> None:
        self._pool, self._tenant, self._build, self._format = pool, tenant, build, fmt
        self._report: Report | None = None
        self.body: AsyncGenerator[bytes, None] = self._run()

    async def start(self) -> Report:
        """Open the snapshot and build the report; errors here come before the response."""
        await anext(self.body)  # runs _run up to its first yield
        assert self._report is not None
        return self._report

    async def _run(self) -> AsyncGenerator[bytes, None]:
        # An async generator: once started, abandoning it still runs this block's cleanup
        # (asyncio closes unfinished generators), so the connection always returns.
        async with contextlib.AsyncExitStack() as stack:
            proxy = await stack.enter_async_context(self._pool.acquire())
            await stack.enter_async_context(
                proxy.transaction(isolation="repeatable_read", readonly=True)
            )
            conn = cast(asyncpg.Connection, proxy)
            position = await reports.snapshot_position(conn, self._tenant)
            self._report = await self._build(conn, position)
            yield b""
            # Closed here, inside the transaction, however the stream ends.
            chunks = await stack.enter_async_context(
                contextlib.aclosing(export_chunks(self._report, self._format))
            )
            async for data in chunks:
                yield data


async def stream_report(
    request: Any, tenant: str, build: ReportBuilder, fmt: ExportFormat
) -> Stream:
    """The streamed response of a report: chunked, ``Content-Disposition: attachment``, the
    snapshot's time in ``X-Ledger-As-Of``."""
    export = _SnapshotExport(pool_of(request), tenant, build, fmt)
    report = await export.start()
    headers = {
        "Content-Disposition": f'attachment; filename="{export_filename(report, fmt)}"',
        "X-Ledger-As-Of": format_time(report.as_of),
        "Cache-Control": "no-store",
    }
    return Stream(export.body, media_type=MEDIA_TYPES[fmt], headers=headers)
