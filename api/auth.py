"""Authentication, scopes and tenancy (api.md 1.2): who is calling, and may they call this route.

Every route declares exactly one guard built here, or is marked public with ``opt=PUBLIC``:

* ``requires("write")``: an API key holding ``write`` (``admin`` satisfies every scope);
* ``requires("admin", allow_master=True)``: the same, or the master key (API-key routes);
* ``requires_master()``: the master key only (marketplace routes);
* ``authenticated()``: any valid credential, master key included (``/auth/me``).

The guard authenticates the ``Authorization: Bearer`` credential, takes a rate-limit token,
checks the scope and leaves a :class:`Caller` for the handler (parameter ``caller: CurrentCaller``).
"""

import hmac
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeAlias

import asyncpg
import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers import BaseRouteHandler

from api.api_keys import parse_key, secret_matches
from api.database import connection
from api.errors import InsufficientScope, InvalidApiKey, Unauthorized
from api.queries.api_keys import find_api_key, touch_api_key
from api.rate_limit import TokenBucketLimiter, enforce_rate_limit
from api.request_id import request_id_of, scope_state
from api.settings import Settings
from flows.transitions import Actor

__all__ = [
    "MASTER_NAMESPACE",
    "PUBLIC",
    "Caller",
    "CurrentCaller",
    "ScopeGuard",
    "authenticated",
    "caller_of",
    "is_public",
    "provide_caller",
    "requires",
    "requires_master",
]

MASTER_NAMESPACE: Final = "master"
PUBLIC: Final = {"public": True}
_CALLER_KEY: Final = "offerhub.caller"
_TOUCH_EVERY: Final = timedelta(minutes=1)


class Caller(msgspec.Struct, frozen=True, kw_only=True):
    """The authenticated credential of a request."""

    marketplace_id: str | None
    key_id: str | None
    scopes: tuple[str, ...]
    is_master: bool
    request_id: str

    @property
    def tenant(self) -> str:
        """The caller's marketplace; only on routes the master key cannot reach."""
        assert self.marketplace_id is not None, "the master key belongs to no marketplace"
        return self.marketplace_id

    @property
    def namespace(self) -> str:
        """The idempotency namespace: the marketplace, or the master key's own."""
        return self.marketplace_id or MASTER_NAMESPACE

    @property
    def actor(self) -> Actor:
        """Who acted, as recorded by ``flows.transitions.fire`` and the audit log."""
        if self.is_master:
            return Actor(type="MASTER_KEY", id=None, request_id=self.request_id)
        return Actor(type="API_KEY", id=self.key_id, request_id=self.request_id)


def _client_bucket(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    client = connection.client
    return f"ip:{client.host if client else 'unknown'}"


async def _api_key_caller(pool: asyncpg.Pool, token: str, env: str, request_id: str) -> Caller:
    parsed = parse_key(token)
    if parsed is None or parsed.env != env:
        raise InvalidApiKey()
    async with connection(pool) as conn:
        row = await find_api_key(conn, parsed.key_id)
        if row is None or row.status != "ACTIVE" or not secret_matches(row, parsed.secret):
            raise InvalidApiKey()
        if row.last_used_at is None or datetime.now(UTC) - row.last_used_at >= _TOUCH_EVERY:
            await touch_api_key(conn, row.marketplace_id, row.id)
    return Caller(
        marketplace_id=row.marketplace_id,
        key_id=row.id,
        scopes=tuple(row.scopes),
        is_master=False,
        request_id=request_id,
    )


async def _identify(connection: ASGIConnection[Any, Any, Any, Any], settings: Settings) -> Caller:
    header = connection.headers.get("authorization")
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized()
    request_id = request_id_of(connection.scope)
    master = settings.master_key
    if master is not None and hmac.compare_digest(token.encode(), master.encode()):
        return Caller(
            marketplace_id=None, key_id=None, scopes=(), is_master=True, request_id=request_id
        )
    return await _api_key_caller(connection.app.state.pool, token, settings.key_env, request_id)


async def _authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    """Identify the caller and take a rate-limit token (per key; per IP for the rest)."""
    settings: Settings = connection.app.state.settings
    limiter: TokenBucketLimiter | None = connection.app.state.rate_limiter
    try:
        caller = await _identify(connection, settings)
    except (Unauthorized, InvalidApiKey):
        # Failed attempts count against the client's address: guessing keys costs tokens.
        enforce_rate_limit(connection.scope, limiter, _client_bucket(connection))
        raise
    bucket = _client_bucket(connection) if caller.is_master else f"key:{caller.key_id}"
    enforce_rate_limit(connection.scope, limiter, bucket)
    return caller


class ScopeGuard:
    """A route's one requirement: a scope, the master key, or any credential."""

    def __init__(self, scope: str | None, *, allow_master: bool, master_only: bool) -> None:
        self.scope = scope
        self.allow_master = allow_master or master_only
        self.master_only = master_only

    def _check(self, caller: Caller) -> None:
        required = "master" if self.master_only else (self.scope or "any")
        if caller.is_master:
            if not self.allow_master:
                raise InsufficientScope(
                    "the master key may call only /marketplaces, /auth/api-keys and /auth/me",
                    required_scope=required,
                    current_scopes=[],
                )
            return
        held = caller.scopes
        if self.master_only or (
            self.scope is not None and self.scope not in held and "admin" not in held
        ):
            raise InsufficientScope(required_scope=required, current_scopes=list(caller.scopes))

    async def __call__(
        self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
    ) -> None:
        """Authenticate, rate-limit and authorize the request; keep the caller for the handler."""
        caller = await _authenticate(connection)
        self._check(caller)
        scope_state(connection.scope)[_CALLER_KEY] = caller


def requires(scope: str, *, allow_master: bool = False) -> ScopeGuard:
    """Guard: an API key with ``scope`` (or ``admin``); the master key too if ``allow_master``."""
    assert scope in ("read", "write", "support", "admin")
    return ScopeGuard(scope, allow_master=allow_master, master_only=False)


def requires_master() -> ScopeGuard:
    """Guard: the master key only."""
    return ScopeGuard(None, allow_master=True, master_only=True)


def authenticated(*, allow_master: bool = True) -> ScopeGuard:
    """Guard: any valid credential."""
    return ScopeGuard(None, allow_master=allow_master, master_only=False)


def is_public(handler: BaseRouteHandler) -> bool:
    """Whether a route is reachable without credentials (``opt=PUBLIC``)."""
    return bool(handler.opt.get("public"))


def caller_of(request: Request[Any, Any, Any]) -> Caller | None:
    """The caller the guard left on this request, if the route has a guard."""
    caller = scope_state(request.scope).get(_CALLER_KEY)
    return caller if isinstance(caller, Caller) else None


def provide_caller(request: Request[Any, Any, Any]) -> Caller:
    """Dependency behind ``caller: CurrentCaller``."""
    caller = caller_of(request)
    assert caller is not None, "a handler asked for the caller on a route without a guard"
    return caller


CurrentCaller: TypeAlias = NamedDependency[Caller]
