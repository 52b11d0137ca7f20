"""Outbound webhook endpoints (api.md 3.10): secrets, signatures, URL and event-type rules, and
the endpoint use cases (create, rotate, delete, redeliver).

Secrets are ``whsec_`` + 43 base64url characters (32 random bytes). The plaintext is returned
once (create, rotate) and stored sealed with AES-256-GCM under the installation's master
keyring (``providers.stellar.wallet_keys.MasterKeyring``), with the marketplace and endpoint
ids as associated data, so a sealed secret copied to another endpoint fails to open. A secret
never appears in ``repr``, logs or error messages.

A delivery is signed ``OfferHub-Signature: t=<unix>,v1=<hex>``: ``v1`` is the lowercase hex
HMAC-SHA256 of ``"<t>.<raw body>"`` keyed with the secret's UTF-8 bytes (``whsec_``
included); during a rotation grace period a second ``v1`` (the previous secret) follows the
new one. Deliveries themselves are written by the fan-out trigger and sent by
``flows.webhook_delivery``.
"""

import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import ClassVar, Final, NoReturn
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from cryptography.exceptions import InvalidTag

from common.errors import AppError, WebhookDeliveryNotFound, WebhookEndpointNotFound
from common.ids import new_id
from flows.audit import record_audit
from flows.event_catalog import EVENT_TYPES
from flows.queries import webhooks as queries
from flows.queries.webhooks import DeliveryRow, EndpointRow
from flows.transitions import SYSTEM, Actor
from providers.stellar.wallet_keys import MasterKeyring

__all__ = [
    "GRACE_PERIOD_DEFAULT_S",
    "GRACE_PERIOD_MAX_S",
    "SECRET_PREFIX",
    "WebhookSecret",
    "WebhookSecretError",
    "address_allowed",
    "create_endpoint",
    "delete_endpoint",
    "event_type_problems",
    "generate_secret",
    "get_endpoint",
    "open_endpoint_secret",
    "redeliver",
    "rotate_endpoint_secret",
    "seal_endpoint_secret",
    "sign",
    "signature_header",
    "url_problem",
]

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the public prefix, not a secret
GRACE_PERIOD_DEFAULT_S: Final = 86_400
GRACE_PERIOD_MAX_S: Final = 604_800
_SECRET_BYTES: Final = 32
_NONCE_BYTES: Final = 12
_AAD_PREFIX: Final = "offerhub-webhook-secret:v1"
_SEALED_PATTERN: Final = re.compile(r"v([1-9][0-9]{0,8}):([A-Za-z0-9+/]+={0,2})")
_SECRET_PATTERN: Final = re.compile(r"whsec_[A-Za-z0-9_-]{43}")

_EVENT_PREFIXES: Final = frozenset(name.split(".", 1)[0] for name in EVENT_TYPES)


class WebhookSecretError(AppError):
    """A webhook secret could not be sealed or opened."""

    code: ClassVar[str] = "INTERNAL_ERROR"


def _fail(message: str, **details: object) -> NoReturn:
    # ``from None``: the cryptography exception adds nothing and must not chain buffers along.
    raise WebhookSecretError(message, **details) from None


class WebhookSecret:
    """A ``whsec_`` secret whose ``repr``/``str`` never show it."""

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        if not _SECRET_PATTERN.fullmatch(text):
            _fail("a webhook secret is whsec_ followed by 43 base64url characters")
        self._text = text

    def reveal(self) -> str:
        """The plaintext: for the one answer that shows it, and for signing."""
        return self._text

    def __repr__(self) -> str:
        return "WebhookSecret(<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("WebhookSecret cannot be pickled")


def generate_secret() -> WebhookSecret:
    """A fresh random secret: ``whsec_`` + 43 base64url characters (256 bits)."""
    encoded = base64.urlsafe_b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()
    return WebhookSecret(SECRET_PREFIX + encoded.rstrip("="))


def _associated_data(marketplace_id: str, endpoint_id: str) -> bytes:
    return "|".join((_AAD_PREFIX, marketplace_id, endpoint_id)).encode()


def seal_endpoint_secret(
    keyring: MasterKeyring, secret: WebhookSecret, *, marketplace_id: str, endpoint_id: str
) -> str:
    """Seal ``secret`` for one endpoint with the newest master key: ``v<n>:<base64>``."""
    version = keyring.active_version
    # A fresh random nonce per seal: GCM breaks if a nonce repeats under one key.
    nonce = os.urandom(_NONCE_BYTES)
    aad = _associated_data(marketplace_id, endpoint_id)
    ciphertext = keyring.cipher(version).encrypt(nonce, secret.reveal().encode(), aad)
    return f"v{version}:{base64.b64encode(nonce + ciphertext).decode()}"


