"""Ledger postings of top-ups (the design is in :mod:`flows.topups`).

At confirmation (one linked pair, ids derived from the top-up, so a replay answers ``exists``):

    external:airtm  -> treasury:airtm   net amount   (code topup: the payin landed at Airtm)
    clearing:topups -> user:<usr>       amount       (code topup: the user is credited)

Delivery (TOPUP_DELIVERY, ids derived from the operation, so each attempt has its own hold):

    treasury:stellar -> clearing:topups  amount, PENDING before the payment is signed
    post it when the payment is confirmed on chain; void it when the operation fails
"""

from typing import Final

import asyncpg

from common.errors import InvariantViolation
from common.ids import derived_id
from flows.queries.topups import TopUp
from ledger import (
    AccountBalance,
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
from ledger.accounts import AccountSpec

__all__ = [
    "ASSET",
    "CODE_CREDIT",
    "CODE_DELIVERY",
    "credit_topup",
    "credit_transfer_id",
    "hold_delivery",
    "hold_transfer_id",
    "release_delivery",
    "settle_delivery",
    "user_balance",
]

ASSET: Final = "USD"
CODE_CREDIT: Final = "topup"
CODE_DELIVERY: Final = "topup_settle"
_ACCEPTED: Final = frozenset({TransferResult.OK, TransferResult.EXISTS})
# Voiding a hold that was never placed, or already voided, leaves the books as they should be.
_VOID_ACCEPTED: Final = _ACCEPTED | {
    TransferResult.PENDING_TRANSFER_NOT_FOUND,
    TransferResult.PENDING_TRANSFER_ALREADY_VOIDED,
}


async def _account_id(conn: asyncpg.Connection, marketplace_id: str, spec: AccountSpec) -> str:
    return (await open_account(conn, marketplace_id, ASSET, spec)).id


def _check(outcomes: list[TransferOutcome], accepted: frozenset[TransferResult]) -> None:
    refused = [o for o in outcomes if o.result not in accepted]
    if refused:
        # Every account here is open and only the treasury is bounded (checked by the caller):
        # a refusal means the books and this flow disagree.
        raise InvariantViolation(
            "the ledger refused a top-up posting",
            results={o.id: o.result.value for o in refused},
        )


def credit_transfer_id(topup: TopUp) -> str:
    """The id of the transfer that credits the user for ``topup`` (stable across replays)."""
    return derived_id("trf_", topup.marketplace_id, topup.id, "topup_credit")


async def credit_topup(conn: asyncpg.Connection, topup: TopUp, *, net_minor: int) -> str:
    """Post the confirmation pair; returns the id of the user's credit transfer.

    ``net_minor`` is what reached the platform's Airtm account (amount minus Airtm's fee).
    """
    market = topup.marketplace_id
    credit_id = credit_transfer_id(topup)
    credit = Transfer(
        id=credit_id,
        marketplace_id=market,
        code=CODE_CREDIT,
        debit_account_id=await _account_id(conn, market, system_account("clearing:topups")),
        credit_account_id=await _account_id(conn, market, user_account(topup.user_id)),
        amount=topup.amount_minor,
        asset=ASSET,
        user_id=topup.user_id,
        external_ref=topup.airtm_payin_id,
        description=f"top-up {topup.id} credited",
    )
    batch = [credit]
    if net_minor > 0:
        landed = Transfer(
            id=derived_id("trf_", market, topup.id, "topup_airtm"),
            marketplace_id=market,
            code=CODE_CREDIT,
            debit_account_id=await _account_id(conn, market, system_account("external:airtm")),
            credit_account_id=await _account_id(conn, market, system_account("treasury:airtm")),
            amount=net_minor,
            asset=ASSET,
            linked=True,
            user_id=topup.user_id,
            external_ref=topup.airtm_payin_id,
            description=f"top-up {topup.id}: payin net of Airtm fee",
        )
        batch = [landed, credit]
    _check(await create_transfers(conn, batch), _ACCEPTED)
    return credit_id


def hold_transfer_id(marketplace_id: str, operation_id: str) -> str:
    """The pending treasury -> clearing transfer of one TOPUP_DELIVERY operation."""
    return derived_id("trf_", marketplace_id, operation_id, "topup_hold")


async def hold_delivery(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    operation_id: str,
    topup_id: str,
    user_id: str,
    amount_minor: int,
) -> TransferResult:
    """Reserve the delivery in ``treasury:stellar`` before the payment is signed.

    Returns ``ok``/``exists`` when held, ``exceeds_credits`` when the treasury's available
    balance is short; any other result is a bug and raises.
    """
    hold = Transfer(
        id=hold_transfer_id(marketplace_id, operation_id),
        marketplace_id=marketplace_id,
        code=CODE_DELIVERY,
        debit_account_id=await _account_id(
            conn, marketplace_id, system_account("treasury:stellar")
        ),
        credit_account_id=await _account_id(
            conn, marketplace_id, system_account("clearing:topups")
        ),
        amount=amount_minor,
        asset=ASSET,
        phase=TransferPhase.PENDING,
        user_id=user_id,
        description=f"top-up {topup_id}: delivery held",
    )
    [outcome] = await create_transfers(conn, [hold])
    if outcome.result is not TransferResult.EXCEEDS_CREDITS:
        _check([outcome], _ACCEPTED)
    return outcome.result


async def settle_delivery(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    operation_id: str,
    user_id: str,
    tx_hash: str,
) -> str:
    """Post the hold: the treasury wallet paid the user on chain. Returns the transfer id."""
    settle_id = derived_id("trf_", marketplace_id, operation_id, "topup_settle")
    post = Transfer(
        id=settle_id,
        marketplace_id=marketplace_id,
        code=CODE_DELIVERY,
        phase=TransferPhase.POST_PENDING,
        pending_id=hold_transfer_id(marketplace_id, operation_id),
        user_id=user_id,
        external_ref=tx_hash,
        description="top-up delivered on chain",
    )
    _check(await create_transfers(conn, [post]), _ACCEPTED)
    return settle_id


async def release_delivery(
    conn: asyncpg.Connection, *, marketplace_id: str, operation_id: str, user_id: str
) -> None:
    """Void the hold of a delivery that ended without a payment (if it was placed)."""
    void = Transfer(
        id=derived_id("trf_", marketplace_id, operation_id, "topup_void"),
        marketplace_id=marketplace_id,
        code=CODE_DELIVERY,
        phase=TransferPhase.VOID_PENDING,
        pending_id=hold_transfer_id(marketplace_id, operation_id),
        user_id=user_id,
        description="top-up delivery failed: hold released",
    )
    _check(await create_transfers(conn, [void]), _VOID_ACCEPTED)


async def user_balance(
    conn: asyncpg.Connection, marketplace_id: str, user_id: str
) -> AccountBalance:
    """The user's balances now (for the ``available``/``reserved`` of balance events)."""
    account = await get_account_by_code(conn, marketplace_id, ASSET, f"user:{user_id}")
    return account.balance
