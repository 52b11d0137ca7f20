"""Top-ups (api.md 3.7, 5.5): an Airtm payin credits the user, then USDC is delivered on chain.

Every function runs in the caller's transaction; no provider is called here. The API creates
the row (:func:`create_topup`), commits, creates the payin at Airtm with ``code`` = top-up id,
and records the answer (:func:`record_payin_created` / :func:`record_payin_creation_failed`).
Webhooks, refreshes and reconciliation hand every later payin read to
:func:`apply_payin_status`.

Money. A confirmed payin lands in the platform's Airtm account (off chain, net of Airtm's fee);
the user's money must end up in the user's Stellar wallet, so a TOPUP_DELIVERY operation
(``flows.topup_steps``) pays the same amount of USDC from the treasury wallet to the user.
Three real balances must each match one ledger account at every moment:

    platform's Airtm account  == treasury:airtm    (posted)
    treasury Stellar wallet   == treasury:stellar  (posted)
    user's Stellar wallet     == user:<usr>        (posted) - the user's undelivered top-ups

Postings (amount A, Airtm fee F, net N = A - F; the platform bears F, the user gets A):

    Airtm CONFIRMED   external:airtm   -> treasury:airtm    N   linked with
                      clearing:topups  -> user:<usr>        A   (the credit, balance.credited)
    delivery start    treasury:stellar -> clearing:topups   A   PENDING (the treasury's hold)
    payment on chain  post the hold; operation FAILED: void it

The user is credited once, at CONFIRMED, as api.md requires ("credited exactly once, when
Airtm reports CONFIRMED"): ``topup.succeeded`` carries that transfer and the user may spend it
at once. Until the delivery confirms, the user's ledger balance is ahead of the wallet by A,
and that difference is exactly the debit balance of ``clearing:topups`` (per user: the top-ups
with ``credit_transfer_id`` set and ``delivered_at`` null, see
``flows.queries.topups.undelivered_total_minor``); it returns to zero per top-up on delivery.
Airtm's fee appears as the treasury accounts' net change (+N at Airtm, -A on chain): the chart
has no expense account, and the fee is kept on the row (``provider_fee_minor``).

The one gap the books cannot close by themselves is a delivery payment that landed while its
hash is still PENDING in ``operation_submissions`` (the answer was lost): reconciliation
looks pending hashes up, as the operation itself does. The treasury's ``available`` already
excludes it (the hold), so it is never promised twice.

Status news only moves forward (api.md 3.14 mapping); terminal top-ups store the latest Airtm
status and ignore it. The row lock plus derived transfer ids make a repeated or concurrent
CONFIRMED credit once.

Modules: this one (create, cancel, reads), ``topup_payins`` (payin news), ``topup_changes``
(state changes of a locked row), ``topup_ledger`` (postings), ``topup_steps`` (delivery).
"""

import logging
from datetime import datetime
from typing import Any

import asyncpg

from common.errors import InvalidAmount, InvalidTransition, TopUpNotFound, UserNotFound
from common.ids import new_id
from common.money import format_amount
from flows.audit import record_audit
from flows.queries import topups as queries
from flows.queries import users
from flows.queries.operations import Operation
from flows.queries.topups import TopUp, TopUpPage
from flows.topup_changes import emit_topup, locked_topup, start_delivery, to_canceled, to_failed
from flows.topup_payins import PayinApplied, apply_payin_status, record_payin_created
from flows.transitions import Actor
from providers.airtm.amounts import CENT_MINOR
from statemachines.status import TopUpStatus

__all__ = [
    "PayinApplied",
    "TopUp",
    "TopUpPage",
    "apply_payin_status",
    "cancel_topup",
    "create_topup",
    "find_topup_for_payin",
    "get_topup",
    "list_topups",
    "record_payin_created",
    "record_payin_creation_failed",
    "restart_topup_delivery",
]

_log = logging.getLogger(__name__)


