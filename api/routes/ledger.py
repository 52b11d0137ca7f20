"""Ledger reads (api.md 3.12, scope ``support``): accounts, an account's entries, transfers.

Lists use the keyset cursors of ``api.pagination``; the cursor's row key is the list's own order
(``<code> <id>`` for accounts, the entry version, the transfer sequence), so pages stay stable
while the ledger grows. Every read is one snapshot of the caller's marketplace: an account or
transfer of another marketplace answers 404 like a missing one.
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Generic, NamedTuple, TypeVar

import asyncpg
from litestar import Request, get
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, QueryParameter

from api.auth import CurrentCaller, requires
from api.database import read
from api.errors import invalid
from api.orders_support import choice_filter, time_filter
from api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, PageRequest, page_of, page_request
from api.report_streams import currency_filter, open_range
from api.schemas.ledger import (
    LedgerAccount,
    LedgerEntry,
    Transfer,
    account_out,
    entry_out,
    transfer_out,
)
from ledger import reads
from ledger.types import AccountType

__all__ = [
    "LEDGER_ROUTES",
    "get_ledger_account",
    "get_ledger_transfer",
    "list_ledger_accounts",
    "list_ledger_entries",
    "list_ledger_transfers",
]

T = TypeVar("T")
R = TypeVar("R")
_ACCOUNT_TYPES: Final = tuple(kind.value for kind in AccountType)
# These lists are not in time order; their cursors carry only the row key.
_NO_TIME: Final = datetime(1970, 1, 1, tzinfo=UTC)
FromParam = Annotated[str | None, QueryParameter(name="from", description="RFC 3339; inclusive.")]
ToParam = Annotated[str | None, QueryParameter(name="to", description="RFC 3339; exclusive.")]


class _Keyed(NamedTuple, Generic[R]):
    """A row with the key its cursor carries (``page_of`` reads ``created_at`` and ``id``)."""

    created_at: datetime
    id: str
    row: R


def _page(
    position: PageRequest, rows: Sequence[R], key: Callable[[R], str], render: Callable[[R], T]
) -> Page[T]:
    keyed = [_Keyed(_NO_TIME, key(row), row) for row in rows]
    return page_of(position, keyed, lambda item: render(item.row))


def _after_number(position: PageRequest) -> int:
    """The row key of a numeric cursor (0: first page)."""
    if position.after is None:
        return 0
    try:
        return int(position.after[1])
    except ValueError:
        raise invalid("query.cursor", "malformed cursor") from None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@get("/ledger/accounts", guards=[requires("support")], tags=["ledger"])
async def list_ledger_accounts(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    *,
    account_type: Annotated[
        str | None, QueryParameter(name="type", description="USER, ESCROW, FEES, ...")
    ] = None,
    code: FromQuery[str | None] = None,
    user_id: FromQuery[str | None] = None,
    order_id: FromQuery[str | None] = None,
    currency: FromQuery[str | None] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[LedgerAccount]:
    """List ledger accounts in code order, with their current balances."""
    kind = choice_filter("type", account_type, _ACCOUNT_TYPES)
    asset = currency_filter(currency)
    filters = {
        "type": kind,
        "code": code,
        "user_id": user_id,
        "order_id": order_id,
        "currency": asset,
    }
    position = page_request(request, limit=limit, cursor=cursor, filters=filters)
    after = None
    if position.after is not None:
        after_code, _, after_id = position.after[1].partition(" ")
        after = (after_code, after_id)

    async def fetch(conn: asyncpg.Connection) -> Page[LedgerAccount]:
        rows = await reads.list_accounts(
            conn,
            caller.tenant,
            account_type=kind,
            code=code,
            user_id=user_id,
            order_id=order_id,
            asset=asset,
            after=after,
            limit=position.fetch_limit,
        )
        return _page(position, rows, lambda row: f"{row.code} {row.id}", account_out)

    return await read(request, fetch)


@get("/ledger/accounts/{account_id:str}", guards=[requires("support")], tags=["ledger"])
async def get_ledger_account(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    account_id: FromPath[str],
    *,
    as_of: FromQuery[str | None] = None,
) -> LedgerAccount:
    """One ledger account with its balances now, or at ``as_of``."""
    moment = time_filter("as_of", as_of)

    async def fetch(conn: asyncpg.Connection) -> LedgerAccount:
        account = await reads.account_at(conn, caller.tenant, account_id, moment)
        return account_out(account, moment)

    return await read(request, fetch)


@get("/ledger/accounts/{account_id:str}/entries", guards=[requires("support")], tags=["ledger"])
async def list_ledger_entries(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    account_id: FromPath[str],
    *,
    start_text: FromParam = None,
    end_text: ToParam = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[LedgerEntry]:
    """An account's entries in ``[from, to)``, oldest first, each with the balance after it."""
    start, end = open_range(start_text, end_text)
    filters = {"from": _iso(start), "to": _iso(end)}
    position = page_request(request, limit=limit, cursor=cursor, filters=filters)
    after_version = _after_number(position)

    async def fetch(conn: asyncpg.Connection) -> Page[LedgerEntry]:
        rows = await reads.list_account_entries(
            conn,
            caller.tenant,
            account_id,
            start=start,
            end=end,
            after_version=after_version,
            limit=position.fetch_limit,
        )
        return _page(position, rows, lambda row: str(row.version), entry_out)

    return await read(request, fetch)


@get("/ledger/transfers", guards=[requires("support")], tags=["ledger"])
async def list_ledger_transfers(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    *,
    account_id: FromQuery[str | None] = None,
    order_id: FromQuery[str | None] = None,
    user_id: FromQuery[str | None] = None,
    code: FromQuery[str | None] = None,
    start_text: FromParam = None,
    end_text: ToParam = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[Transfer]:
    """The journal, oldest first; filters combine with AND (``account_id``: either side)."""
    start, end = open_range(start_text, end_text)
    filters = {
        "account_id": account_id,
        "order_id": order_id,
        "user_id": user_id,
        "code": code,
        "from": _iso(start),
        "to": _iso(end),
    }
    position = page_request(request, limit=limit, cursor=cursor, filters=filters)
    after_sequence = _after_number(position)

    async def fetch(conn: asyncpg.Connection) -> Page[Transfer]:
        rows = await reads.list_transfers(
            conn,
            caller.tenant,
            account_id=account_id,
            order_id=order_id,
            user_id=user_id,
            code=code,
            start=start,
            end=end,
            after_sequence=after_sequence,
            limit=position.fetch_limit,
        )
        return _page(position, rows, lambda row: str(row.sequence), transfer_out)

    return await read(request, fetch)


@get("/ledger/transfers/{transfer_id:str}", guards=[requires("support")], tags=["ledger"])
async def get_ledger_transfer(
    request: Request[Any, Any, Any], caller: CurrentCaller, transfer_id: FromPath[str]
) -> Transfer:
    """One ledger transfer."""

    async def fetch(conn: asyncpg.Connection) -> Transfer:
        return transfer_out(await reads.get_transfer(conn, caller.tenant, transfer_id))

    return await read(request, fetch)


LEDGER_ROUTES: Final[tuple[HTTPRouteHandler, ...]] = (
    list_ledger_accounts,
    get_ledger_account,
    list_ledger_entries,
    list_ledger_transfers,
    get_ledger_transfer,
)
