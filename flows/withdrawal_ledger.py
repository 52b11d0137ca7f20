"""Postings of a withdrawal (design.md 2) and the balance events that go with them.

Creation holds the amount: PENDING ``user:<usr>`` -> ``clearing:withdrawals``
(``withdrawal_hold``). Completion posts the hold (``withdrawal_complete``) and, linked with it,
moves the amount on to the outside world, ``clearing:withdrawals`` -> ``external:stellar`` or
``external:airtm`` (``withdrawal_settle``), so the clearing account returns to zero. Failure and
cancel void the hold (``withdrawal_void``). Ids are derived from the withdrawal id, so a
repeated posting answers ``exists`` instead of moving money twice.
"""

from typing import Final, Literal

import asyncpg

from common.errors import InsufficientFunds, InvariantViolation
from common.ids import derived_id
from common.money import format_amount
from flows.balances import CURRENCY
from flows.events import emit
from flows.queries.withdrawals import Withdrawal
from ledger import (
    AccountNotFound,
    AccountSpec,
    Transfer,
    TransferOutcome,
    TransferPhase,
    TransferResult,
    create_transfers,
    get_account_by_code,
    open_account,
    system_account,
    user_account,
)

__all__ = [
    "CLEARING_ACCOUNT",
    "ReleaseReason",
    "emit_balance_released",
    "emit_balance_reserved",
    "hold_transfer_id",
    "place_hold",
    "settle_hold",
    "void_hold",
]

CLEARING_ACCOUNT: Final = "clearing:withdrawals"
ReleaseReason = Literal["withdrawal_completed", "withdrawal_failed", "withdrawal_canceled"]
_DONE: Final = frozenset({TransferResult.OK, TransferResult.EXISTS})


def hold_transfer_id(withdrawal_id: str) -> str:
    """The id of a withdrawal's hold (derived, so a retried creation cannot hold twice)."""
    return derived_id("trf_", withdrawal_id, "withdrawal_hold")


def _external_account(withdrawal: Withdrawal) -> AccountSpec:
    code = "external:stellar" if withdrawal.destination_type == "crypto" else "external:airtm"
    return system_account(code)


def _check(outcomes: list[TransferOutcome], what: str) -> None:
    refused = [outcome for outcome in outcomes if outcome.result not in _DONE]
    if refused:
        raise InvariantViolation(
            f"the ledger refused the withdrawal {what}",
            results=[outcome.result.value for outcome in refused],
        )


async def place_hold(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    withdrawal_id: str,
    user_id: str,
    amount_minor: int,
) -> str:
    """Hold ``amount_minor`` of the user's available balance; returns the hold's id.

    Raises:
        InsufficientFunds: available below the amount (decided by the ledger's bound under
            the account lock, so concurrent withdrawals can never overdraw).
    """
    try:
        user = await get_account_by_code(conn, marketplace_id, CURRENCY, user_account(user_id).code)
    except AccountNotFound:
        # Never posted to: nothing to withdraw (and nothing is written on this path).
        raise InsufficientFunds(
            user_id=user_id,
            available=format_amount(0),
            requested=format_amount(amount_minor),
            currency=CURRENCY,
        ) from None
    clearing = await open_account(conn, marketplace_id, CURRENCY, system_account(CLEARING_ACCOUNT))
    hold = Transfer(
        id=hold_transfer_id(withdrawal_id),
        marketplace_id=marketplace_id,
        code="withdrawal_hold",
        debit_account_id=user.id,
        credit_account_id=clearing.id,
        amount=amount_minor,
        asset=CURRENCY,
        phase=TransferPhase.PENDING,
        user_id=user_id,
        description=f"withdrawal {withdrawal_id}",
    )
    [outcome] = await create_transfers(conn, [hold])
    if outcome.result is TransferResult.EXCEEDS_CREDITS:
        # create_transfers holds the account lock: this is the balance that refused it.
        current = await get_account_by_code(conn, marketplace_id, CURRENCY, user.code)
        raise InsufficientFunds(
            user_id=user_id,
            available=format_amount(current.balance.available),
            requested=format_amount(amount_minor),
            currency=CURRENCY,
        )
    _check([outcome], "hold")
    return hold.id


