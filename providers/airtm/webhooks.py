"""Svix-style webhook signatures for Airtm (providers.md 4.5): verify inbound, sign in the sandbox.

The signed content is ``"{svix-id}.{svix-timestamp}.{raw body}"``; the key is the base64 part of
the ``whsec_`` secret; ``svix-signature`` lists space-separated ``v1,<base64 HMAC-SHA256>``
entries (several during a secret rotation). Verification works on the raw body bytes, before
any parsing, and every failure is a ``WebhookSignatureInvalid`` with a machine-readable reason.
"""

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import ClassVar, Final

import msgspec

from common.errors import AppError
from providers.airtm import wire
from providers.airtm.amounts import AirtmAmountError
from providers.airtm.port import Payin, Payout
from providers.errors import ProviderResponseInvalid

__all__ = [
    "PAYIN_EVENTS",
    "PAYOUT_EVENTS",
    "TOLERANCE_S",
    "SignatureFailure",
    "WebhookEvent",
    "WebhookSignatureInvalid",
    "decode_secret",
    "sign",
    "signature_headers",
    "verify_webhook",
]

TOLERANCE_S: Final = 300
_SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - a format prefix, not a secret
_VERSION_PREFIX: Final = "v1,"
PAYIN_EVENTS: Final = frozenset(
    {"payin.created", "payin.confirmed", "payin.failed", "payin.canceled"}
)
PAYOUT_EVENTS: Final = frozenset(
    {"payout.created", "payout.completed", "payout.failed", "payout.canceled"}
)
_HEADER_ID: Final = "svix-id"
_HEADER_TIMESTAMP: Final = "svix-timestamp"
_HEADER_SIGNATURE: Final = "svix-signature"


class SignatureFailure(StrEnum):
    """Why a webhook was refused; all of them are answered 401 and change nothing."""

    MISSING_HEADER = "missing_header"
    BAD_TIMESTAMP = "bad_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"
    NO_MATCHING_SIGNATURE = "no_matching_signature"


# Named like ProviderRejected/ProviderUnavailable: the house drops the Error suffix.
class WebhookSignatureInvalid(AppError):
    """The webhook's signature headers did not verify."""

    code: ClassVar[str] = "WEBHOOK_SIGNATURE_INVALID"

    def __init__(self, reason: SignatureFailure) -> None:
        super().__init__(f"webhook signature invalid: {reason.value}", reason=reason.value)
        self.reason = reason


class WebhookEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A verified webhook. ``message_id`` (svix-id) is the dedupe key: the body has no id.

    ``data`` is ``None`` for an event type we do not know; such events are acknowledged and
    ignored, since Airtm would otherwise retry them for days.
    """

    message_id: str
    timestamp_s: int
    type: str
    data: Payin | Payout | None


def decode_secret(secret: str) -> bytes:
    """Return the HMAC key of a ``whsec_<base64>`` secret.

    Raises:
        ValueError: The secret is not valid base64 (a configuration error).
    """
    encoded = secret.removeprefix(_SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error as error:
        raise ValueError("webhook secret must be whsec_ followed by base64") from error


def sign(secret: str, message_id: str, timestamp_s: int, body: bytes) -> str:
    """Return the ``v1,<base64>`` signature of one message."""
    content = f"{message_id}.{timestamp_s}.".encode() + body
    digest = hmac.new(decode_secret(secret), content, hashlib.sha256).digest()
    return _VERSION_PREFIX + base64.b64encode(digest).decode()


def signature_headers(
    secrets: Sequence[str], message_id: str, timestamp_s: int, body: bytes
) -> dict[str, str]:
    """Return the three svix headers, with one signature per secret (rotation sends two)."""
    signatures = " ".join(sign(secret, message_id, timestamp_s, body) for secret in secrets)
    return {
        _HEADER_ID: message_id,
        _HEADER_TIMESTAMP: str(timestamp_s),
        _HEADER_SIGNATURE: signatures,
    }


def _check_signature(
    keys: Sequence[bytes], message_id: str, timestamp: str, body: bytes, header: str
) -> None:
    content = f"{message_id}.{timestamp}.".encode() + body
    expected = [hmac.new(key, content, hashlib.sha256).digest() for key in keys]
    for entry in header.split():
        if not entry.startswith(_VERSION_PREFIX):
            continue  # other versions may appear later; they are not ours to judge
        try:
            candidate = base64.b64decode(entry.removeprefix(_VERSION_PREFIX), validate=True)
        except binascii.Error:
            continue
        if any(hmac.compare_digest(candidate, digest) for digest in expected):
            return
    raise WebhookSignatureInvalid(SignatureFailure.NO_MATCHING_SIGNATURE)


def verify_webhook(
    body: bytes,
    headers: Mapping[str, str],
    *,
    secrets: Sequence[str],
    now_s: int,
    tolerance_s: int = TOLERANCE_S,
) -> WebhookEvent:
    """Verify a webhook on its raw body, then parse it.

    Args:
        body: The request body exactly as received.
        headers: The request headers (any letter case).
        secrets: The accepted ``whsec_`` secrets: the current one, plus the previous one
            while we rotate.
        now_s: The current unix time.
        tolerance_s: The allowed distance between ``svix-timestamp`` and now.

    Returns:
        The event, with ``data`` parsed as a payin or payout.

    Raises:
        WebhookSignatureInvalid: A header is missing, the timestamp is unreadable or outside
            the tolerance, or no ``v1`` signature matches.
        ProviderResponseInvalid: The signature is good but the body is not an Airtm event.
    """
    assert not isinstance(secrets, str), "pass a sequence of secrets, not one string"
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id = lowered.get(_HEADER_ID)
    timestamp = lowered.get(_HEADER_TIMESTAMP)
    signature = lowered.get(_HEADER_SIGNATURE)
    if not message_id or not timestamp or not signature:
        raise WebhookSignatureInvalid(SignatureFailure.MISSING_HEADER)
    if not timestamp.isascii() or not timestamp.isdigit():
        raise WebhookSignatureInvalid(SignatureFailure.BAD_TIMESTAMP)
    if abs(now_s - int(timestamp)) > tolerance_s:
        raise WebhookSignatureInvalid(SignatureFailure.STALE_TIMESTAMP)
    # The signed text uses the header exactly as sent, so "0123" stays "0123".
    _check_signature([decode_secret(s) for s in secrets], message_id, timestamp, body, signature)
    return _parse_event(message_id, int(timestamp), body)


def _parse_event(message_id: str, timestamp_s: int, body: bytes) -> WebhookEvent:
    try:
        envelope = wire.WEBHOOK_DECODER.decode(body)
        data: Payin | Payout | None = None
        if envelope.type in PAYIN_EVENTS:
            data = wire.payin_from_wire(wire.PAYIN_DECODER.decode(envelope.data))
        elif envelope.type in PAYOUT_EVENTS:
            data = wire.payout_from_wire(wire.PAYOUT_DECODER.decode(envelope.data))
    except (msgspec.DecodeError, AirtmAmountError) as error:
        raise ProviderResponseInvalid(
            f"signed webhook is not an Airtm event: {error}", provider="airtm"
        ) from error
    return WebhookEvent(
        message_id=message_id, timestamp_s=timestamp_s, type=envelope.type, data=data
    )
