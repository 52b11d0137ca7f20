"""Finance reports (api.md 3.12, scope ``support``): trial balance, account statement, journal
and general-ledger detail, as JSON or streamed CSV / Parquet.

Each answer reads one snapshot of the caller's marketplace. The JSON forms are ordinary reads;
the exports stream from their snapshot (``api.report_streams``), named in ``X-Ledger-As-Of``.
"""

from typing import Annotated, Any, Final

import asyncpg
from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromQuery, QueryParameter

from api.auth import CurrentCaller, requires
from api.database import read
from api.errors import invalid
from api.orders_support import time_filter
from api.report_streams import (
    currency_filter,
    export_format,
    open_range,
    range_or_all,
    required_range,
    stream_report,
)
from api.schemas.ledger import statement_out, trial_balance_out
from ledger import reads, reports
from ledger.report_types import LedgerPosition, Report

__all__ = [
    "REPORTS_ROUTES",
    "account_statement_report",
    "entries_export",
    "journal_export",
    "trial_balance_report",
]

_ASSET: Final = "USD"
FromParam = Annotated[str | None, QueryParameter(name="from", description="RFC 3339; inclusive.")]
ToParam = Annotated[str | None, QueryParameter(name="to", description="RFC 3339; exclusive.")]
FormatParam = Annotated[
    str | None, QueryParameter(name="format", description="json (default), csv or parquet.")
]
ExportFormatParam = Annotated[
    str | None, QueryParameter(name="format", description="csv or parquet (required).")
]


@get("/reports/trial-balance", guards=[requires("support")], tags=["reports"])
async def trial_balance_report(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    *,
    as_of: FromQuery[str | None] = None,
    currency: FromQuery[str | None] = None,
    format_name: FormatParam = None,
) -> Response[Any]:
    """Every account's counters and balance at ``as_of`` (default: now), and their totals."""
    moment = time_filter("as_of", as_of)
    asset = currency_filter(currency) or _ASSET
    chosen = export_format(format_name, allow_json=True)
    if chosen is not None:

        async def build(conn: asyncpg.Connection, position: LedgerPosition) -> Report:
            return reports.trial_balance_report(conn, caller.tenant, asset, position, as_of=moment)

        return await stream_report(request, caller.tenant, build, chosen)

    async def fetch(conn: asyncpg.Connection) -> Any:
        position = await reports.snapshot_position(conn, caller.tenant)
        balance = await reports.trial_balance(conn, caller.tenant, asset, position, as_of=moment)
        return trial_balance_out(balance)

    return Response(await read(request, fetch))


@get("/reports/account-statement", guards=[requires("support")], tags=["reports"])
async def account_statement_report(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    *,
    account_id: FromQuery[str | None] = None,
    start_text: FromParam = None,
    end_text: ToParam = None,
    format_name: FormatParam = None,
) -> Response[Any]:
    """An account over ``[from, to)``: opening and closing balance and the movements between
    (JSON: the summary; exports: opening, one row per entry, closing)."""
    if account_id is None:
        raise invalid("query.account_id", "required")
    start, end = required_range(start_text, end_text)
    chosen = export_format(format_name, allow_json=True)
    if chosen is not None:

        async def build(conn: asyncpg.Connection, position: LedgerPosition) -> Report:
            return await reports.statement_report(
                conn, caller.tenant, account_id, position, start=start, end=end
            )

        return await stream_report(request, caller.tenant, build, chosen)

    async def fetch(conn: asyncpg.Connection) -> Any:
        await reports.snapshot_position(conn, caller.tenant)
        statement = await reports.account_statement(conn, caller.tenant, account_id, start, end)
        return statement_out(statement)

    return Response(await read(request, fetch))


@get("/reports/journal", guards=[requires("support")], tags=["reports"])
async def journal_export(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    *,
    start_text: FromParam = None,
    end_text: ToParam = None,
    format_name: ExportFormatParam = None,
) -> Response[Any]:
    """One row per transfer in ``[from, to)`` (default: all), streamed."""
    start, end = range_or_all(*open_range(start_text, end_text))
    chosen = export_format(format_name, allow_json=False)
    assert chosen is not None

    async def build(conn: asyncpg.Connection, position: LedgerPosition) -> Report:
        return reports.journal_report(conn, caller.tenant, position, start=start, end=end)

    return await stream_report(request, caller.tenant, build, chosen)


@get("/reports/entries", guards=[requires("support")], tags=["reports"])
async def entries_export(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    *,
    start_text: FromParam = None,
    end_text: ToParam = None,
    account_id: FromQuery[str | None] = None,
    format_name: ExportFormatParam = None,
) -> Response[Any]:
    """The general-ledger detail: one row per posting in ``[from, to)`` (default: all), of one
    account if ``account_id`` is given, streamed."""
    start, end = range_or_all(*open_range(start_text, end_text))
    chosen = export_format(format_name, allow_json=False)
    assert chosen is not None

    async def build(conn: asyncpg.Connection, position: LedgerPosition) -> Report:
        if account_id is not None:
            await reads.account_at(conn, caller.tenant, account_id, None)  # 404 before a byte
        return reports.entries_report(
            conn, caller.tenant, position, start=start, end=end, account_id=account_id
        )

    return await stream_report(request, caller.tenant, build, chosen)


REPORTS_ROUTES: Final[tuple[HTTPRouteHandler, ...]] = (
    trial_balance_report,
    account_statement_report,
    journal_export,
    entries_export,
)
