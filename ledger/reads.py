"""Paged reads of the ledger routes: accounts (with balances at a time), an account's entries
with running balance, and the journal of transfers. Run them in a read snapshot; every read is
scoped to one marketplace, and an id of another marketplace reads as missing.
"""

from datetime import datetime

import asyncpg
import msgspec

from common.errors import TransferNotFound
from ledger.accounts import AccountNotFound
from ledger.queries import reports as queries
from ledger.report_types import StatementLine, TransferView
from ledger.types import Account

__all__ = [
    "account_at",
    "get_transfer",
    "list_account_entries",
    "list_accounts",
    "list_transfers",
]


async def list_accounts(
    conn: asyncpg.Connection,
    marketplace_id: str,
    *,
    account_type: str | None = None,
    code: str | None = None,
    user_id: str | None = None,
    order_id: str | None = None,
    asset: str | None = None,
    after: tuple[str, str] | None = None,
    limit: int = 100,
) -> list[Account]:
    """Accounts in code order (bytewise) strictly after ``after`` = (code, id), filtered."""
    after_code, after_id = after or (None, None)
    rows = await conn.fetch(
        queries.SELECT_ACCOUNTS_PAGE,
        marketplace_id,
        account_type,
        code,
        user_id,
        order_id,
        asset,
        after_code,
        after_id,
        limit,
    )
    return [msgspec.convert(dict(row), Account) for row in rows]


async def account_at(
    conn: asyncpg.Connection, marketplace_id: str, account_id: str, as_of: datetime | None
) -> Account:
    """The account with its counters as of ``as_of`` (``None``: now, from its counters).

    Raises:
        AccountNotFound: no such account in this marketplace.
    """
    if as_of is None:
        row = await conn.fetchrow(queries.SELECT_ACCOUNT_NOW, marketplace_id, account_id)
    else:
        row = await conn.fetchrow(queries.SELECT_ACCOUNT_AT, marketplace_id, account_id, as_of)
    if row is None:
        raise AccountNotFound(account_id=account_id)
    return msgspec.convert(dict(row), Account)


async def list_account_entries(
    conn: asyncpg.Connection,
    marketplace_id: str,
    account_id: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    after_version: int = 0,
    limit: int = 100,
) -> list[StatementLine]:
    """The account's entries in ``[start, end)`` after ``after_version``, oldest first.

    Raises:
        AccountNotFound: no such account in this marketplace.
    """
    await account_at(conn, marketplace_id, account_id, None)
    rows = await conn.fetch(
        queries.SELECT_ACCOUNT_ENTRIES,
        marketplace_id,
        account_id,
        start,
        end,
        after_version,
        limit,
    )
    return [msgspec.convert(dict(row), StatementLine) for row in rows]


async def list_transfers(
    conn: asyncpg.Connection,
    marketplace_id: str,
    *,
    account_id: str | None = None,
    order_id: str | None = None,
    user_id: str | None = None,
    code: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    after_sequence: int = 0,
    limit: int = 100,
) -> list[TransferView]:
    """The journal, oldest first, after ``after_sequence``, filtered (all filters AND)."""
    rows = await conn.fetch(
        queries.SELECT_TRANSFERS_PAGE,
        marketplace_id,
        account_id,
        order_id,
        user_id,
        code,
        start,
        end,
        after_sequence,
        limit,
    )
    return [msgspec.convert(dict(row), TransferView) for row in rows]


async def get_transfer(
    conn: asyncpg.Connection, marketplace_id: str, transfer_id: str
) -> TransferView:
    """One transfer of this marketplace.

    Raises:
        TransferNotFound: no such transfer in this marketplace.
    """
    row = await conn.fetchrow(queries.SELECT_TRANSFER, marketplace_id, transfer_id)
    if row is None:
        raise TransferNotFound(transfer_id=transfer_id)
    return msgspec.convert(dict(row), TransferView)
