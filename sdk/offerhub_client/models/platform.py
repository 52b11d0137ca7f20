"""Marketplaces, API keys, the caller, health and the public configuration (api.md 3.1, 3.2)."""

from typing import Literal

from offerhub_client.models.common import Amount, Body, Model, Time

__all__ = [
    "ApiKey",
    "ApiKeyCreate",
    "Asset",
    "Check",
    "Config",
    "CreatedApiKey",
    "Features",
    "Health",
    "Idempotency",
    "Limits",
    "Marketplace",
    "MarketplaceCreate",
    "Me",
    "Operations",
    "Pagination",
    "PublicProviders",
    "Range",
    "Readiness",
    "SandboxUrls",
]


class Marketplace(Model, frozen=True, kw_only=True):
    """A marketplace (tenant); ``platform_fee_bps`` is paid by each escrow contract."""

    id: str
    name: str
    platform_fee_bps: int
    created_at: Time
    updated_at: Time


class ApiKey(Model, frozen=True, kw_only=True):
    """An API key (never its secret, except in :class:`CreatedApiKey`)."""

    id: str
    name: str
    scopes: list[str]
    marketplace_id: str
    status: str
    created_at: Time
    last_used_at: Time | None = None
    revoked_at: Time | None = None


class CreatedApiKey(ApiKey, frozen=True, kw_only=True):
    """A new key with its plaintext ``key``, shown once."""

    key: str


class Me(Model, frozen=True, kw_only=True):
    """Who the caller is; for the master key ``api_key`` and ``marketplace`` are None."""

    api_key: ApiKey | None = None
    marketplace: Marketplace | None = None
    master: bool
    network: str
    version: str


class Health(Model, frozen=True, kw_only=True):
    """Liveness."""

    status: str
    version: str
    timestamp: Time


class Check(Model, frozen=True, kw_only=True):
    """One readiness check."""

    status: str
    required: bool
    latency_ms: float | None = None
    error: str | None = None


class Readiness(Model, frozen=True, kw_only=True):
    """Readiness: ``healthy``, ``degraded`` or ``unhealthy`` with each check."""

    status: str
    version: str
    timestamp: Time
    checks: dict[str, Check]


class Asset(Model, frozen=True, kw_only=True):
    """The on-chain asset (USDC code and issuer)."""

    code: str
    issuer: str


class SandboxUrls(Model, frozen=True, kw_only=True):
    """Where the local sandbox serves its simulators and controls."""

    horizon_url: str
    trustless_work_url: str
    airtm_url: str
    control_url: str


class PublicProviders(Model, frozen=True, kw_only=True):
    """Which providers the deployment uses."""

    chain: str
    escrow: str
    fiat: str
    sandbox: SandboxUrls | None = None


class Range(Model, frozen=True, kw_only=True):
    """Inclusive amount limits."""

    min: Amount
    max: Amount


class Limits(Model, frozen=True, kw_only=True):
    """Amount limits per flow."""

    order: Range
    topup: Range
    withdrawal: Range


class Features(Model, frozen=True, kw_only=True):
    """What this deployment offers."""

    milestones: bool = True
    disputes: bool = True
    sse: bool = False
    outbound_webhooks: bool = True
    airtm: bool = True
    trustless_work: bool = True


class Pagination(Model, frozen=True, kw_only=True):
    """Page sizes."""

    default_limit: int = 20
    max_limit: int = 100


class Idempotency(Model, frozen=True, kw_only=True):
    """How long Idempotency-Keys are remembered."""

    retention_hours: int = 168


class Operations(Model, frozen=True, kw_only=True):
    """How long a request waits for a durable operation before answering 202."""

    wait_seconds: int = 20


class Config(Model, frozen=True, kw_only=True):
    """``GET /config``: public configuration, no secrets."""

    version: str
    network: str
    currencies: list[str]
    asset: Asset
    providers: PublicProviders
    pagination: Pagination
    limits: Limits | None = None
    features: Features = Features()
    idempotency: Idempotency = Idempotency()
    operations: Operations = Operations()


class MarketplaceCreate(Body, frozen=True, kw_only=True):
    """``POST /marketplaces`` (master key)."""

    name: str
    platform_fee_bps: int | None = None


class ApiKeyCreate(Body, frozen=True, kw_only=True):
    """``POST /auth/api-keys``; ``marketplace_id`` only with the master key."""

    name: str
    scopes: list[Literal["read", "write", "support", "admin", "*"]]
    marketplace_id: str | None = None