async def create_topup(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    user_id: str,
    amount_minor: int,
    return_url: str,
    cancel_url: str,
    actor: Actor,
    description: str | None = None,
    metadata: dict[str, Any] | None = None,
    topup_id: str | None = None,
) -> TopUp:
    """Write a top-up in TOPUP_CREATED (before the payin exists) and emit ``topup.created``.

    Raises:
        UserNotFound: no such user in the marketplace.
        InvalidAmount: not positive, or not whole cents (Airtm carries 2 decimals).
    """
    if amount_minor <= 0 or amount_minor % CENT_MINOR != 0:
        raise InvalidAmount("a top-up amount must be positive whole cents", amount=amount_minor)
    if await users.get_user(conn, marketplace_id, user_id) is None:
        raise UserNotFound(field="user_id", user_id=user_id)
    topup = await queries.insert_topup(
        conn,
        marketplace_id=marketplace_id,
        topup_id=topup_id or new_id("topup_"),
        user_id=user_id,
        amount_minor=amount_minor,
        return_url=return_url,
        cancel_url=cancel_url,
        description=description,
        metadata=metadata,
    )
    _log.debug("top-up %s created by %s", topup.id, actor.type)
    await record_audit(
        conn,
        marketplace_id=marketplace_id,
        actor_type=actor.type,
        actor_id=actor.id,
        action="TOPUP_CREATED",
        resource_type="topup",
        resource_id=topup.id,
        after={"status": topup.status, "user_id": user_id, "amount": format_amount(amount_minor)},
        request_id=actor.request_id,
    )
    data = {"amount": format_amount(amount_minor), "currency": topup.currency}
    await emit_topup(conn, topup, "topup.created", data)
    return topup


async def record_payin_creation_failed(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    topup_id: str,
    error_code: str | None,
    reason: str,
    actor: Actor,
) -> TopUp:
    """Airtm refused the payin for good: TOPUP_CREATED -> TOPUP_FAILED, ``topup.failed``.

    Raises:
        TopUpNotFound: no such top-up in the marketplace.
        InvalidTransition: the top-up is no longer TOPUP_CREATED.
    """
    topup = await locked_topup(conn, marketplace_id, topup_id)
    if topup.status != TopUpStatus.TOPUP_CREATED:
        raise InvalidTransition(
            f"cannot record a payin failure for a topup in {topup.status}",
            resource_type="topup",
            resource_id=topup.id,
            current_state=topup.status,
            allowed_states=[TopUpStatus.TOPUP_CREATED.value],
        )
    return await to_failed(conn, topup, code=error_code, reason=reason, actor=actor)


async def cancel_topup(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    topup_id: str,
    actor: Actor,
    reason: str | None = None,
) -> TopUp:
    """Cancel a top-up in TOPUP_CREATED or AWAITING_USER_CONFIRMATION (``topup.canceled``).

    The API cancels the payin at Airtm first; this records the outcome.

    Raises:
        TopUpNotFound: no such top-up in the marketplace.
        InvalidTransition: any other status (409 ``INVALID_STATE``).
    """
    topup = await locked_topup(conn, marketplace_id, topup_id)
    return await to_canceled(conn, topup, "cancel", canceled_by="api", reason=reason, actor=actor)


async def restart_topup_delivery(
    conn: asyncpg.Connection, *, marketplace_id: str, topup_id: str, actor: Actor
) -> Operation:
    """Start TOPUP_DELIVERY again for a succeeded top-up whose delivery FAILED.

    Returns the running delivery when one runs already.

    Raises:
        TopUpNotFound: no such top-up in the marketplace.
        InvalidTransition: the top-up is not SUCCEEDED, or its USDC was already delivered.
    """
    topup = await locked_topup(conn, marketplace_id, topup_id)
    if topup.status != TopUpStatus.TOPUP_SUCCEEDED or topup.delivered_at is not None:
        raise InvalidTransition(
            "only a succeeded, undelivered top-up can be delivered",
            resource_type="topup",
            resource_id=topup.id,
            current_state=topup.status,
            allowed_states=[TopUpStatus.TOPUP_SUCCEEDED.value],
        )
    _log.info("top-up %s: delivery restarted by %s %s", topup.id, actor.type, actor.id)
    return await start_delivery(conn, topup)


async def get_topup(conn: asyncpg.Connection, *, marketplace_id: str, topup_id: str) -> TopUp:
    """One top-up of the marketplace.

    Raises:
        TopUpNotFound: unknown here (another marketplace's id answers the same).
    """
    topup = await queries.get_topup(conn, marketplace_id, topup_id)
    if topup is None:
        raise TopUpNotFound(topup_id=topup_id)
    return topup


async def list_topups(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    user_id: str | None = None,
    statuses: list[str] | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 20,
) -> TopUpPage:
    """A page of the marketplace's top-ups, newest first (keyset ``after`` = last row's key)."""
    return await queries.list_topups(
        conn,
        marketplace_id,
        user_id=user_id,
        statuses=statuses,
        created_after=created_after,
        created_before=created_before,
        after=after,
        limit=limit,
    )


async def find_topup_for_payin(
    conn: asyncpg.Connection, *, payin_id: str | None, code: str | None
) -> TopUp | None:
    """The top-up an inbound payin refers to, by payin id or by code, in any marketplace."""
    return await queries.find_topup(conn, payin_id=payin_id, code=code)
