"""User balances, read from the ledger only, and the audited admin adjustment (api.md 3.4).

A user's balance is the ledger account ``user:<usr>`` (credit-normal, never below zero):
``available`` = posted credits - posted debits - pending debits, ``reserved`` = pending debits,
``total`` = available + reserved. Nothing else stores a balance, so it cannot drift.
"""

from datetime import datetime
from typing import Final, Literal, LiteralString, get_args

import asyncpg
import msgspec

from common.errors import (
    InsufficientFunds,
    InvalidAmount,
    InvariantViolation,
    UserNotFound,
    ValidationFailed,
)
from common.ids import new_id
from common.money import format_amount
from flows.audit import record_audit
from flows.events import emit
from flows.queries import topups as topup_queries
from flows.queries import users as user_queries
from flows.transitions import Actor
from ledger import (
    AccountBalance,
    AccountNotFound,
    Transfer,
    TransferResult,
    balance,
    balance_at,
    create_transfers,
    get_account_by_code,
    open_account,
    system_account,
    user_account,
)

__all__ = [
    "COUNTER_ACCOUNTS",
    "CURRENCY",
    "AdjustmentRecord",
    "BalanceView",
    "CounterAccount",
    "Direction",
    "adjust_balance",
    "get_balance",
]

# The ledger asset of every user balance: USD, backed 1:1 by USDC on chain.
CURRENCY: Final = "USD"
Direction = Literal["CREDIT", "DEBIT"]
CounterAccount = Literal["fees:platform", "external:stellar", "external:airtm"]
COUNTER_ACCOUNTS: Final[frozenset[str]] = frozenset(get_args(CounterAccount))
REASON_LENGTH_MAX: Final = 500
REFERENCE_LENGTH_MAX: Final = 255

# Results of a refused adjustment that mean "the amount does not fit the counters".
_OVERFLOWS: Final = frozenset(
    {
        TransferResult.OVERFLOWS_CREDITS,
        TransferResult.OVERFLOWS_CREDITS_POSTED,
        TransferResult.OVERFLOWS_DEBITS,
        TransferResult.OVERFLOWS_DEBITS_POSTED,
    }
)

# Time of the account's latest posting at or before $3 (ledger_entries_by_time).
LAST_POSTING_AT: Final[LiteralString] = """
SELECT max(created_at) FROM ledger_entries
WHERE marketplace_id = $1 AND account_id = $2 AND ($3::timestamptz IS NULL OR created_at <= $3)
"""

# When a transfer was posted (ledger_transfers_pkey).
TRANSFER_CREATED_AT: Final[LiteralString] = """
SELECT created_at FROM ledger_transfers WHERE marketplace_id = $1 AND id = $2
"""


class BalanceView(msgspec.Struct, frozen=True, kw_only=True):
    """A user's balance in minor units (api.md 4, ``Balance``)."""

    user_id: str
    currency: str
    available: int
    reserved: int
    total: int
    pending_deposits: int
    as_of: datetime | None
    updated_at: datetime


class AdjustmentRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A posted admin adjustment (api.md 4, ``BalanceAdjustment``); ``id`` is the transfer."""

    id: str
    user_id: str
    direction: Direction
    amount: int
    currency: str
    reason: str
    reference: str | None
    counter_account: CounterAccount
    created_by: str | None
    created_at: datetime
    balance: BalanceView


def _view(
    user_id: str,
    amounts: AccountBalance,
    *,
    pending_deposits: int,
    as_of: datetime | None,
    updated_at: datetime,
) -> BalanceView:
    return BalanceView(
        user_id=user_id,
        currency=CURRENCY,
        available=amounts.available,
        reserved=amounts.reserved,
        total=amounts.available + amounts.reserved,
        pending_deposits=pending_deposits,
        as_of=as_of,
        updated_at=updated_at,
    )


async def get_balance(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    user_id: str,
    as_of: datetime | None = None,
) -> BalanceView:
    """The user's balance now, or as it was at ``as_of``, from the ledger alone.

    Args:
        conn: A connection. The amounts come from one row read, so they always agree;
            ``updated_at`` is a second read (use a REPEATABLE READ transaction to pin both).
        marketplace_id: The caller's marketplace.
        user_id: The user; ``UserNotFound(field="user_id")`` when unknown.
        as_of: Read the balance as of this time (history rows, not the counters).

    Returns:
        Zeros for a user without postings; ``updated_at`` is the last posting (or the
        account's opening when there is none).
    """
    user = await user_queries.get_user(conn, marketplace_id, user_id)
    if user is None:
        raise UserNotFound(field="user_id")
    # Top-ups in TOPUP_PROCESSING: shown beside the balance, not spendable, not in total.
    # On-chain deposits are never pending: a payment in a closed ledger is final, and the
    # deposit monitor (flows/deposit_monitor.py) credits it straight to available.
    if as_of is None:
        pending_deposits = await topup_queries.processing_total_minor(conn, marketplace_id, user_id)
    else:
        pending_deposits = await topup_queries.processing_total_at(
            conn, marketplace_id, user_id, as_of
        )
    zero = AccountBalance(posted=0, reserved=0, available=0, incoming=0)
    try:
        account = await get_account_by_code(
            conn, marketplace_id, CURRENCY, user_account(user_id).code
        )
    except AccountNotFound:
        # A user row without its account (never opened): nothing was ever posted.
        return _view(
            user_id,
            zero,
            pending_deposits=pending_deposits,
            as_of=as_of,
            updated_at=user.created_at,
        )
    if as_of is None:
        amounts = account.balance
    else:
        amounts = await balance_at(conn, marketplace_id, account.id, as_of)
    last_posting_at = await conn.fetchval(LAST_POSTING_AT, marketplace_id, account.id, as_of)
    return _view(
        user_id,
        amounts,
        pending_deposits=pending_deposits,
        as_of=as_of,
        updated_at=last_posting_at or account.created_at,
    )


def _check_adjustment(
    direction: str, amount: int, reason: str, reference: str | None, counter_account: str
) -> None:
    """Refuse what the API layer should already have refused (the domain holds its own rules)."""
    fields = []
    if direction not in ("CREDIT", "DEBIT"):
        fields.append({"field": "direction", "message": "must be CREDIT or DEBIT"})
    if not 1 <= len(reason) <= REASON_LENGTH_MAX:
        fields.append({"field": "reason", "message": "must be 1..500 characters"})
    if reference is not None and len(reference) > REFERENCE_LENGTH_MAX:
        fields.append({"field": "reference", "message": "must be at most 255 characters"})
    if counter_account not in COUNTER_ACCOUNTS:
        fields.append({"field": "counter_account", "message": "unknown counter account"})
    if fields:
        raise ValidationFailed(fields=fields)
    if amount <= 0:
        raise InvalidAmount("amount must be positive")


async def _post_adjustment(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    user_id: str,
    direction: Direction,
    amount: int,
    reason: str,
    reference: str | None,
    counter_account: CounterAccount,
) -> str:
    """Post the one SINGLE transfer of an adjustment; returns its id."""
    user = await open_account(conn, marketplace_id, CURRENCY, user_account(user_id))
    counter = await open_account(conn, marketplace_id, CURRENCY, system_account(counter_account))
    debit, credit = (counter, user) if direction == "CREDIT" else (user, counter)
    transfer = Transfer(
        id=new_id("trf_"),
        marketplace_id=marketplace_id,
        code="adjustment",
        debit_account_id=debit.id,
        credit_account_id=credit.id,
        amount=amount,
        asset=CURRENCY,
        user_id=user_id,
        external_ref=reference,
        description=reason,
    )
    [outcome] = await create_transfers(conn, [transfer])
    if outcome.result is TransferResult.EXCEEDS_CREDITS:
        # The user account is locked by create_transfers: this is the balance it refused.
        current = await balance(conn, marketplace_id, user.id)
        raise InsufficientFunds(
            user_id=user_id,
            available=format_amount(current.available),
            requested=format_amount(amount),
            currency=CURRENCY,
        )
    if outcome.result in _OVERFLOWS:
        raise InvalidAmount("amount is too large for the balance", result=outcome.result.value)
    if outcome.result is not TransferResult.OK:
        raise InvariantViolation("the ledger refused the adjustment", result=outcome.result.value)
    return transfer.id


async def _emit_adjusted(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    direction: Direction,
    amount: int,
    transfer_id: str,
    after: BalanceView,
) -> None:
    """``balance.credited`` or ``balance.debited`` of an adjustment, with the balance after."""
    data: dict[str, object] = {
        "user_id": after.user_id,
        "amount": format_amount(amount),
        "currency": CURRENCY,
    }
    if direction == "CREDIT":
        kind = "balance.credited"
        data |= {"source": "adjustment", "source_id": transfer_id}
        data |= {"transfer_id": transfer_id, "transaction_hash": None}
    else:
        kind = "balance.debited"
        data |= {"destination": "adjustment", "destination_id": transfer_id}
        data |= {"transfer_id": transfer_id}
    data |= {"available": format_amount(after.available), "reserved": format_amount(after.reserved)}
    await emit(
        conn,
        marketplace_id=marketplace_id,
        type=kind,
        resource_type="balance",
        resource_id=after.user_id,
        data=data,
    )


def _amounts(view: BalanceView) -> dict[str, str]:
    """The audited part of a balance: available and reserved, as decimal strings."""
    return {"available": format_amount(view.available), "reserved": format_amount(view.reserved)}


async def adjust_balance(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    user_id: str,
    direction: Direction,
    amount: int,
    reason: str,
    reference: str | None = None,
    counter_account: CounterAccount = "fees:platform",
    actor: Actor,
) -> AdjustmentRecord:
    """Post an admin adjustment: one balanced SINGLE transfer, code ``adjustment``.

    CREDIT moves ``amount`` from the counter account to ``user:<usr>``; DEBIT the other way,
    limited by ``available`` (the ledger's bound decides, under the account lock). Emits
    ``balance.credited`` (source ``adjustment``) or ``balance.debited`` with the balance after,
    and audits ``BALANCE_ADJUSTED`` (balance before and after, amount, reason, counter account).
    Runs in the caller's transaction; on any error the caller rolls back and nothing stays.

    Raises:
        UserNotFound: unknown user (``field="user_id"``).
        InsufficientFunds: a DEBIT above ``available`` (details ``user_id, available,
            requested, currency`` as on the wire).
        ValidationFailed, InvalidAmount: arguments the API layer should have refused.
    """
    _check_adjustment(direction, amount, reason, reference, counter_account)
    if await user_queries.get_user(conn, marketplace_id, user_id) is None:
        raise UserNotFound(field="user_id")
    before = await get_balance(conn, marketplace_id=marketplace_id, user_id=user_id)
    transfer_id = await _post_adjustment(
        conn,
        marketplace_id=marketplace_id,
        user_id=user_id,
        direction=direction,
        amount=amount,
        reason=reason,
        reference=reference,
        counter_account=counter_account,
    )
    after = await get_balance(conn, marketplace_id=marketplace_id, user_id=user_id)
    await _emit_adjusted(
        conn,
        marketplace_id=marketplace_id,
        direction=direction,
        amount=amount,
        transfer_id=transfer_id,
        after=after,
    )
    await record_audit(
        conn,
        marketplace_id=marketplace_id,
        actor_type=actor.type,
        actor_id=actor.id,
        action="BALANCE_ADJUSTED",
        resource_type="balance",
        resource_id=user_id,
        before=_amounts(before),
        after={
            **_amounts(after),
            "direction": direction,
            "amount": format_amount(amount),
            "counter_account": counter_account,
            "reason": reason,
            "reference": reference,
            "transfer_id": transfer_id,
        },
        request_id=actor.request_id,
    )
    created_at = await conn.fetchval(TRANSFER_CREATED_AT, marketplace_id, transfer_id)
    return AdjustmentRecord(
        id=transfer_id,
        user_id=user_id,
        direction=direction,
        amount=amount,
        currency=CURRENCY,
        reason=reason,
        reference=reference,
        counter_account=counter_account,
        created_by=actor.id,
        created_at=created_at,
        balance=after,
    )
