"""Sending outbound webhooks (api.md 3.10): claim due deliveries, POST them signed, record.

The fan-out trigger (schema.sql) writes the deliveries in each event's transaction. A
:class:`WebhookWorker` never holds a transaction across the HTTP call:

1. claim: ``FOR UPDATE SKIP LOCKED`` + a lease (``next_attempt_at`` pushed out), commit; a
   delivery waits while an earlier delivery of the same resource to the same endpoint is
   still pending, so per resource they arrive in sequence order (redeliveries excepted);
2. read the endpoint and the event, open the secrets, POST (no redirects, a bounded time);
3. record the attempt and the outcome in one transaction, fenced on the claim: a 2xx is
   SUCCEEDED; anything else retries after 30 s doubling up to 6 h (±10 % jitter) until 3 days
   after the first attempt, then FAILED. A deleted endpoint's delivery is CANCELED.

A worker that dies leaves the delivery PENDING; after its lease another worker sends it again
(at-least-once: receivers dedupe on the event id). :class:`WebhookDispatcher` runs a worker in
the background, woken by ``NOTIFY offerhub_webhook_deliveries`` and by polling.
"""

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, cast
from urllib.parse import urlsplit

import asyncpg
import httpx
import msgspec

from common.metrics import WEBHOOK_DELIVERIES
from common.times import format_time
from flows.queries import webhook_deliveries as queries
from flows.queries.webhook_deliveries import DeliveryAttempt, DeliveryTarget
from flows.queries.webhooks import DeliveryRow
from flows.webhooks import WebhookSecretError, address_allowed, open_endpoint_secret
from flows.webhooks import signature_header as build_signature
from ledger.db import run_in_transaction
from providers.stellar.wallet_keys import MasterKeyring

__all__ = [
    "NOTIFY_CHANNEL",
    "USER_AGENT",
    "DeliverySettings",
    "WebhookDispatcher",
    "WebhookWorker",
    "envelope_body",
    "retry_delay_s",
    "running_webhook_dispatcher",
]

_log = logging.getLogger(__name__)
NOTIFY_CHANNEL: Final = "offerhub_webhook_deliveries"
USER_AGENT: Final = "OfferHub-Webhooks/1"
_ERROR_MAX: Final = 1000


class DeliverySettings(msgspec.Struct, frozen=True, kw_only=True):
    """Delivery timing and URL policy (api.md 3.10 defaults; tests shrink the times)."""

    # http:// and loopback/private addresses (tests, the sandbox); off in production.
    allow_insecure_urls: bool = False
    backoff_base_s: float = 30.0
    backoff_max_s: float = 6 * 3600.0
    max_age_s: float = 3 * 86400.0
    timeout_s: float = 10.0
    # Must exceed timeout_s plus recording; a dead worker's deliveries return after it.
    lease_s: float = 60.0
    poll_interval_s: float = 1.0
    max_in_flight: int = 16


def retry_delay_s(attempts: int, settings: DeliverySettings) -> float:
    """Delay after the ``attempts``-th failed attempt: base doubling, capped, ±10 % jitter."""
    exponent = min(max(attempts - 1, 0), 64)  # past 2**64 every realistic cap has been hit
    capped = min(settings.backoff_max_s, settings.backoff_base_s * 2.0**exponent)
    # Jitter spreads endpoints that failed together (an outage) over the next window.
    return capped * random.uniform(0.9, 1.1)  # noqa: S311 - not a secret


def envelope_body(target: DeliveryTarget, marketplace_id: str) -> bytes:
    """The webhook body: the event envelope of api.md 6.1, exactly as SSE ``data`` carries it."""
    assert target.occurred_at is not None
    envelope: dict[str, Any] = {
        "id": target.event_id,
        "sequence": target.event_sequence,
        "type": target.event_type,
        "occurred_at": format_time(target.occurred_at),
        "marketplace_id": marketplace_id,
        "resource_type": target.resource_type,
        "resource_id": target.resource_id,
        "data": target.data,
    }
    return msgspec.json.encode(envelope)


