"""Outbound webhook wire types (api.md 3.10, 4): endpoints and deliveries."""

from datetime import datetime
from typing import Annotated

from msgspec import Meta, structs

from api.schemas.common import RequestStruct, ResponseStruct, format_time
from flows.queries.webhooks import DeliveryRow, EndpointRow

__all__ = [
    "CreatedWebhookEndpoint",
    "SecretRotation",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEndpointCreate",
    "created_endpoint_out",
    "delivery_out",
    "endpoint_out",
    "without_secret",
]

EventPattern = Annotated[str, Meta(min_length=1, max_length=100)]


class WebhookEndpointCreate(RequestStruct, frozen=True):
    """``POST /webhook-endpoints``."""

    url: Annotated[str, Meta(min_length=1, max_length=2048)]
    description: Annotated[str, Meta(max_length=255)] | None = None
    # Exact event types, `prefix.*` or `*` (api.md 3.9 `types`); default ["*"].
    event_types: Annotated[list[EventPattern], Meta(min_length=1, max_length=100)] | None = None


class SecretRotation(RequestStruct, frozen=True):
    """``POST /webhook-endpoints/{id}/rotate-secret``: how long the old secret still signs."""

    grace_period_seconds: Annotated[int, Meta(ge=0, le=604_800)] | None = None


class WebhookEndpoint(ResponseStruct, frozen=True):
    """A webhook endpoint, without its secret."""

    id: str
    url: str
    description: str | None
    event_types: list[str]
    secret_rotated_at: str | None
    previous_secret_expires_at: str | None
    created_at: str
    updated_at: str


class CreatedWebhookEndpoint(WebhookEndpoint, frozen=True):
    """An endpoint as created or rotated: the only answers that carry the plaintext secret."""

    secret: str


class WebhookDelivery(ResponseStruct, frozen=True):
    """One delivery of one event to one endpoint."""

    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    event_sequence: int
    status: str
    attempts: int
    next_attempt_at: str | None
    last_attempt_at: str | None
    last_response_status: int | None
    last_error: str | None
    redelivery_of: str | None
    created_at: str
    completed_at: str | None


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


def endpoint_out(row: EndpointRow) -> WebhookEndpoint:
    """The wire form of an endpoint row (never a sealed secret)."""
    return WebhookEndpoint(
        id=row.id,
        url=row.url,
        description=row.description,
        event_types=list(row.event_types),
        secret_rotated_at=_time(row.secret_rotated_at),
        previous_secret_expires_at=_time(row.previous_secret_expires_at),
        created_at=format_time(row.created_at),
        updated_at=format_time(row.updated_at),
    )


def created_endpoint_out(row: EndpointRow, secret: str) -> CreatedWebhookEndpoint:
    """The answer to a creation or rotation: the endpoint and, this once, its secret."""
    return CreatedWebhookEndpoint(**structs.asdict(endpoint_out(row)), secret=secret)


def without_secret(created: CreatedWebhookEndpoint) -> WebhookEndpoint:
    """The same endpoint without its secret (what an idempotent replay shows)."""
    fields = structs.asdict(created)
    del fields["secret"]
    return WebhookEndpoint(**fields)


def delivery_out(row: DeliveryRow) -> WebhookDelivery:
    """The wire form of a delivery row."""
    return WebhookDelivery(
        id=row.id,
        endpoint_id=row.endpoint_id,
        event_id=row.event_id,
        event_type=row.event_type,
        event_sequence=row.event_sequence,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=_time(row.next_attempt_at),
        last_attempt_at=_time(row.last_attempt_at),
        last_response_status=row.last_response_status,
        last_error=row.last_error,
        redelivery_of=row.redelivery_of,
        created_at=format_time(row.created_at),
        completed_at=_time(row.completed_at),
    )