def open_endpoint_secret(
    keyring: MasterKeyring, sealed: str, *, marketplace_id: str, endpoint_id: str
) -> WebhookSecret:
    """Open a sealed secret of one endpoint.

    Raises:
        WebhookSecretError: malformed text, unknown key version, or authentication failure
            (tampered, or sealed for another endpoint). Messages never quote the secret.
    """
    match = _SEALED_PATTERN.fullmatch(sealed)
    if match is None:
        _fail("the sealed webhook secret is malformed", endpoint_id=endpoint_id)
    try:
        cipher = keyring.cipher(int(match.group(1)))
    except AppError:
        _fail("no master key for this webhook secret's version", endpoint_id=endpoint_id)
    try:
        blob = base64.b64decode(match.group(2), validate=True)
        plain = cipher.decrypt(
            blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _associated_data(marketplace_id, endpoint_id)
        )
        return WebhookSecret(plain.decode())
    except (binascii.Error, InvalidTag, UnicodeDecodeError, ValueError):
        _fail("the sealed webhook secret failed to open", endpoint_id=endpoint_id)


# -- signatures -----------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The lowercase hex HMAC-SHA256 of ``"<timestamp>.<body>"`` keyed with ``secret`` (UTF-8)."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets_newest_first: Sequence[str], timestamp: int, body: bytes) -> str:
    """``t=<unix>,v1=<hex>[,v1=<hex>]``: one ``v1`` per secret, the newest first."""
    signatures = [f"v1={sign(secret, timestamp, body)}" for secret in secrets_newest_first]
    return ",".join([f"t={timestamp}", *signatures])


# -- URL and event type rules ---------------------------------------------------------------------


def address_allowed(address: str) -> bool:
    """Whether an IP address may receive webhooks: public unicast only (no loopback, private,
    link-local, multicast, reserved or unspecified addresses).
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def url_problem(url: str, *, allow_insecure: bool) -> str | None:
    """Why ``url`` cannot be a webhook endpoint, or ``None`` when it can.

    https only, with a host; an IP literal must be a public address and ``localhost`` is
    refused, unless ``allow_insecure`` (tests, the sandbox). Names are resolved and checked
    again at every delivery (``flows.webhook_delivery``), since DNS can change.
    """
    if len(url) > 2048 or any(character.isspace() for character in url):
        return "must be an absolute https URL of at most 2048 characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "must be an absolute https URL"
    allowed_schemes = ("https", "http") if allow_insecure else ("https",)
    if parts.scheme not in allowed_schemes or not host:
        return "must be an absolute https URL"
    if allow_insecure:
        return None
    if host == "localhost" or host.endswith(".localhost"):
        return "must not point to a loopback, private or link-local address"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None  # a name: checked when resolved, at delivery
    if not address_allowed(host):
        return "must not point to a loopback, private or link-local address"
    return None


def event_type_problems(patterns: Sequence[str]) -> list[tuple[int, str]]:
    """The invalid entries of ``event_types``, as (index, message): each must be ``*``, a
    catalog event type (api.md 6.2, ``flows.event_catalog``), or a catalog prefix followed by
    ``.*``: the patterns of the SSE ``types`` filter.
    """
    problems = []
    for index, pattern in enumerate(patterns):
        if pattern == "*" or pattern in EVENT_TYPES:
            continue
        if pattern.endswith(".*") and pattern[:-2] in _EVENT_PREFIXES:
            continue
        problems.append((index, "unknown event type or pattern"))
    return problems


# -- use cases ------------------------------------------------------------------------------------


def _url_without_credentials(url: str) -> str:
    """The URL as the audit log may keep it: without a ``user:password@`` part."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=netloc))


async def _audit(
    conn: asyncpg.Connection,
    actor: Actor,
    action: str,
    row: EndpointRow,
    *,
    resource_id: str | None = None,
    after: Mapping[str, object] | None = None,
) -> None:
    """One audit entry about an endpoint (never its secrets; URL credentials dropped)."""
    summary = {
        "url": _url_without_credentials(row.url),
        "event_types": list(row.event_types),
        "status": row.status,
    }
    await record_audit(
        conn,
        marketplace_id=row.marketplace_id,
        actor_type=actor.type,
        actor_id=actor.id,
        action=action,
        resource_type="webhook_endpoint" if resource_id is None else "webhook_delivery",
        resource_id=resource_id or row.id,
        after={**summary, **(after or {})},
        request_id=actor.request_id,
    )


