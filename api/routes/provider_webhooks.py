"""Inbound provider webhooks (api.md 3.14): ``POST /webhooks/airtm``, ``/webhooks/trustless-work``.

Public routes (``opt=PUBLIC``: no API key, hence no rate limit, api.md 1.10) without an
Idempotency-Key: the provider's event id deduplicates. Each handler verifies the signature on
the raw body before parsing anything (missing, stale or wrong: 401
``WEBHOOK_SIGNATURE_INVALID``, nothing written; no secret configured: every call is 401), then
parses the body (400 ``VALIDATION_ERROR`` when it is not the provider's format), stores the
event once (``flows.provider_events.store_event``) and answers 200
``{"status": "ok", "duplicate": false}``, ``true`` for a repeat. A new event is processed right
after its commit, within a bound, so the provider gets its answer in time; whatever is left
(a provider outage, a crash, the bound) is retried by the runtime's background retrier.

The routes replace the router's request checks (``api.validation.check_request``) with their
own ``before_request``: those checks would parse the body as a request Struct before the
signature is verified, and demand an Idempotency-Key.
"""

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
import msgspec
from litestar import Request, post

from api.auth import PUBLIC
from api.database import pool_of
from api.errors import Unauthorized, invalid
from api.request_id import request_id_of
from api.runtime import AppRuntime
from api.schemas import ResponseStruct
from api.settings import Settings
from common.errors import ValidationFailed
from flows import provider_events
from flows.provider_events import AIRTM, TRUSTLESS_WORK, EventStatus, IncomingEvent, Subject
from flows.transitions import Actor
from ledger.db import run_in_transaction
from providers.airtm.port import Payin
from providers.airtm.webhooks import WebhookEvent, WebhookSignatureInvalid, verify_webhook
from providers.errors import ProviderResponseInvalid
from providers.trustless_work import webhooks as tw_webhooks

__all__ = ["PROVIDER_WEBHOOK_ROUTES", "WebhookAck", "WebhookSignatureRejected"]

# Airtm wants a 2xx within 15 s (providers.md 4.5); processing past this is left to the retrier.
_PROCESS_WAIT_S: Final = 10.0
_ID_MAX: Final = 255
_OPT: Final = {**PUBLIC, "idempotency": False}


class WebhookSignatureRejected(Unauthorized):
    """The webhook signature is missing, malformed, stale or wrong."""

    code = "WEBHOOK_SIGNATURE_INVALID"


class WebhookAck(ResponseStruct, frozen=True):
    """The answer to a provider: stored (``duplicate`` when it had been stored before)."""

    status: str
    duplicate: bool


async def _raw_body_only(_: Request[Any, Any, Any]) -> None:
    """``before_request`` of the webhook routes: no checks before the signature's."""


def _body_error(error: ProviderResponseInvalid) -> ValidationFailed:
    """400 naming the offending body field, from the decoder's "... - at `$.a.b`" text."""
    cause = error.__cause__
    text = str(cause) if cause is not None else error.message
    message, _, where = text.partition(" - at `$")
    field = where.rstrip("`").lstrip(".")
    return invalid(f"body.{field}" if field else "body", message)


def _document(body: bytes) -> dict[str, Any]:
    """The body as stored: the decoder above already proved it is a JSON object."""
    if b"\\u0000" in body:
        # PostgreSQL text and jsonb cannot hold NUL: refuse it rather than fail on the insert.
        raise invalid("body", "must not contain \\u0000")
    document = msgspec.json.decode(body)
    assert isinstance(document, dict)
    return document


def _settings(request: Request[Any, Any, Any]) -> Settings:
    settings = request.app.state.settings
    assert isinstance(settings, Settings)
    return settings


async def _process_now(request: Request[Any, Any, Any], event_id: int, provider: str) -> None:
    """Apply a new event after its commit, within the bound; failures stay for the retrier."""
    runtime = getattr(request.app.state, "runtime", None)
    if not isinstance(runtime, AppRuntime):
        return  # no providers here: the event waits for a process that has them
    actor = Actor(type="PROVIDER", id=provider, request_id=request_id_of(request.scope))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_PROCESS_WAIT_S):
            await runtime.provider_events.process(event_id, actor)


