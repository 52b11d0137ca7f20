"""Events (the SSE and webhook envelope), outbound webhook endpoints and deliveries
(api.md 3.9, 3.10, 6)."""

from typing import Any

from offerhub_client.models.common import Body, Model, Time

__all__ = [
    "CreatedWebhookEndpoint",
    "Event",
    "ReplayTruncated",
    "SecretRotation",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEndpointCreate",
]


class Event(Model, frozen=True, kw_only=True):
    """The envelope of every event; ``sequence`` orders them, ``id`` deduplicates them."""

    id: str
    sequence: int
    type: str
    occurred_at: Time
    marketplace_id: str
    resource_type: str
    resource_id: str
    data: dict[str, Any]


class ReplayTruncated(Model, frozen=True, kw_only=True):
    """The stream's resume point was older than the retention: events in between are gone."""

    requested_after: int
    oldest_available: int


class WebhookEndpoint(Model, frozen=True, kw_only=True):
    """Where events are POSTed, signed (the secret only in create and rotate answers)."""

    id: str
    url: str
    description: str | None = None
    event_types: list[str]
    secret_rotated_at: Time | None = None
    previous_secret_expires_at: Time | None = None
    created_at: Time
    updated_at: Time


class CreatedWebhookEndpoint(WebhookEndpoint, frozen=True, kw_only=True):
    """An endpoint with its signing ``secret`` (``whsec_...``), shown once."""

    secret: str


class WebhookDelivery(Model, frozen=True, kw_only=True):
    """One delivery of one event to one endpoint."""

    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    event_sequence: int
    status: str
    attempts: int
    next_attempt_at: Time | None = None
    last_attempt_at: Time | None = None
    last_response_status: int | None = None
    last_error: str | None = None
    redelivery_of: str | None = None
    created_at: Time
    completed_at: Time | None = None


class WebhookEndpointCreate(Body, frozen=True, kw_only=True):
    """``POST /webhook-endpoints``."""

    url: str
    description: str | None = None
    event_types: list[str] | None = None


class SecretRotation(Body, frozen=True, kw_only=True):
    """``POST /webhook-endpoints/{id}/rotate-secret``."""

    grace_period_seconds: int | None = None
