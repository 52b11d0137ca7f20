"""Accounts: the chart of accounts, opening an account and looking it up by code."""

from typing import Final, LiteralString

import asyncpg
import msgspec

from common.errors import NotFound
from common.ids import new_id
from ledger.types import Account, AccountType, Side

__all__ = [
    "AccountNotFound",
    "AccountSpec",
    "escrow_account",
    "get_account",
    "get_account_by_code",
    "open_account",
    "system_account",
    "user_account",
]


class AccountNotFound(NotFound):
    """The ledger account does not exist in this marketplace."""

    code = "ACCOUNT_NOT_FOUND"


class AccountSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What an account is: its code, class, normal side and bound."""

    code: str
    type: AccountType
    normal_side: Side = Side.CREDIT
    debits_must_not_exceed_credits: bool = False
    credits_must_not_exceed_debits: bool = False
    user_id: str | None = None
    order_id: str | None = None


def user_account(user_id: str) -> AccountSpec:
    """A user's wallet balance: it may never go below zero."""
    return AccountSpec(
        code=f"user:{user_id}",
        type=AccountType.USER,
        debits_must_not_exceed_credits=True,
        user_id=user_id,
    )


def escrow_account(order_id: str) -> AccountSpec:
    """The funds locked in one order's escrow: never more out than in."""
    return AccountSpec(
        code=f"escrow:{order_id}",
        type=AccountType.ESCROW,
        debits_must_not_exceed_credits=True,
        order_id=order_id,
    )


_SYSTEM_ACCOUNTS: Final = {
    "fees:platform": AccountSpec(code="fees:platform", type=AccountType.FEES),
    "fees:trustless_work": AccountSpec(code="fees:trustless_work", type=AccountType.FEES),
    "clearing:withdrawals": AccountSpec(code="clearing:withdrawals", type=AccountType.CLEARING),
    "clearing:topups": AccountSpec(code="clearing:topups", type=AccountType.CLEARING),
    "treasury:stellar": AccountSpec(
        code="treasury:stellar", type=AccountType.TREASURY, debits_must_not_exceed_credits=True
    ),
    # The platform's (enterprise) balance at Airtm: confirmed payins land here, net of fee.
    "treasury:airtm": AccountSpec(
        code="treasury:airtm", type=AccountType.TREASURY, debits_must_not_exceed_credits=True
    ),
    "external:stellar": AccountSpec(
        code="external:stellar", type=AccountType.EXTERNAL, normal_side=Side.DEBIT
    ),
    "external:airtm": AccountSpec(
        code="external:airtm", type=AccountType.EXTERNAL, normal_side=Side.DEBIT
    ),
    "adjustment:manual": AccountSpec(
        code="adjustment:manual", type=AccountType.ADJUSTMENT, normal_side=Side.DEBIT
    ),
}


def system_account(code: str) -> AccountSpec:
    """One of the marketplace-wide accounts of the chart (``fees:platform``, ...)."""
    return _SYSTEM_ACCOUNTS[code]


_COLUMNS: Final = """
    id, marketplace_id, code, asset, type, normal_side, debits_must_not_exceed_credits,
    credits_must_not_exceed_debits, debits_pending, debits_posted, credits_pending,
    credits_posted, version, user_id, order_id, created_at
"""

# Opens the account unless its (marketplace, asset, code) exists (ledger_accounts_code_key).
INSERT_ACCOUNT: Final[LiteralString] = (
    """
INSERT INTO ledger_accounts (
    marketplace_id, id, code, asset, type, normal_side, debits_must_not_exceed_credits,
    credits_must_not_exceed_debits, user_id, order_id
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT ON CONSTRAINT ledger_accounts_code_key DO NOTHING
RETURNING"""
    + _COLUMNS
)

# One account by code (ledger_accounts_code_key).
SELECT_ACCOUNT_BY_CODE: Final[LiteralString] = (
    "SELECT"
    + _COLUMNS
    + "FROM ledger_accounts WHERE marketplace_id = $1 AND asset = $2 AND code = $3"
)

# One account by id (ledger_accounts_pkey).
SELECT_ACCOUNT: Final[LiteralString] = (
    "SELECT" + _COLUMNS + "FROM ledger_accounts WHERE marketplace_id = $1 AND id = $2"
)


def _account(row: asyncpg.Record) -> Account:
    return msgspec.convert(dict(row), Account)


async def open_account(
    conn: asyncpg.Connection, marketplace_id: str, asset: str, spec: AccountSpec
) -> Account:
    """Open the account described by ``spec``, or return it if it is already open."""
    # Most calls find the account open: one index read, not an upsert that reads it again.
    row = await conn.fetchrow(SELECT_ACCOUNT_BY_CODE, marketplace_id, asset, spec.code)
    if row is not None:
        return _account(row)
    row = await conn.fetchrow(
        INSERT_ACCOUNT,
        marketplace_id,
        new_id("acc_"),
        spec.code,
        asset,
        spec.type.value,
        spec.normal_side.value,
        spec.debits_must_not_exceed_credits,
        spec.credits_must_not_exceed_debits,
        spec.user_id,
        spec.order_id,
    )
    if row is None:
        return await get_account_by_code(conn, marketplace_id, asset, spec.code)
    return _account(row)


async def get_account_by_code(
    conn: asyncpg.Connection, marketplace_id: str, asset: str, code: str
) -> Account:
    """Return the account with this code, or raise AccountNotFound."""
    row = await conn.fetchrow(SELECT_ACCOUNT_BY_CODE, marketplace_id, asset, code)
    if row is None:
        raise AccountNotFound(marketplace_id=marketplace_id, code=code)
    return _account(row)


async def get_account(conn: asyncpg.Connection, marketplace_id: str, account_id: str) -> Account:
    """Return the account with this id, or raise AccountNotFound."""
    row = await conn.fetchrow(SELECT_ACCOUNT, marketplace_id, account_id)
    if row is None:
        raise AccountNotFound(marketplace_id=marketplace_id, account_id=account_id)
    return _account(row)
