"""``GET /api/v1/config``: public facts about this installation (no secrets)."""

from typing import Any

import msgspec
from litestar import Request, get

from api.auth import PUBLIC

__all__ = ["Config", "PublicProviders", "SandboxUrls", "config"]


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


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """The public configuration. Limits, features and idempotency settings come with the API."""

    version: str
    network: str
    currencies: list[str]
    asset: Asset
    providers: PublicProviders
    pagination: Pagination


@get("/config", opt=PUBLIC, sync_to_thread=False, tags=["health"])
def config(request: Request[Any, Any, Any]) -> Config:
    """Return the configuration built at start-up."""
    built: Config = request.app.state.config
    return built
