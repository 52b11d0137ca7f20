"""Airtm payin news applied to top-ups (api.md 3.14, 5.5): forward only, final states stick.

Webhooks, refreshes and reconciliation hand a payin read to :func:`apply_payin_status`; the
API hands the answer of the payin creation to :func:`record_payin_created`. Both lock the row,
store what Airtm said (``airtm_status`` always, so ignored news is still on record) and take
at most the forward steps the mapping allows. News for a TOPUP_CREATED row first records the
payin as created (the API may have died between the Airtm call and its own commit).
"""

import logging
from datetime import datetime, timedelta
from typing import Final, Literal

import asyncpg
import msgspec

from flows.queries import topups as queries
from flows.queries.topups import TopUp
from flows.topup_changes import (
    advance,
    emit_topup,
    locked_topup,
    to_awaiting,
    to_canceled,
    to_failed,
    to_succeeded,
)
from flows.transitions import Actor
from providers.airtm.port import Payin
from statemachines.status import TopUpStatus as S

__all__ = ["Ignored", "PayinApplied", "apply_payin_status", "record_payin_created"]

_log = logging.getLogger(__name__)
_PAYIN_TTL: Final = timedelta(days=15)
_FINAL: Final = frozenset({S.TOPUP_SUCCEEDED, S.TOPUP_FAILED, S.TOPUP_CANCELED})
# How far along each status is: news that does not move forward is ignored.
_RANK: Final = {
    S.TOPUP_CREATED: 0,
    S.TOPUP_AWAITING_USER_CONFIRMATION: 1,
    S.TOPUP_PROCESSING: 2,
    S.TOPUP_SUCCEEDED: 3,
    S.TOPUP_FAILED: 3,
    S.TOPUP_CANCELED: 3,
}
# api.md 3.14, compared case-insensitively; anything else leaves the top-up unchanged.
_TARGET: Final = {
    "CREATED": S.TOPUP_AWAITING_USER_CONFIRMATION,
    "PROCESSING": S.TOPUP_PROCESSING,
    "CONFIRMED": S.TOPUP_SUCCEEDED,
    "SUCCEEDED": S.TOPUP_SUCCEEDED,
    "FAILED": S.TOPUP_FAILED,
    "BRIDGE_FAILED": S.TOPUP_FAILED,
    "CANCELED": S.TOPUP_CANCELED,
    "BRIDGE_CANCELED": S.TOPUP_CANCELED,
}

Ignored = Literal[
    "duplicate", "out_of_order", "terminal", "terminal_conflict", "unknown_status", "mismatch"
]


class PayinApplied(msgspec.Struct, frozen=True, kw_only=True):
    """What a payin read did to its top-up.

    ``ignored`` says why nothing (more) changed; ``terminal_conflict``, ``unknown_status``
    and ``mismatch`` need attention (providers.md 4.3: re-read the payin and alert).
    ``delivery_operation_id`` is set when this read confirmed the top-up.
    """

    topup: TopUp
    changed: bool
    ignored: Ignored | None = None
    delivery_operation_id: str | None = None

    @property
    def needs_attention(self) -> bool:
        """Whether a human should look at this payin."""
        return self.ignored in ("terminal_conflict", "unknown_status", "mismatch")


def _expiry(payin: Payin) -> datetime | None:
    """Airtm expires a payin 15 days after its creation (providers.md 4.3)."""
    if payin.created_at is None:
        return None
    try:
        return datetime.fromisoformat(payin.created_at) + _PAYIN_TTL
    except ValueError:
        return None


def _same_payin(topup: TopUp, payin: Payin) -> bool:
    """Whether ``payin`` can be this top-up's: its code, its id once known, its amount."""
    return (
        (not payin.code or payin.code == topup.id)
        and (topup.airtm_payin_id is None or topup.airtm_payin_id == payin.id)
        and payin.amount_minor == topup.amount_minor
        and 0 <= payin.net_amount_minor <= payin.amount_minor
    )


