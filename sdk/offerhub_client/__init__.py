"""Python client of the OFFER-HUB orchestrator API (v1): ``OfferHub`` and ``AsyncOfferHub``.

Typed results (``offerhub_client.models``), one exception per error code
(``offerhub_client.errors``), safe retries with one Idempotency-Key per logical call,
pagination iterators, a resumable event stream, ``wait_for_status`` and ``verify_webhook``.
"""

from offerhub_client import errors, models
from offerhub_client._client import DEFAULT_BASE_URL, AsyncOfferHub, OfferHub
from offerhub_client._transport import RetryPolicy
from offerhub_client.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    IdempotencyKeyReused,
    InsufficientFunds,
    InvalidState,
    NotFound,
    OfferHubError,
    ProviderError,
    RateLimited,
    UnexpectedState,
    ValidationError,
    WaitTimeout,
    WebhookVerificationError,
)
from offerhub_client.events import AsyncEventStream, EventStream
from offerhub_client.models import Event, Order, OrderStatus
from offerhub_client.version import VERSION
from offerhub_client.webhooks import sign_webhook, verify_webhook

__all__ = [
    "DEFAULT_BASE_URL",
    "VERSION",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncEventStream",
    "AsyncOfferHub",
    "Event",
    "EventStream",
    "IdempotencyKeyReused",
    "InsufficientFunds",
    "InvalidState",
    "NotFound",
    "OfferHub",
    "OfferHubError",
    "Order",
    "OrderStatus",
    "ProviderError",
    "RateLimited",
    "RetryPolicy",
    "UnexpectedState",
    "ValidationError",
    "WaitTimeout",
    "WebhookVerificationError",
    "errors",
    "models",
    "sign_webhook",
    "verify_webhook",
]