async def settle_hold(conn: asyncpg.Connection, withdrawal: Withdrawal) -> str:
    """Post the hold and pass the amount on to the external account, all-or-nothing.

    Returns the id of the posting transfer (the one that ended the hold).
    """
    marketplace_id = withdrawal.marketplace_id
    clearing = await open_account(conn, marketplace_id, CURRENCY, system_account(CLEARING_ACCOUNT))
    external = await open_account(conn, marketplace_id, CURRENCY, _external_account(withdrawal))
    reference = withdrawal.transaction_hash or withdrawal.airtm_payout_id
    post = Transfer(
        id=derived_id("trf_", withdrawal.id, "withdrawal_complete"),
        marketplace_id=marketplace_id,
        code="withdrawal_complete",
        phase=TransferPhase.POST_PENDING,
        pending_id=withdrawal.hold_transfer_id,
        linked=True,
        user_id=withdrawal.user_id,
        external_ref=reference,
        description=f"withdrawal {withdrawal.id}",
    )
    settle = Transfer(
        id=derived_id("trf_", withdrawal.id, "withdrawal_settle"),
        marketplace_id=marketplace_id,
        code="withdrawal_settle",
        debit_account_id=clearing.id,
        credit_account_id=external.id,
        amount=withdrawal.amount_minor,
        asset=CURRENCY,
        user_id=withdrawal.user_id,
        external_ref=reference,
        description=f"withdrawal {withdrawal.id}",
    )
    _check(await create_transfers(conn, [post, settle]), "completion")
    return post.id


async def void_hold(conn: asyncpg.Connection, withdrawal: Withdrawal) -> str:
    """Void the hold: the amount is available to the user again. Returns the void's id."""
    void = Transfer(
        id=derived_id("trf_", withdrawal.id, "withdrawal_void"),
        marketplace_id=withdrawal.marketplace_id,
        code="withdrawal_void",
        phase=TransferPhase.VOID_PENDING,
        pending_id=withdrawal.hold_transfer_id,
        user_id=withdrawal.user_id,
        description=f"withdrawal {withdrawal.id}",
    )
    _check(await create_transfers(conn, [void]), "void")
    return void.id


async def _balance_data(
    conn: asyncpg.Connection, withdrawal: Withdrawal, transfer_id: str
) -> dict[str, object]:
    """The fields every balance event of a withdrawal carries, with the balance after it."""
    account = await get_account_by_code(
        conn, withdrawal.marketplace_id, CURRENCY, user_account(withdrawal.user_id).code
    )
    after = account.balance
    return {
        "user_id": withdrawal.user_id,
        "amount": format_amount(withdrawal.amount_minor),
        "currency": CURRENCY,
        "order_id": None,
        "withdrawal_id": withdrawal.id,
        "transfer_id": transfer_id,
        "available": format_amount(after.available),
        "reserved": format_amount(after.reserved),
    }


async def emit_balance_reserved(conn: asyncpg.Connection, withdrawal: Withdrawal) -> None:
    """``balance.reserved`` for the hold of a new withdrawal."""
    data = await _balance_data(conn, withdrawal, withdrawal.hold_transfer_id)
    await emit(
        conn,
        marketplace_id=withdrawal.marketplace_id,
        type="balance.reserved",
        resource_type="balance",
        resource_id=withdrawal.user_id,
        data=data,
    )


async def emit_balance_released(
    conn: asyncpg.Connection, withdrawal: Withdrawal, *, transfer_id: str, reason: ReleaseReason
) -> None:
    """``balance.released`` when the hold ends; only a completion keeps the money out."""
    data = await _balance_data(conn, withdrawal, transfer_id)
    data["reason"] = reason
    data["returned_to_available"] = reason != "withdrawal_completed"
    await emit(
        conn,
        marketplace_id=withdrawal.marketplace_id,
        type="balance.released",
        resource_type="balance",
        resource_id=withdrawal.user_id,
        data=data,
    )
