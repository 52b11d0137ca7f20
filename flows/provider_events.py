"""Inbound provider webhooks (api.md 3.14): store once, then apply as a refresh would.

The API verifies a webhook's signature on the raw body, then hands it to :func:`store_event`,
which matches the resource it names (a payin's top-up, a payout's withdrawal, a contract's
escrow) and stores it once per provider event id; a repeat is reported as a duplicate and
stored nothing. Unknown types and unmatched ids are stored IGNORED at once.

An event is news, not truth (providers.md 4.5): :class:`EventProcessor` re-reads the payin or
payout at Airtm, outside any transaction, and hands the read to the very functions a refresh
and reconciliation use (:func:`flows.topups.apply_payin_status`,
:func:`flows.withdrawals.apply_provider_status`), which only move forward: a ``payin.created``
arriving after ``payin.confirmed`` changes nothing, and a confirmation credits once however
often it is applied. The event's status is written in the same transaction as the change.
A Trustless Work webhook is only a hint: if an operation runs on the escrow's order, the
operation runner is woken so it reads the chain now; nothing from the payload is applied.

The request that stored an event processes it right after the commit (it holds the event's
lease); :class:`ProviderEventRetrier` processes what is left (RECEIVED after a crash, FAILED
after a provider outage) with exponential backoff, up to :data:`MAX_ATTEMPTS` attempts.
"""

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, Final, Literal, cast

import asyncpg
import msgspec

from flows import topups
from flows.audit import record_audit
from flows.background import BackgroundLoop
from flows.queries import provider_events as queries
from flows.queries import topups as topup_queries
from flows.queries import withdrawals as withdrawal_queries
from flows.queries.provider_events import EventStatus, ProviderEvent
from flows.transitions import Actor
from flows.withdrawal_status import TERMINAL as WITHDRAWAL_TERMINAL
from flows.withdrawals import apply_provider_status
from ledger.db import run_in_transaction
from providers.airtm.port import FiatProvider, Payin, Payout, PayoutStatus
from providers.errors import ProviderRejected
from statemachines.status import TopUpStatus

__all__ = [
    "AIRTM",
    "LEASE_S",
    "MAX_ATTEMPTS",
    "TRUSTLESS_WORK",
    "EventProcessor",
    "EventStatus",
    "IncomingEvent",
    "ProviderEvent",
    "ProviderEventRetrier",
    "Stored",
    "Subject",
    "retry_delay_s",
    "store_event",
]

_log = logging.getLogger(__name__)

AIRTM: Final = "airtm"
TRUSTLESS_WORK: Final = "trustless_work"
# How long a processor owns an event it claimed before another may take it over.
LEASE_S: Final = 60.0
# About a day of retries at the capped backoff; reconciliation covers what is left after.
MAX_ATTEMPTS: Final = 30
_RETRY_BASE_S: Final = 5.0
_RETRY_CAP_S: Final = 3600.0
_ERROR_MAX: Final = 1000
_CLAIM_BATCH: Final = 20
_TOPUP_FINAL: Final = frozenset(
    {TopUpStatus.TOPUP_SUCCEEDED, TopUpStatus.TOPUP_FAILED, TopUpStatus.TOPUP_CANCELED}
)
# Airtm's "not found" codes (providers.md 4.1): payin, payout.
_NOT_FOUND: Final = frozenset({"415031", "415005"})


class Subject(msgspec.Struct, frozen=True, kw_only=True):
    """What a verified webhook says it is about: an Airtm payin or payout, or a TW escrow.

    ``provider_id`` is the payin or payout id, or the contract id; ``code`` is Airtm's
    ``code`` (our top-up or withdrawal id).
    """

    kind: Literal["payin", "payout", "escrow"]
    provider_id: str | None
    code: str | None = None


class IncomingEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A verified webhook, ready to store. ``subject`` is ``None`` for an unknown type."""

    provider: Literal["airtm", "trustless_work"]
    event_id: str
    type: str
    body: dict[str, Any]
    sent_at: datetime | None
    subject: Subject | None


class Stored(msgspec.Struct, frozen=True, kw_only=True):
    """The stored event; ``duplicate`` when its provider id had been stored before."""

    event: ProviderEvent
    duplicate: bool


def retry_delay_s(attempts: int) -> float:
    """The wait after the ``attempts``-th failed attempt: 5 s, doubling, capped at an hour."""
    return float(min(_RETRY_CAP_S, _RETRY_BASE_S * 2 ** max(0, min(attempts - 1, 20))))


async def _match(conn: asyncpg.Connection, subject: Subject) -> tuple[str, str, str] | None:
    """``(marketplace_id, resource_type, resource_id)`` of the resource the subject names."""
    if subject.kind == "payin":
        topup = await topup_queries.find_topup(
            conn, payin_id=subject.provider_id, code=subject.code
        )
        return None if topup is None else (topup.marketplace_id, "topup", topup.id)
    if subject.kind == "payout":
        row = await withdrawal_queries.find_by_airtm_payout(
            conn, payout_id=subject.provider_id, code=subject.code
        )
        return None if row is None else (row.marketplace_id, "withdrawal", row.id)
    if subject.provider_id is None:
        return None
    escrow = await queries.escrow_by_contract(conn, subject.provider_id)
    return None if escrow is None else (escrow.marketplace_id, "escrow", escrow.id)


async def store_event(
    conn: asyncpg.Connection, incoming: IncomingEvent, *, lease_s: float = LEASE_S
) -> Stored:
    """Store a verified webhook once, matched to its resource, in the caller's transaction.

    A new event that names a known resource is RECEIVED and leased to the caller for
    ``lease_s`` (it processes it next); an unknown type or an unmatched id is IGNORED at once.
    Of concurrent identical calls, exactly one inserts; the others get ``duplicate=True``.
    """
    match = None if incoming.subject is None else await _match(conn, incoming.subject)
    status, outcome = EventStatus.RECEIVED, None
    if incoming.subject is None:
        status, outcome = EventStatus.IGNORED, "unknown_type"
    elif match is None:
        status, outcome = EventStatus.IGNORED, "unmatched"
    marketplace_id, resource_type, resource_id = match or (None, None, None)
    event = await queries.insert_event(
        conn,
        provider=incoming.provider,
        provider_event_id=incoming.event_id,
        type=incoming.type,
        body=incoming.body,
        sent_at=incoming.sent_at,
        marketplace_id=marketplace_id,
        resource_type=resource_type,
        resource_id=resource_id,
        status=status,
        outcome=outcome,
        lease_s=lease_s,
    )
    if event is None:
        existing = await queries.get_event_by_provider_id(
            conn, incoming.provider, incoming.event_id
        )
        assert existing is not None, "a conflicting provider event vanished"
        return Stored(event=existing, duplicate=True)
    if event.marketplace_id is not None and event.resource_id is not None:
        # Once per stored event, in its transaction: never for a duplicate or a refused call.
        # Unmatched events belong to no marketplace, so to no audit chain; the table keeps them.
        await record_audit(
            conn,
            marketplace_id=event.marketplace_id,
            actor_type="PROVIDER",
            actor_id=event.provider,
            action="WEBHOOK_RECEIVED",
            resource_type=event.resource_type or "unknown",
            resource_id=event.resource_id,
            after={"type": event.type, "provider_event_id": event.provider_event_id},
        )
    return Stored(event=event, duplicate=False)


@contextlib.asynccontextmanager
async def _connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection (autocommit), typed as the Connection that queries take."""
    async with pool.acquire() as proxy:
        yield cast(asyncpg.Connection, proxy)


def _matched(event: ProviderEvent) -> tuple[str, str]:
    """``(marketplace_id, resource_id)`` of an event matched on receipt."""
    assert event.marketplace_id is not None, "only matched events are processed"
    assert event.resource_id is not None, "only matched events are processed"
    return event.marketplace_id, event.resource_id