async def _move(
    conn: asyncpg.Connection, topup: TopUp, target: S, payin: Payin, actor: Actor
) -> PayinApplied:
    """One forward step from AWAITING_USER_CONFIRMATION or PROCESSING to ``target``."""
    if target is S.TOPUP_SUCCEEDED:
        topup, delivery = await to_succeeded(
            conn, topup, net_minor=payin.net_amount_minor, actor=actor
        )
        return PayinApplied(topup=topup, changed=True, delivery_operation_id=delivery.id)
    if target is S.TOPUP_PROCESSING:
        topup = await advance(conn, topup, "process", actor)
        await emit_topup(conn, topup, "topup.processing", {"airtm_payin_id": topup.airtm_payin_id})
    elif target is S.TOPUP_FAILED:
        reason = payin.failure_reason or "the payin failed at Airtm"
        code = payin.raw_status.upper()
        topup = await to_failed(conn, topup, code=code, reason=reason, actor=actor)
    else:
        expired = (payin.failure_reason or "").upper() == "EXPIRED"
        topup = await to_canceled(
            conn,
            topup,
            "cancel_by_provider",
            canceled_by="expiry" if expired else "provider",
            reason=payin.failure_reason,
            actor=actor,
        )
    return PayinApplied(topup=topup, changed=True)


def _not_applicable(topup: TopUp, target: S | None, raw_status: str) -> PayinApplied | None:
    """Unknown status, or a final top-up: nothing moves (the status is already stored)."""
    if target is not None and topup.status not in _FINAL:
        return None
    ignored: Ignored = "unknown_status" if target is None else "terminal"
    # Stale progress (PROCESSING after CONFIRMED) is expected; another final status is not.
    if target in _FINAL and target != topup.status:
        ignored = "terminal_conflict"
    if ignored != "terminal":
        _log.error("top-up %s: payin status %s ignored (%s)", topup.id, raw_status, ignored)
    return PayinApplied(topup=topup, changed=False, ignored=ignored)


async def _apply(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    topup_id: str,
    payin: Payin,
    actor: Actor,
    expires_at: datetime | None,
) -> PayinApplied:
    topup = await locked_topup(conn, marketplace_id, topup_id)
    if not _same_payin(topup, payin):
        _log.error("top-up %s: payin %s does not match it; ignored", topup.id, payin.id)
        return PayinApplied(topup=topup, changed=False, ignored="mismatch")
    topup = await queries.set_payin_fields(
        conn,
        topup.marketplace_id,
        topup.id,
        payin_id=payin.id,
        airtm_status=payin.raw_status,
        confirmation_uri=payin.checkout_url,
        expires_at=expires_at or _expiry(payin),
        provider_fee_minor=payin.airtm_fee_minor,
    )
    target = _TARGET.get(payin.raw_status.upper())
    stop = _not_applicable(topup, target, payin.raw_status)
    if stop is not None:
        return stop
    assert target is not None, "unknown statuses stop above"
    current = S(topup.status)
    created = current is S.TOPUP_CREATED
    if created:
        topup = await to_awaiting(conn, topup, actor)
    if _RANK[target] > _RANK[S(topup.status)]:
        return await _move(conn, topup, target, payin, actor)
    if created:
        return PayinApplied(topup=topup, changed=True)
    stale: Ignored = "duplicate" if target is current else "out_of_order"
    return PayinApplied(topup=topup, changed=False, ignored=stale)


async def record_payin_created(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    topup_id: str,
    payin: Payin,
    actor: Actor,
    expires_at: datetime | None = None,
) -> PayinApplied:
    """The payin exists at Airtm: store it and move to TOPUP_AWAITING_USER_CONFIRMATION.

    Emits ``topup.confirmation_required``. A payin adopted by code may already be further
    along: its status is applied too. A top-up canceled meanwhile only stores the payin id
    (the API cancels the payin at Airtm). ``expires_at`` defaults to creation + 15 days.

    Raises:
        TopUpNotFound: no such top-up in the marketplace.
    """
    return await _apply(
        conn,
        marketplace_id=marketplace_id,
        topup_id=topup_id,
        payin=payin,
        actor=actor,
        expires_at=expires_at,
    )


async def apply_payin_status(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    topup_id: str,
    payin: Payin,
    actor: Actor,
) -> PayinApplied:
    """Apply a payin read (webhook, refresh, reconciliation) by the api.md 3.14 mapping.

    ``payin.raw_status`` is Airtm's status (case-insensitive; ``SUCCEEDED`` = ``CONFIRMED``).
    Only forward moves apply; a duplicate, an out-of-order status, a final top-up or an
    unknown status change nothing but the stored ``airtm_status``. CONFIRMED (from
    AWAITING_USER_CONFIRMATION or PROCESSING, possibly skipping PROCESSING) credits the user,
    emits ``topup.succeeded`` and ``balance.credited`` and starts TOPUP_DELIVERY.

    Raises:
        TopUpNotFound: no such top-up in the marketplace.
    """
    return await _apply(
        conn,
        marketplace_id=marketplace_id,
        topup_id=topup_id,
        payin=payin,
        actor=actor,
        expires_at=None,
    )
