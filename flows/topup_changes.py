"""State changes of a locked top-up, shared by :mod:`flows.topups` and :mod:`flows.topup_payins`.

Each change fires the machine on the row the caller locked, stamps the row, posts what the
change implies and writes its events, all in the caller's transaction (design.md 3).
"""

from typing import Any, Final, Literal

import asyncpg
import msgspec

from common.errors import TopUpNotFound
from common.money import format_amount
from common.times import format_time
from flows.events import emit
from flows.operations import start_operation
from flows.queries import topups as queries
from flows.queries import users
from flows.queries.operations import Operation, OperationKind
from flows.queries.topups import TopUp
from flows.topup_ledger import credit_topup, user_balance
from flows.topup_steps import TOPUP_DELIVERY_STEPS, delivery_payload
from flows.transitions import Actor, fire

__all__ = [
    "CanceledBy",
    "advance",
    "emit_topup",
    "locked_topup",
    "start_delivery",
    "to_awaiting",
    "to_canceled",
    "to_failed",
    "to_succeeded",
]

CanceledBy = Literal["api", "provider", "expiry"]
_DELIVERY_REGISTRY: Final = {OperationKind.TOPUP_DELIVERY: TOPUP_DELIVERY_STEPS}


async def emit_topup(
    conn: asyncpg.Connection, topup: TopUp, type: str, data: dict[str, Any]
) -> None:
    """Write a ``topup.*`` event carrying ``topup_id`` and ``user_id``."""
    await emit(
        conn,
        marketplace_id=topup.marketplace_id,
        type=type,
        resource_type="topup",
        resource_id=topup.id,
        data={"topup_id": topup.id, "user_id": topup.user_id, **data},
    )


async def locked_topup(conn: asyncpg.Connection, marketplace_id: str, topup_id: str) -> TopUp:
    """Lock the top-up row for a change.

    Raises:
        TopUpNotFound: no such top-up in the marketplace.
    """
    topup = await queries.lock_topup(conn, marketplace_id, topup_id)
    if topup is None:
        raise TopUpNotFound(topup_id=topup_id)
    return topup


async def advance(
    conn: asyncpg.Connection, topup: TopUp, event: str, actor: Actor, *, final: bool = False
) -> TopUp:
    """Fire ``event`` on the locked row; stamp ``completed_at`` when it ends the top-up."""
    status = await fire(
        conn,
        "topup",
        marketplace_id=topup.marketplace_id,
        resource_id=topup.id,
        current=topup.status,
        event=event,
        actor=actor,
    )
    if final:
        return await queries.mark_completed(conn, topup.marketplace_id, topup.id)
    return msgspec.structs.replace(topup, status=status)


async def to_awaiting(conn: asyncpg.Connection, topup: TopUp, actor: Actor) -> TopUp:
    """TOPUP_CREATED -> AWAITING_USER_CONFIRMATION: the payin exists at Airtm."""
    topup = await advance(conn, topup, "await_confirmation", actor)
    await emit_topup(
        conn,
        topup,
        "topup.confirmation_required",
        {
            "confirmation_uri": topup.confirmation_uri,
            "expires_at": None if topup.expires_at is None else format_time(topup.expires_at),
        },
    )
    return topup


async def to_failed(
    conn: asyncpg.Connection, topup: TopUp, *, code: str | None, reason: str, actor: Actor
) -> TopUp:
    """-> TOPUP_FAILED with its reason; emits ``topup.failed``."""
    topup = await advance(conn, topup, "fail", actor, final=True)
    topup = await queries.set_failure(conn, topup.marketplace_id, topup.id, code, reason)
    await emit_topup(
        conn,
        topup,
        "topup.failed",
        {
            "amount": format_amount(topup.amount_minor),
            "reason": reason,
            "error_code": code,
            "airtm_payin_id": topup.airtm_payin_id,
        },
    )
    return topup


async def to_canceled(
    conn: asyncpg.Connection,
    topup: TopUp,
    event: str,
    *,
    canceled_by: CanceledBy,
    reason: str | None,
    actor: Actor,
) -> TopUp:
    """-> TOPUP_CANCELED (``cancel`` by the API, ``cancel_by_provider``); ``topup.canceled``."""
    topup = await advance(conn, topup, event, actor, final=True)
    if reason is not None:
        topup = await queries.set_failure(conn, topup.marketplace_id, topup.id, None, reason)
    await emit_topup(
        conn,
        topup,
        "topup.canceled",
        {
            "amount": format_amount(topup.amount_minor),
            "canceled_by": canceled_by,
            "reason": reason,
        },
    )
    return topup


async def start_delivery(conn: asyncpg.Connection, topup: TopUp) -> Operation:
    """Start TOPUP_DELIVERY (or join the running one) in the caller's transaction."""
    user = await users.get_user(conn, topup.marketplace_id, topup.user_id)
    wallet_id = user.wallet.id if user is not None and user.wallet is not None else None
    return await start_operation(
        conn,
        _DELIVERY_REGISTRY,
        marketplace_id=topup.marketplace_id,
        kind=OperationKind.TOPUP_DELIVERY,
        resource_type="topup",
        resource_id=topup.id,
        payload=delivery_payload(
            topup_id=topup.id,
            user_id=topup.user_id,
            user_wallet_id=wallet_id,
            amount_minor=topup.amount_minor,
        ),
    )


async def to_succeeded(
    conn: asyncpg.Connection, topup: TopUp, *, net_minor: int, actor: Actor
) -> tuple[TopUp, Operation]:
    """CONFIRMED: credit the user once, emit, and start the on-chain delivery.

    ``net_minor`` is what reached the platform's Airtm account (amount minus Airtm's fee).
    """
    topup = await advance(conn, topup, "confirm", actor, final=True)
    credit_id = await credit_topup(conn, topup, net_minor=net_minor)
    topup = await queries.mark_credited(conn, topup.marketplace_id, topup.id, credit_id)
    amount = format_amount(topup.amount_minor)
    await emit_topup(
        conn,
        topup,
        "topup.succeeded",
        {
            "amount": amount,
            "currency": topup.currency,
            "airtm_payin_id": topup.airtm_payin_id,
            "transfer_id": credit_id,
        },
    )
    balance = await user_balance(conn, topup.marketplace_id, topup.user_id)
    await emit(
        conn,
        marketplace_id=topup.marketplace_id,
        type="balance.credited",
        resource_type="balance",
        resource_id=topup.user_id,
        data={
            "user_id": topup.user_id,
            "amount": amount,
            "currency": topup.currency,
            "source": "topup",
            "source_id": topup.id,
            "transfer_id": credit_id,
            # The credit is the Airtm confirmation; the delivery tx comes later.
            "transaction_hash": None,
            "available": format_amount(balance.available),
            "reserved": format_amount(balance.reserved),
        },
    )
    return topup, await start_delivery(conn, topup)
