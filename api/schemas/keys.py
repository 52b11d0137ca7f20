"""API key wire types (api.md 3.2, 4) and the ``/auth/me`` answer."""

from typing import Annotated, Literal

from msgspec import Meta, structs

from api.queries.api_keys import ApiKeyRow
from api.schemas.common import RequestStruct, ResponseStruct, format_time
from api.schemas.marketplaces import Marketplace

__all__ = [
    "ApiKey",
    "ApiKeyCreate",
    "CreatedApiKey",
    "Me",
    "api_key_out",
    "created_api_key_out",
    "without_secret",
]

ScopeInput = Literal["read", "write", "support", "admin", "*"]


class ApiKeyCreate(RequestStruct, frozen=True):
    """``POST /auth/api-keys``: ``marketplace_id`` is required with the master key only."""

    name: Annotated[str, Meta(min_length=1, max_length=100)]
    scopes: Annotated[list[ScopeInput], Meta(min_length=1, max_length=4)]
    marketplace_id: str | None = None


class ApiKey(ResponseStruct, frozen=True):
    """An API key, without its secret."""

    id: str
    name: str
    scopes: list[str]
    marketplace_id: str
    status: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class CreatedApiKey(ApiKey, frozen=True):
    """An API key as created: the only answer that carries the plaintext ``key``."""

    key: str


class Me(ResponseStruct, frozen=True):
    """``GET /auth/me``: the calling credential (both ``null`` for the master key)."""

    api_key: ApiKey | None
    marketplace: Marketplace | None
    master: bool
    network: str
    version: str


def api_key_out(row: ApiKeyRow) -> ApiKey:
    """The wire form of a key row (never the salt or hash)."""
    return ApiKey(
        id=row.id,
        name=row.name,
        scopes=list(row.scopes),
        marketplace_id=row.marketplace_id,
        status=row.status,
        created_at=format_time(row.created_at),
        last_used_at=format_time(row.last_used_at) if row.last_used_at else None,
        revoked_at=format_time(row.revoked_at) if row.revoked_at else None,
    )


def created_api_key_out(row: ApiKeyRow, key: str) -> CreatedApiKey:
    """The answer to a key creation: the key and, this once, its plaintext."""
    return CreatedApiKey(**structs.asdict(api_key_out(row)), key=key)


def without_secret(created: CreatedApiKey) -> ApiKey:
    """The same key without its plaintext (what an idempotent replay may show)."""
    fields = structs.asdict(created)
    del fields["key"]
    return ApiKey(**fields)
