"""``GET /api/v1/config``: public facts about this installation (no secrets)."""

from typing import Any, Final

import msgspec
from litestar import Request, get

from api.auth import PUBLIC
from common.errors import InvalidAmount
from common.money import format_amount

__all__ = [
    "AMOUNT_LIMITS",
    "Config",
    "Features",
    "Idempotency",
    "Limits",
    "Operations",
    "PublicProviders",
    "SandboxUrls",
    "check_amount_limit",
    "config",
]


class SandboxUrls(msgspec.Struct, frozen=True, kw_only=True):
    """Absolute URLs of the sandbox services (providers.md 5.7); present only in sandbox mode."""

    horizon_url: str
    trustless_work_url: str
    airtm_url: str
    control_url: str


class Asset(msgspec.Struct, frozen=True, kw_only=True):
    """The on-chain asset backing USD 1:1."""

    code: str
    issuer: str


class PublicProviders(msgspec.Struct, frozen=True, kw_only=True):
    """Which provider serves each role, and the sandbox URLs when it is the sandbox."""

    chain: str
    escrow: str
    fiat: str
    sandbox: SandboxUrls | None = None


class Pagination(msgspec.Struct, frozen=True, kw_only=True):
    """List limits (api.md 1.4)."""

    default_limit: int = 20
    max_limit: int = 100


class Range(msgspec.Struct, frozen=True, kw_only=True):
    """An inclusive amount range, as decimal strings."""

    min: str
    max: str


# Minor units (scale 7). Enforced by the routes with 400 INVALID_AMOUNT {min, max} (api.md 1.6).
AMOUNT_LIMITS: Final[dict[str, tuple[int, int]]] = {
    "order": (100_000, 1_000_000 * 10_000_000),
    "topup": (10_000_000, 10_000 * 10_000_000),
    "withdrawal": (10_000_000, 100_000 * 10_000_000),
}


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Amount limits per flow."""

    order: Range
    topup: Range
    withdrawal: Range


def _limits() -> Limits:
    ranges = {
        kind: Range(min=format_amount(low), max=format_amount(high))
        for kind, (low, high) in AMOUNT_LIMITS.items()
    }
    return Limits(**ranges)


class Features(msgspec.Struct, frozen=True, kw_only=True):
    """What this installation offers."""

    milestones: bool = True
    disputes: bool = True
    sse: bool = False
    outbound_webhooks: bool = True
    airtm: bool = True
    trustless_work: bool = True


class Idempotency(msgspec.Struct, frozen=True, kw_only=True):
    """How long Idempotency-Key records are kept."""

    retention_hours: int = 168


class Operations(msgspec.Struct, frozen=True, kw_only=True):
    """How long a request waits for its durable operation before answering 202."""

    wait_seconds: int = 20


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """The public configuration (api.md 3.1)."""

    version: str
    network: str
    currencies: list[str]
    asset: Asset
    providers: PublicProviders
    pagination: Pagination
    limits: Limits = msgspec.field(default_factory=_limits)
    features: Features = msgspec.field(default_factory=Features)
    idempotency: Idempotency = msgspec.field(default_factory=Idempotency)
    operations: Operations = msgspec.field(default_factory=Operations)


def check_amount_limit(kind: str, amount_minor: int, field: str = "amount") -> None:
    """Refuse an amount outside the published limits of ``kind`` (order, topup, withdrawal).

    Raises:
        InvalidAmount: ``details {min, max}`` (api.md 1.6); the message names the field.
    """
    low, high = AMOUNT_LIMITS[kind]
    if not low <= amount_minor <= high:
        raise InvalidAmount(
            f"{field} must be between {format_amount(low)} and {format_amount(high)}",
            min=format_amount(low),
            max=format_amount(high),
        )


@get("/config", opt=PUBLIC, sync_to_thread=False, tags=["health"])
def config(request: Request[Any, Any, Any]) -> Config:
    """Return the configuration built at start-up."""
    built: Config = request.app.state.config
    return built