class _Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one HTTP attempt produced."""

    response_status: int | None
    error: str | None
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300


def _clip(text: str) -> str:
    return text if len(text) <= _ERROR_MAX else text[: _ERROR_MAX - 3] + "..."


class WebhookWorker:
    """Claims due deliveries and sends them; any number may run side by side."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        keyring: MasterKeyring,
        http: httpx.AsyncClient,
        settings: DeliverySettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pool = pool
        self._keyring = keyring
        self._http = http
        self.settings = settings or DeliverySettings()
        self._clock = clock

    async def claim(self, limit: int) -> list[DeliveryRow]:
        """Claim up to ``limit`` due deliveries (committed before anything is sent)."""

        async def work(conn: asyncpg.Connection) -> list[DeliveryRow]:
            return await queries.claim_due(conn, limit, self.settings.lease_s)

        return await run_in_transaction(self._pool, work)

    async def run_once(self, limit: int = 16) -> int:
        """Claim up to ``limit`` due deliveries and send them concurrently; how many."""
        claimed = await self.claim(limit)
        await asyncio.gather(*(self.deliver(claim) for claim in claimed))
        return len(claimed)

    async def deliver(self, claim: DeliveryRow) -> DeliveryRow | None:
        """Send one claimed delivery and record the outcome; the recorded row, or ``None``
        when the claim was lost meanwhile (endpoint deleted, lease taken over).
        """
        async with self._pool.acquire() as proxy:
            target = await queries.get_target(cast(asyncpg.Connection, proxy), claim)
        if target is None or target.endpoint_status != "ACTIVE":
            return await self._write(lambda conn: queries.cancel_claimed(conn, claim))
        if target.event_id is None:
            return await self._fail(claim, "the event is no longer retained")
        try:
            signing_secrets = self._open_secrets(claim, target)
        except WebhookSecretError:
            _log.exception("webhook delivery %s: secret unavailable", claim.id)
            outcome = _Outcome(response_status=None, error="secret unavailable", duration_ms=0)
        else:
            outcome = await self._post(claim, target, signing_secrets)
        return await self._record(claim, outcome)

    def _open_secrets(self, claim: DeliveryRow, target: DeliveryTarget) -> list[str]:
        sealed = [target.secret_sealed, target.previous_secret_sealed]
        return [
            open_endpoint_secret(
                self._keyring,
                text,
                marketplace_id=claim.marketplace_id,
                endpoint_id=claim.endpoint_id,
            ).reveal()
            for text in sealed
            if text is not None
        ]

    async def _post(
        self, claim: DeliveryRow, target: DeliveryTarget, signing_secrets: list[str]
    ) -> _Outcome:
        body = envelope_body(target, claim.marketplace_id)
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "OfferHub-Signature": build_signature(signing_secrets, timestamp, body),
            "OfferHub-Event-Id": claim.event_id,
            "OfferHub-Event-Type": claim.event_type,
            "OfferHub-Delivery-Id": claim.id,
            "User-Agent": USER_AGENT,
        }
        started = time.monotonic()

        def elapsed_ms() -> int:
            return int((time.monotonic() - started) * 1000)

        refused = await self._refused_address(target.url)
        if refused is not None:
            return _Outcome(response_status=None, error=refused, duration_ms=elapsed_ms())
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                # Streamed and never read: the receiver's body is not ours to buffer.
                request = self._http.build_request(
                    "POST", target.url, content=body, headers=headers
                )
                response = await self._http.send(request, stream=True, follow_redirects=False)
                await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            return _Outcome(response_status=None, error="timeout", duration_ms=elapsed_ms())
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            # The class name only: transport messages may quote the URL (and its credentials).
            message = f"transport error: {type(error).__name__}"
            return _Outcome(response_status=None, error=message, duration_ms=elapsed_ms())
        status = response.status_code
        failure = None if 200 <= status < 300 else f"HTTP {status}"
        return _Outcome(response_status=status, error=failure, duration_ms=elapsed_ms())

    async def _refused_address(self, url: str) -> str | None:
        """Why the URL's host must not be contacted now (it resolves to a private address)."""
        if self.settings.allow_insecure_urls:
            return None
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or 443
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError:
            return "DNS resolution failed"
        if not infos or not all(address_allowed(str(info[4][0])) for info in infos):
            return "the host resolves to a loopback, private or link-local address"
        return None

    async def _record(self, claim: DeliveryRow, outcome: _Outcome) -> DeliveryRow | None:
        attempted_at = claim.last_attempt_at
        assert attempted_at is not None, "a claim stamps last_attempt_at"
        attempt = DeliveryAttempt(
            marketplace_id=claim.marketplace_id,
            delivery_id=claim.id,
            attempt=claim.attempts,
            attempted_at=attempted_at,
            duration_ms=outcome.duration_ms,
            response_status=outcome.response_status,
            error=None if outcome.error is None else _clip(outcome.error),
            succeeded=outcome.succeeded,
        )

        async def work(conn: asyncpg.Connection) -> DeliveryRow | None:
            if outcome.succeeded:
                assert outcome.response_status is not None
                recorded = await queries.record_success(conn, claim, outcome.response_status)
            else:
                recorded = await queries.record_failure(
                    conn,
                    claim,
                    retry_in_s=retry_delay_s(claim.attempts, self.settings),
                    max_age_s=self.settings.max_age_s,
                    response_status=outcome.response_status,
                    error=attempt.error or "failed",
                )
            # The attempt happened either way; log it even when the claim was lost.
            await queries.insert_attempt(conn, attempt)
            return recorded

        recorded = await self._write(work)
        _count(recorded)
        return recorded

    async def _fail(self, claim: DeliveryRow, error: str) -> DeliveryRow | None:
        recorded = await self._write(lambda conn: queries.fail_claimed(conn, claim, error))
        _count(recorded)
        return recorded

    async def _write(
        self, work: Callable[[asyncpg.Connection], Awaitable[DeliveryRow | None]]
    ) -> DeliveryRow | None:
        recorded = await run_in_transaction(self._pool, work)
        if recorded is None:
            _log.info("webhook delivery: claim lost (endpoint deleted or lease taken over)")
        return recorded