async def get_endpoint(
    conn: asyncpg.Connection, marketplace_id: str, endpoint_id: str
) -> EndpointRow:
    """One ACTIVE endpoint of the marketplace.

    Raises:
        WebhookEndpointNotFound: unknown here, deleted, or another marketplace's.
    """
    endpoint = await queries.get_endpoint(conn, marketplace_id, endpoint_id)
    if endpoint is None:
        raise WebhookEndpointNotFound(endpoint_id=endpoint_id)
    return endpoint


async def create_endpoint(
    conn: asyncpg.Connection,
    keyring: MasterKeyring,
    *,
    marketplace_id: str,
    url: str,
    description: str | None,
    event_types: Sequence[str],
    actor: Actor = SYSTEM,
) -> tuple[EndpointRow, WebhookSecret]:
    """Create an endpoint with a fresh secret; returns the row and the plaintext secret.

    ``url`` and ``event_types`` must have passed :func:`url_problem` and
    :func:`event_type_problems`; duplicate patterns are dropped, first one kept. Audited
    ``WEBHOOK_ENDPOINT_CREATED`` as ``actor``.
    """
    endpoint_id = new_id("whe_")
    secret = generate_secret()
    row = await queries.insert_endpoint(
        conn,
        marketplace_id=marketplace_id,
        endpoint_id=endpoint_id,
        url=url,
        description=description,
        event_types=list(dict.fromkeys(event_types)),
        secret_sealed=seal_endpoint_secret(
            keyring, secret, marketplace_id=marketplace_id, endpoint_id=endpoint_id
        ),
    )
    await _audit(conn, actor, "WEBHOOK_ENDPOINT_CREATED", row)
    return row, secret


async def rotate_endpoint_secret(
    conn: asyncpg.Connection,
    keyring: MasterKeyring,
    *,
    marketplace_id: str,
    endpoint_id: str,
    grace_period_s: int,
    actor: Actor = SYSTEM,
) -> tuple[EndpointRow, WebhookSecret]:
    """Give the endpoint a new secret; the current one keeps signing for ``grace_period_s``
    (0: at once replaced). A secret still in an earlier grace period is dropped.

    Raises:
        WebhookEndpointNotFound: unknown, deleted, or another marketplace's.
    """
    secret = generate_secret()
    sealed = seal_endpoint_secret(
        keyring, secret, marketplace_id=marketplace_id, endpoint_id=endpoint_id
    )
    row = await queries.rotate_secret(
        conn, marketplace_id, endpoint_id, secret_sealed=sealed, grace_period_s=grace_period_s
    )
    if row is None:
        raise WebhookEndpointNotFound(endpoint_id=endpoint_id)
    grace = {"grace_period_seconds": grace_period_s}
    await _audit(conn, actor, "WEBHOOK_ENDPOINT_SECRET_ROTATED", row, after=grace)
    return row, secret


async def delete_endpoint(
    conn: asyncpg.Connection, *, marketplace_id: str, endpoint_id: str, actor: Actor = SYSTEM
) -> EndpointRow:
    """Delete the endpoint (its secrets are wiped) and cancel its pending deliveries.

    Raises:
        WebhookEndpointNotFound: unknown, already deleted, or another marketplace's.
    """
    row = await queries.delete_endpoint(conn, marketplace_id, endpoint_id)
    if row is None:
        raise WebhookEndpointNotFound(endpoint_id=endpoint_id)
    canceled = await queries.cancel_pending_deliveries(conn, marketplace_id, endpoint_id)
    await _audit(conn, actor, "WEBHOOK_ENDPOINT_DELETED", row, after={"canceled": canceled})
    return row


async def redeliver(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    endpoint_id: str,
    delivery_id: str,
    actor: Actor = SYSTEM,
) -> DeliveryRow:
    """Queue a delivery's event again: a new PENDING delivery, due now, with ``redelivery_of``.

    Raises:
        WebhookEndpointNotFound: the endpoint is unknown, deleted, or another marketplace's.
        WebhookDeliveryNotFound: the delivery is not one of this endpoint's.
    """
    # Locked: a concurrent DELETE either waits for this redelivery (and cancels it) or wins.
    endpoint = await queries.get_endpoint(conn, marketplace_id, endpoint_id, lock=True)
    if endpoint is None:
        raise WebhookEndpointNotFound(endpoint_id=endpoint_id)
    original = await queries.get_delivery(conn, marketplace_id, endpoint_id, delivery_id)
    if original is None:
        raise WebhookDeliveryNotFound(delivery_id=delivery_id)
    copy = await queries.insert_redelivery(conn, marketplace_id, original.id, new_id("whd_"))
    after = {"event_id": copy.event_id, "redelivery_of": original.id}
    await _audit(
        conn, actor, "WEBHOOK_REDELIVERY_REQUESTED", endpoint, resource_id=copy.id, after=after
    )
    return copy