async def _receive(request: Request[Any, Any, Any], incoming: IncomingEvent) -> WebhookAck:
    """Store the event once, process it if new, and answer."""

    async def work(conn: asyncpg.Connection) -> provider_events.Stored:
        return await provider_events.store_event(conn, incoming)

    stored = await run_in_transaction(pool_of(request), work)
    if not stored.duplicate and stored.event.status == EventStatus.RECEIVED:
        await _process_now(request, stored.event.id, incoming.provider)
    return WebhookAck(status="ok", duplicate=stored.duplicate)


def _verified_airtm(request: Request[Any, Any, Any], body: bytes) -> WebhookEvent:
    """Verify the svix headers on the raw body, then parse it.

    Raises:
        WebhookSignatureRejected: no secret configured, or the signature does not verify.
        ValidationFailed: signed, but not an Airtm event.
    """
    secret = _settings(request).airtm_webhook_secret
    if secret is None:
        raise WebhookSignatureRejected(reason="not_configured")
    headers = dict(request.headers.items())
    try:
        event = verify_webhook(
            body, headers, secrets=[secret], now_s=int(datetime.now(UTC).timestamp())
        )
    except WebhookSignatureInvalid as error:
        raise WebhookSignatureRejected(reason=error.reason.value) from error
    except ProviderResponseInvalid as error:
        raise _body_error(error) from error
    if len(event.message_id) > _ID_MAX:
        raise invalid("header.svix-id", f"must be at most {_ID_MAX} characters")
    if not 1 <= len(event.type) <= _ID_MAX:
        raise invalid("body.type", f"must be 1-{_ID_MAX} characters")
    return event


def _airtm_subject(event: WebhookEvent) -> Subject | None:
    if event.data is None:
        return None  # a type we do not know: stored and ignored
    data = event.data
    provider_id, code = data.id or None, data.code or None
    if isinstance(data, Payin):
        return Subject(kind="payin", provider_id=provider_id, code=code)
    return Subject(kind="payout", provider_id=provider_id, code=code)


@post(
    "/webhooks/airtm",
    opt=_OPT,
    before_request=_raw_body_only,
    status_code=200,
    tags=["provider webhooks"],
)
async def airtm_webhook(request: Request[Any, Any, Any]) -> WebhookAck:
    """Receive an Airtm (Svix-signed) payin or payout event; the payin or payout is re-read."""
    body = await request.body()
    event = _verified_airtm(request, body)
    incoming = IncomingEvent(
        provider=AIRTM,
        event_id=event.message_id,
        type=event.type,
        body=_document(body),
        sent_at=datetime.fromtimestamp(event.timestamp_s, UTC),
        subject=_airtm_subject(event),
    )
    return await _receive(request, incoming)


@post(
    "/webhooks/trustless-work",
    opt=_OPT,
    before_request=_raw_body_only,
    status_code=200,
    tags=["provider webhooks"],
)
async def trustless_work_webhook(request: Request[Any, Any, Any]) -> WebhookAck:
    """Receive a Trustless Work hint (``x-tw-signature``); the escrow's operation is woken."""
    body = await request.body()
    secret = _settings(request).tw_webhook_secret
    if secret is None:
        raise WebhookSignatureRejected(reason="not_configured")
    signature = request.headers.get(tw_webhooks.SIGNATURE_HEADER)
    if not signature:
        raise WebhookSignatureRejected(reason="missing_header")
    if not tw_webhooks.verify(secret, body, signature):
        raise WebhookSignatureRejected(reason="no_matching_signature")
    try:
        hook = tw_webhooks.parse_webhook(body)
    except ProviderResponseInvalid as error:
        raise _body_error(error) from error
    incoming = IncomingEvent(
        provider=TRUSTLESS_WORK,
        event_id=hook.event_id,
        type=hook.type,
        body=_document(body),
        sent_at=None,
        subject=Subject(kind="escrow", provider_id=hook.data.contract_id),
    )
    return await _receive(request, incoming)


PROVIDER_WEBHOOK_ROUTES: Final = (airtm_webhook, trustless_work_webhook)