def _count(recorded: DeliveryRow | None) -> None:
    if recorded is None:
        return
    result = {"SUCCEEDED": "succeeded", "FAILED": "exhausted"}.get(recorded.status, "failed")
    if recorded.status != "CANCELED":
        WEBHOOK_DELIVERIES.labels(result).inc()


class WebhookDispatcher:
    """Runs a :class:`WebhookWorker` in the background until stopped.

    Up to ``max_in_flight`` deliveries are sent at once, so one slow endpoint does not hold the
    others back. It looks for due work when woken (a NOTIFY from the fan-out, :meth:`wake`, a
    delivery finishing) and otherwise every ``poll_interval_s``.
    """

    def __init__(self, worker: WebhookWorker) -> None:
        self._worker = worker
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        """Start the loop (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="webhook-dispatcher")

    def wake(self, *_: object) -> None:
        """Look for due deliveries now (also a LISTEN callback, hence the ignored arguments)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop the loop and the sends in flight; interrupted ones are sent again after their
        lease (at-least-once).
        """
        tasks = [*self._in_flight, *([self._task] if self._task is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None

    async def _loop(self) -> None:
        settings = self._worker.settings
        while True:
            self._wake.clear()
            free = settings.max_in_flight - len(self._in_flight)
            if free > 0:
                try:
                    for claim in await self._worker.claim(free):
                        self._spawn(claim)
                except Exception:
                    # A database outage or a bug: keep the process serving; try again later.
                    _log.exception("webhook dispatcher: claim failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.poll_interval_s):
                    await self._wake.wait()

    def _spawn(self, claim: DeliveryRow) -> None:
        task = asyncio.create_task(self._send(claim), name=f"webhook-{claim.id}")
        self._in_flight.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._in_flight.discard(task)
        # A free slot, and maybe a later delivery of the same resource is now unblocked.
        self._wake.set()

    async def _send(self, claim: DeliveryRow) -> None:
        try:
            await self._worker.deliver(claim)
        except Exception:
            # The delivery stays PENDING and comes back after its lease.
            _log.exception("webhook delivery %s: unexpected failure", claim.id)


@contextlib.asynccontextmanager
async def running_webhook_dispatcher(
    pool: asyncpg.Pool, keyring: MasterKeyring, settings: DeliverySettings
) -> AsyncIterator[WebhookDispatcher]:
    """A started dispatcher with its HTTP client and LISTEN connection; stopped on exit."""
    timeout = httpx.Timeout(settings.timeout_s)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
        dispatcher = WebhookDispatcher(WebhookWorker(pool, keyring, http, settings))
        async with _listening(pool, dispatcher):
            dispatcher.start()
            try:
                yield dispatcher
            finally:
                await dispatcher.stop()


@contextlib.asynccontextmanager
async def _listening(pool: asyncpg.Pool, dispatcher: WebhookDispatcher) -> AsyncIterator[None]:
    """Hold one connection listening on the fan-out's channel; polling covers its absence."""
    try:
        proxy = await pool.acquire()
    except (OSError, asyncpg.PostgresError):
        _log.warning("webhook dispatcher: no LISTEN connection; polling only", exc_info=True)
        yield
        return
    conn = cast(asyncpg.Connection, proxy)
    try:
        await conn.add_listener(NOTIFY_CHANNEL, dispatcher.wake)
        yield
    finally:
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await conn.remove_listener(NOTIFY_CHANNEL, dispatcher.wake)
        await pool.release(proxy)