def _data_id(event: ProviderEvent) -> str | None:
    """The payin or payout id in a stored Airtm body (verified and parsed on receipt)."""
    data = event.body.get("data")
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


class EventProcessor:
    """Applies stored events; ``wake`` tells the operation runner to look for work now."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        fiat: FiatProvider | None,
        *,
        wake: Callable[[], None],
        lease_s: float = LEASE_S,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self._pool = pool
        self._fiat = fiat
        self._wake = wake
        self._lease_s = lease_s
        self._max_attempts = max_attempts

    async def process(self, event_id: int, actor: Actor) -> ProviderEvent | None:
        """Claim one unfinished event now and process it; ``None`` if it is finished already.

        Never raises for a processing failure: the event is then FAILED, due again later.
        """
        async with _connection(self._pool) as conn:
            claimed = await queries.claim_event(conn, event_id, self._lease_s)
        if claimed is None:
            return None
        return await self._run(claimed, actor)

    async def run_due(self) -> int:
        """Process the due unfinished events (a batch); returns how many were claimed."""
        async with _connection(self._pool) as conn:
            claimed = await queries.claim_due(conn, _CLAIM_BATCH, self._lease_s, self._max_attempts)
        for event in claimed:
            await self._run(event, Actor(type="PROVIDER", id=event.provider))
        return len(claimed)

    async def _run(self, event: ProviderEvent, actor: Actor) -> ProviderEvent:
        try:
            return await self._apply(event, actor)
        except Exception as error:  # a provider outage or a bug: keep the event, retry later
            delay_s = retry_delay_s(event.attempts)
            _log.warning(
                "provider event %s (%s %s) failed, attempt %d; retry in %.0f s: %r",
                event.id,
                event.provider,
                event.type,
                event.attempts,
                delay_s,
                error,
            )
            text = f"{type(error).__name__}: {error}"[:_ERROR_MAX]
            async with _connection(self._pool) as conn:
                failed = await queries.mark_failed(conn, event.id, text, delay_s)
            return failed or event

    async def _apply(self, event: ProviderEvent, actor: Actor) -> ProviderEvent:
        if event.resource_type == "topup":
            return await self._apply_payin(event, actor)
        if event.resource_type == "withdrawal":
            return await self._apply_payout(event, actor)
        if event.resource_type == "escrow":
            return await self._wake_for_escrow(event)
        return await self._finish(event, EventStatus.IGNORED, "unmatched")

    async def _finish(
        self, event: ProviderEvent, status: EventStatus, outcome: str
    ) -> ProviderEvent:
        async with _connection(self._pool) as conn:
            done = await queries.mark_done(conn, event.id, status, outcome)
        return done or event

    def _airtm(self) -> FiatProvider:
        if self._fiat is None:
            raise RuntimeError("Airtm is not configured: the event waits")
        return self._fiat

    async def _apply_payin(self, event: ProviderEvent, actor: Actor) -> ProviderEvent:
        marketplace_id, topup_id = _matched(event)
        async with _connection(self._pool) as conn:
            topup = await topup_queries.get_topup(conn, marketplace_id, topup_id)
        assert topup is not None, "a matched top-up vanished"
        if topup.status in _TOPUP_FINAL:
            return await self._finish(event, EventStatus.IGNORED, f"final:{topup.status}")
        payin_id = _data_id(event) or topup.airtm_payin_id
        fiat = self._airtm()
        try:
            payin: Payin = await (
                fiat.get_payin(payin_id) if payin_id else fiat.get_payin_by_code(topup.id)
            )
        except ProviderRejected as error:
            if error.status_code == 404 or error.reason in _NOT_FOUND:
                _log.error("provider event %s: Airtm does not know payin %s", event.id, payin_id)
                return await self._finish(event, EventStatus.IGNORED, "not_found_at_provider")
            raise

        async def work(conn: asyncpg.Connection) -> tuple[topups.PayinApplied, ProviderEvent]:
            applied = await topups.apply_payin_status(
                conn,
                marketplace_id=topup.marketplace_id,
                topup_id=topup.id,
                payin=payin,
                actor=actor,
            )
            status = EventStatus.APPLIED if applied.changed else EventStatus.IGNORED
            outcome = applied.topup.status if applied.changed else str(applied.ignored)
            done = await queries.mark_done(conn, event.id, status, outcome)
            return applied, done or event

        applied, done = await run_in_transaction(self._pool, work)
        if applied.delivery_operation_id is not None:
            self._wake()  # the confirmed top-up's USDC delivery
        return done

    async def _apply_payout(self, event: ProviderEvent, actor: Actor) -> ProviderEvent:
        marketplace_id, withdrawal_id = _matched(event)
        async with _connection(self._pool) as conn:
            row = await withdrawal_queries.get_withdrawal(conn, marketplace_id, withdrawal_id)
        assert row is not None, "a matched withdrawal vanished"
        if row.status in WITHDRAWAL_TERMINAL:
            return await self._finish(event, EventStatus.IGNORED, f"final:{row.status}")
        payout_id = _data_id(event) or row.airtm_payout_id
        fiat = self._airtm()
        try:
            payout: Payout = await (
                fiat.get_payout(payout_id) if payout_id else fiat.get_payout_by_code(row.id)
            )
        except ProviderRejected as error:
            if error.status_code == 404 or error.reason in _NOT_FOUND:
                _log.error("provider event %s: Airtm does not know payout %s", event.id, payout_id)
                return await self._finish(event, EventStatus.IGNORED, "not_found_at_provider")
            raise
        # The same news a refresh hands over (api.withdrawals_payouts).
        ended_badly = payout.status in (PayoutStatus.FAILED, PayoutStatus.CANCELED)

        async def work(conn: asyncpg.Connection) -> ProviderEvent:
            update = await apply_provider_status(
                conn,
                marketplace_id=row.marketplace_id,
                withdrawal_id=row.id,
                airtm_status=payout.raw_status,
                airtm_payout_id=payout.id,
                failure_code=payout.reason_code if ended_badly else None,
                failure_reason=(payout.reason_description or payout.reason_code)
                if ended_badly
                else None,
                actor=actor,
            )
            applied = update.outcome == "applied"
            status = EventStatus.APPLIED if applied else EventStatus.IGNORED
            outcome = update.withdrawal.status if applied else update.outcome
            done = await queries.mark_done(conn, event.id, status, outcome)
            return done or event

        done = await run_in_transaction(self._pool, work)
        if done.status == EventStatus.APPLIED:
            self._wake()  # the payout's operation may stop polling sooner
        return done

    async def _wake_for_escrow(self, event: ProviderEvent) -> ProviderEvent:
        """A TW hint: wake the runner if an operation runs on the escrow's order."""
        marketplace_id, escrow_id = _matched(event)
        async with _connection(self._pool) as conn:
            running = await queries.running_escrow_operation(conn, marketplace_id, escrow_id)
        if running is None:
            return await self._finish(event, EventStatus.IGNORED, "no_running_operation")
        self._wake()
        return await self._finish(event, EventStatus.APPLIED, f"woke:{running}")


class ProviderEventRetrier:
    """Processes unfinished events in the background until stopped."""

    def __init__(self, processor: EventProcessor, *, poll_s: float = 1.0) -> None:
        self._processor = processor
        self._loop = BackgroundLoop("provider-event-retrier", self._run_due, poll_s)

    def start(self) -> None:
        """Start the loop (once)."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop the loop; a claimed event is taken up again once its lease runs out."""
        await self._loop.stop()

    async def _run_due(self) -> bool:
        return await self._processor.run_due() > 0
