"""Health and configuration, the caller and its keys, marketplaces (master key), outbound
webhook endpoints and the event stream (api.md 3.1, 3.2, 3.9, 3.10)."""

from collections.abc import Sequence
from typing import Any, Literal

from offerhub_client._call import M, Resource, Route, Twin, endpoint, paginated
from offerhub_client.events import AsyncEventStream, EventStream
from offerhub_client.models.common import Page
from offerhub_client.models.events import (
    CreatedWebhookEndpoint,
    SecretRotation,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointCreate,
)
from offerhub_client.models.platform import (
    ApiKey,
    ApiKeyCreate,
    Config,
    CreatedApiKey,
    Health,
    Marketplace,
    MarketplaceCreate,
    Me,
    Readiness,
)

__all__ = ["Auth", "Events", "Marketplaces", "System", "WebhookEndpoints"]

Scope = Literal["read", "write", "support", "admin", "*"]


class System(Resource[M]):
    """``client.system``: liveness, readiness and the public configuration (no key needed)."""

    @endpoint("GET", "/health", Health)
    @staticmethod
    def health() -> dict[str, Any]:
        """Liveness: the process serves HTTP."""
        return locals()

    @endpoint("GET", "/health/ready", Readiness)
    @staticmethod
    def readiness() -> dict[str, Any]:
        """Readiness with each check (a 503 ``unhealthy`` raises ServiceUnavailable)."""
        return locals()

    @endpoint("GET", "/config", Config)
    @staticmethod
    def config() -> dict[str, Any]:
        """Network, asset, limits, features, page sizes."""
        return locals()


class Auth(Resource[M]):
    """``client.auth``: who am I, and API keys (``admin`` scope or the master key)."""

    @endpoint("GET", "/auth/me", Me)
    @staticmethod
    def me() -> dict[str, Any]:
        """The calling key, its marketplace, the network."""
        return locals()

    @endpoint("POST", "/auth/api-keys", CreatedApiKey, body=ApiKeyCreate)
    @staticmethod
    def create_key(
        *,
        name: str,
        scopes: Sequence[Scope],
        marketplace_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Issue a key; its plaintext ``key`` is in this answer only."""
        return locals()

    @endpoint("GET", "/auth/api-keys", Page[ApiKey])
    @staticmethod
    def list_keys(
        *,
        status: str | None = None,
        marketplace_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of keys (no secrets)."""
        return locals()

    list_keys_all = paginated(list_keys)

    @endpoint("DELETE", "/auth/api-keys/{key_id}", ApiKey)
    @staticmethod
    def revoke_key(key_id: str) -> dict[str, Any]:
        """Revoke a key at once (revoking twice returns it unchanged)."""
        return locals()


class Marketplaces(Resource[M]):
    """``client.marketplaces``: tenants (master key only)."""

    @endpoint("POST", "/marketplaces", Marketplace, body=MarketplaceCreate)
    @staticmethod
    def create(
        *, name: str, platform_fee_bps: int | None = None, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Create a marketplace (default platform fee 500 bps)."""
        return locals()

    @endpoint("GET", "/marketplaces", Page[Marketplace])
    @staticmethod
    def list(*, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        """One page of marketplaces."""
        return locals()

    list_all = paginated(list)

    @endpoint("GET", "/marketplaces/{marketplace_id}", Marketplace)
    @staticmethod
    def get(marketplace_id: str) -> dict[str, Any]:
        """One marketplace."""
        return locals()


class WebhookEndpoints(Resource[M]):
    """``client.webhook_endpoints``: where events are POSTed, signed (``admin`` scope)."""

    @endpoint("POST", "/webhook-endpoints", CreatedWebhookEndpoint, body=WebhookEndpointCreate)
    @staticmethod
    def create(
        *,
        url: str,
        description: str | None = None,
        event_types: Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Register an endpoint; its signing ``secret`` is in this answer only."""
        return locals()

    @endpoint("GET", "/webhook-endpoints", Page[WebhookEndpoint])
    @staticmethod
    def list(*, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        """One page of endpoints."""
        return locals()

    list_all = paginated(list)

    @endpoint("GET", "/webhook-endpoints/{endpoint_id}", WebhookEndpoint)
    @staticmethod
    def get(endpoint_id: str) -> dict[str, Any]:
        """One endpoint."""
        return locals()

    @endpoint("DELETE", "/webhook-endpoints/{endpoint_id}", type(None))
    @staticmethod
    def delete(endpoint_id: str) -> dict[str, Any]:
        """Delete the endpoint; its pending deliveries are cancelled."""
        return locals()

    @endpoint(
        "POST",
        "/webhook-endpoints/{endpoint_id}/rotate-secret",
        CreatedWebhookEndpoint,
        body=SecretRotation,
    )
    @staticmethod
    def rotate_secret(
        endpoint_id: str,
        *,
        grace_period_seconds: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """A new secret; the old one keeps signing for the grace period (default 1 day)."""
        return locals()

    @endpoint("GET", "/webhook-endpoints/{endpoint_id}/deliveries", Page[WebhookDelivery])
    @staticmethod
    def deliveries(
        endpoint_id: str,
        *,
        status: str | None = None,
        event_type: str | None = None,
        event_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of the endpoint's deliveries."""
        return locals()

    deliveries_all = paginated(deliveries)

    @endpoint(
        "POST",
        "/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver",
        WebhookDelivery,
    )
    @staticmethod
    def redeliver(
        endpoint_id: str, delivery_id: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Send the delivery's event again, as a new delivery."""
        return locals()


def _stream_blocking(
    resource: "Events[Any]",
    *,
    types: str | Sequence[str] | None = None,
    resources: str | Sequence[str] | None = None,
    since: int | None = None,
    reconnect_delay_s: float | None = None,
    max_reconnects: int | None = None,
    read_timeout_s: float = 45.0,
) -> EventStream:
    """Follow the marketplace's events; reconnects and resumes after the last one yielded."""
    return EventStream(resource._transport, **_options(locals()))


def _stream_async(
    resource: "Events[Any]",
    *,
    types: str | Sequence[str] | None = None,
    resources: str | Sequence[str] | None = None,
    since: int | None = None,
    reconnect_delay_s: float | None = None,
    max_reconnects: int | None = None,
    read_timeout_s: float = 45.0,
) -> AsyncEventStream:
    """Follow the marketplace's events (asyncio); resumes after the last one yielded."""
    return AsyncEventStream(resource._transport, **_options(locals()))


def _options(arguments: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in arguments.items() if name != "resource"}


class Events(Resource[M]):
    """``client.events``: the marketplace's events as a resumable stream (``read`` scope).

    ``stream(types="order.*")`` starts live; ``since=<sequence>`` replays after it first.
    ``reconnect_delay_s`` overrides the server's ``retry`` hint; ``max_reconnects`` bounds
    the reconnections in a row without an event (default: forever).
    """

    stream = Twin(_stream_blocking, _stream_async, route=Route("GET", "/events"))
