"""Verifying the orchestrator's webhook deliveries in the marketplace's receiver (api.md 3.10).

A delivery carries ``OfferHub-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]``: each ``v1`` is
the lowercase hex HMAC-SHA256 of ``<t>.<raw body>`` keyed with an endpoint secret's UTF-8 bytes
(``whsec_`` included). During a rotation's grace period the server signs with the new and the
old secret, so a receiver that still holds either one accepts the delivery; a receiver may
itself hold several secrets (pass a list). Verify the raw bytes exactly as received, before
any JSON parsing.
"""

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from typing import Final

import msgspec

from offerhub_client.errors import WebhookVerificationError
from offerhub_client.models.events import Event

__all__ = ["SIGNATURE_HEADER", "TOLERANCE_S", "sign_webhook", "verify_webhook"]

SIGNATURE_HEADER: Final = "OfferHub-Signature"
TOLERANCE_S: Final = 300
_EVENT_DECODER: Final = msgspec.json.Decoder(Event)


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    """The ``v1`` signature of ``body`` at ``timestamp`` (what the server computes)."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, separator, value = part.strip().partition("=")
        if not separator:
            raise WebhookVerificationError("malformed signature header")
        if name == "t":
            if not value.isdigit():
                raise WebhookVerificationError("malformed signature timestamp")
            timestamp = int(value)
        elif name == "v1":
            signatures.append(value)
        # Other schemes (a future v2) are ignored, as the contract's evolution rule asks.
    if timestamp is None or not signatures:
        raise WebhookVerificationError("signature header lacks t= or v1=")
    return timestamp, signatures


def verify_webhook(
    secret: str | Sequence[str],
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance_s: int = TOLERANCE_S,
    now: float | None = None,
) -> Event:
    """Check a delivery's signature and age; return its event envelope.

    Args:
        secret: the endpoint's secret, or several (e.g. the old and the new one while you
            rotate): any one that matches any ``v1`` entry is enough.
        headers: the request headers (any case).
        body: the raw request body, exactly as received.
        tolerance_s: how far ``t`` may be from now, either way (default 300 s).
        now: the current unix time (for tests); default the clock.

    Raises:
        WebhookVerificationError: the header is missing or malformed, ``t`` is outside the
            tolerance, or no signature matches. Answer 4xx; the server retries.
    """
    raw = body.encode() if isinstance(body, str) else bytes(body)
    header = _header(headers, SIGNATURE_HEADER)
    if header is None:
        raise WebhookVerificationError(f"missing {SIGNATURE_HEADER} header")
    timestamp, signatures = _parse(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise WebhookVerificationError("signature timestamp outside the tolerance")
    secrets = [secret] if isinstance(secret, str) else list(secret)
    # Compare every pair without stopping early: the time taken says nothing about which failed.
    matched = False
    for candidate in secrets:
        expected = sign_webhook(candidate, timestamp, raw)
        for signature in signatures:
            matched |= hmac.compare_digest(expected.encode(), signature.encode(errors="replace"))
    if not matched:
        raise WebhookVerificationError("no signature matches")
    try:
        return _EVENT_DECODER.decode(raw)
    except msgspec.DecodeError as error:
        raise WebhookVerificationError(f"signed body is not an event: {error}") from error
