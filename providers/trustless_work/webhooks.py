"""Trustless Work webhook signatures and bodies (api.md 3.14): verify the raw body, then parse.

The header ``x-tw-signature`` is the lowercase hex HMAC-SHA256 of the raw body, keyed with the
configured secret (its UTF-8 bytes). A verified body is only a hint that an escrow changed: the
orchestrator reads the escrow itself and applies only what that read confirms, so this module
parses just what locates the escrow.
"""

import hashlib
import hmac
from typing import Annotated, Final

import msgspec
from msgspec import Meta

from providers.errors import ProviderResponseInvalid

__all__ = ["SIGNATURE_HEADER", "TwWebhook", "TwWebhookData", "parse_webhook", "sign", "verify"]

SIGNATURE_HEADER: Final = "x-tw-signature"

_Text = Annotated[str, Meta(min_length=1, max_length=255)]


class TwWebhookData(msgspec.Struct, frozen=True, kw_only=True):
    """The fields of ``data`` that locate the escrow; the others are kept only in the body."""

    contract_id: _Text | None = None
    order_id: _Text | None = None
    status: str | None = None
    transaction_hash: str | None = None


class TwWebhook(msgspec.Struct, frozen=True, kw_only=True):
    """A webhook envelope: ``event_id`` is the dedupe key."""

    type: _Text
    event_id: _Text
    data: TwWebhookData


_DECODER: Final = msgspec.json.Decoder(TwWebhook)


def sign(secret: str, body: bytes) -> str:
    """The ``x-tw-signature`` value of ``body``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of the raw ``body`` (constant-time compare)."""
    if not header:
        return False
    # hexdigest is lowercase; a differently cased header is not what TW sends.
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


def parse_webhook(body: bytes) -> TwWebhook:
    """Parse a verified body.

    Raises:
        ProviderResponseInvalid: the body is not a Trustless Work webhook envelope.
    """
    try:
        return _DECODER.decode(body)
    except msgspec.DecodeError as error:
        raise ProviderResponseInvalid(
            f"signed webhook is not a Trustless Work event: {error}", provider="trustless_work"
        ) from error
