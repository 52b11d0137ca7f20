"""The Airtm-compatible HTTP app of the sandbox (providers.md 5.4), over an ``AirtmState``.

Routes, under a configurable prefix (``/_sandbox/airtm`` in ``offerhub serve``):
``POST/GET/DELETE /payins``, ``GET /payins/by-code/{code}``, ``POST /payouts``,
``POST /payouts/{id}/commit`` (204, empty body), ``GET/DELETE /payouts/{id}``,
``GET /payouts/by-code/{code}``, ``GET /payouts/{id}/events``, ``GET /me/balance`` and
``GET /users/{email}`` (the email URL-encoded; 404 / 415059 when no account has it).

A small ASGI gate in front of the Litestar routes does what Airtm's edge does before a handler
runs: injected faults (service ``"airtm"``), Basic auth (401 / 415904) and the optional
10 requests per second limiter (429).
"""

import base64
import binascii
import hmac
from typing import Any, Final, TypeVar, cast

import msgspec
from litestar import Litestar, Request, Response, Router, delete, get, post
from litestar.datastructures import State

from providers.airtm.amounts import minor_to_airtm
from providers.sandbox.airtm_records import (
    ENCODER,
    AirtmError,
    BalanceView,
    ErrorView,
    EventView,
    PayinCreateBody,
    PayoutCreateBody,
    iso_time,
    render_payin,
    render_payout,
    render_user,
)
from providers.sandbox.airtm_state import AirtmState
from providers.sandbox.clock import SandboxClock
from providers.sandbox.faults import FaultRules
from providers.sandbox.http_faults import (
    ASGIApp,
    FaultReplies,
    Message,
    Receive,
    Scope,
    Send,
    apply_http_fault,
)

__all__ = ["SERVICE", "ASGIApp", "AirtmSandboxSettings", "create_airtm_app"]

SERVICE: Final = "airtm"
T = TypeVar("T")
# Plain ASGI types (not Litestar's), so any server or httpx.ASGITransport accepts the app.
_PAYIN_BODY: Final = msgspec.json.Decoder(PayinCreateBody)
_PAYOUT_BODY: Final = msgspec.json.Decoder(PayoutCreateBody)
_JSON: Final = "application/json"
_STATE_KEY: Final = "airtm"


class AirtmSandboxSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How the simulated Airtm is reached."""

    path_prefix: str = ""
    api_key: str = "sandbox-api-key"
    api_secret: str = "sandbox-api-secret"  # noqa: S105 - a well-known sandbox credential
    rate_limit_rps: int | None = None
    hang_s: float = 120.0


def _state(request: Request[Any, Any, Any]) -> AirtmState:
    """The simulated Airtm this app serves (kept in ``app.state`` rather than injected)."""
    state = request.app.state[_STATE_KEY]
    assert isinstance(state, AirtmState)
    return state


def _path(request: Request[Any, Any, Any], name: str) -> str:
    """A path parameter, read from the request rather than inferred from the signature."""
    value = request.path_params[name]
    assert isinstance(value, str)
    return value


def _json(view: object, status_code: int = 200) -> Response[bytes]:
    return Response(ENCODER.encode(view), status_code=status_code, media_type=_JSON)


def _decode(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as error:
        raise AirtmError(415901, str(error)) from error


@post("/payins", status_code=201)
async def create_payin(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Create a payin."""
    airtm = _state(request)
    body = _decode(_PAYIN_BODY, await request.body())
    return _json(render_payin(airtm.create_payin(body)), 201)


@get("/payins/by-code/{code:str}")
async def get_payin_by_code(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Read a payin by code."""
    airtm = _state(request)
    return _json(render_payin(airtm.payin_by_code(_path(request, "code"))))


@get("/payins/{payin_id:str}")
async def get_payin(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Read a payin by id."""
    airtm = _state(request)
    return _json(render_payin(airtm.payin(_path(request, "payin_id"))))


@delete("/payins/{payin_id:str}", status_code=200)
async def cancel_payin(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Cancel a CREATED payin."""
    airtm = _state(request)
    return _json(render_payin(airtm.cancel_payin(_path(request, "payin_id"))))


@post("/payouts", status_code=201)
async def create_payout(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Create (and with ``commit: true`` commit) a payout."""
    airtm = _state(request)
    body = _decode(_PAYOUT_BODY, await request.body())
    return _json(render_payout(airtm.create_payout(body)), 201)


@post("/payouts/{payout_id:str}/commit", status_code=204)
async def commit_payout(request: Request[Any, Any, Any]) -> None:
    """Commit a payout; Airtm answers with an empty body."""
    airtm = _state(request)
    airtm.commit_payout(_path(request, "payout_id"))


@get("/payouts/by-code/{code:str}")
async def get_payout_by_code(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Read a payout by code."""
    airtm = _state(request)
    return _json(render_payout(airtm.payout_by_code(_path(request, "code"))))


@get("/payouts/{payout_id:str}")
async def get_payout(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Read a payout by id."""
    airtm = _state(request)
    return _json(render_payout(airtm.payout(_path(request, "payout_id"))))


@get("/payouts/{payout_id:str}/events")
async def get_payout_events(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Read a payout's status history."""
    airtm = _state(request)
    history = airtm.payout(_path(request, "payout_id")).history
    return _json(
        [EventView(status=status.value, created_at=iso_time(at)) for status, at in history]
    )


@delete("/payouts/{payout_id:str}", status_code=200)
async def cancel_payout(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Cancel a CREATED or PENDING payout."""
    airtm = _state(request)
    return _json(render_payout(airtm.cancel_payout(_path(request, "payout_id"))))


@get("/me/balance")
async def me_balance(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Read the enterprise balance."""
    airtm = _state(request)
    airtm.expire_due()
    view = BalanceView(
        available=minor_to_airtm(airtm.available_minor),
        pending=minor_to_airtm(airtm.pending_minor),
    )
    return _json(view)


@get("/users/{email:path}")
async def get_user(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Read an account by email.

    The ASGI path arrives percent-decoded, so an email holding ``/`` (legal, if rare) spans
    several segments: a ``path`` parameter takes them all, with a leading ``/`` to drop.
    """
    airtm = _state(request)
    email = str(request.path_params["email"]).removeprefix("/")
    return _json(render_user(airtm.user(email)))


def _airtm_error(_: Request[Any, Any, Any], error: AirtmError) -> Response[bytes]:
    return _json(ErrorView(code=error.code, message=error.message), error.http_status)


class _RateLimiter:
    """At most ``rps`` requests per key in each whole second of the sandbox clock."""

    def __init__(self, rps: int, clock: SandboxClock) -> None:
        self._rps = rps
        self._clock = clock
        self._window_s = -1
        self._counts: dict[str, int] = {}

    def allow(self, key: str) -> bool:
        """Count one request for ``key`` and tell whether it is within the limit."""
        window_s = self._clock.now_s()
        if window_s != self._window_s:
            self._window_s, self._counts = window_s, {}
        self._counts[key] = self._counts.get(key, 0) + 1
        return self._counts[key] <= self._rps


async def _send_json(
    send: Send, status: int, body: bytes, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", _JSON.encode()), *headers],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _error_body(code: int, message: str) -> bytes:
    return ENCODER.encode(ErrorView(code=code, message=message))


async def _send_injected_error(
    send: Send, status: int, message: str, retry_after_s: int | None
) -> None:
    """An injected failure in Airtm's error shape (code 415999: an unexpected error)."""
    headers = () if retry_after_s is None else ((b"retry-after", str(retry_after_s).encode()),)
    await _send_json(send, status, _error_body(415999, message), headers)


class _Gate:
    """Faults, then Basic auth, then the rate limit, in front of the routes."""

    def __init__(
        self, app: ASGIApp, state: AirtmState, faults: FaultRules, settings: AirtmSandboxSettings
    ) -> None:
        self._app = app
        self._faults = faults
        self._settings = settings
        self._prefix = settings.path_prefix.rstrip("/")
        credentials = f"{settings.api_key}:{settings.api_secret}".encode()
        self._expected = credentials
        rps = settings.rate_limit_rps
        self._limiter = None if rps is None else _RateLimiter(rps, state.clock)
        self._replies = FaultReplies(
            send_error=_send_injected_error,
            hang_s=settings.hang_s,
            before_apply_status=500,
            before_apply_message="injected failure before apply",
            response_lost_message="injected: response lost",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path = scope["path"].removeprefix(self._prefix) or "/"
        fault = self._faults.match(SERVICE, scope["method"], path)
        if fault is not None and await apply_http_fault(
            fault, self._app, scope, receive, send, replies=self._replies
        ):
            return
        if not self._authorized(scope):
            await _send_json(send, 401, _error_body(415904, "Unauthorized"))
            return
        if self._limiter is not None and not self._limiter.allow(self._settings.api_key):
            body = _error_body(415999, "Too many requests")
            await _send_json(send, 429, body, ((b"retry-after", b"1"),))
            return
        await self._app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name.lower() == b"authorization" and value[:6].lower() == b"basic ":
                try:
                    given = base64.b64decode(value[6:].strip(), validate=True)
                except binascii.Error:
                    return False
                return hmac.compare_digest(given, self._expected)
        return False


def create_airtm_app(
    state: AirtmState, *, faults: FaultRules, settings: AirtmSandboxSettings | None = None
) -> ASGIApp:
    """Build the Airtm-compatible ASGI app over ``state``; faults are read from ``faults``."""
    settings = settings or AirtmSandboxSettings()
    router = Router(
        path=settings.path_prefix.rstrip("/") or "/",
        route_handlers=[
            create_payin,
            get_payin_by_code,
            get_payin,
            cancel_payin,
            create_payout,
            commit_payout,
            get_payout_by_code,
            get_payout,
            get_payout_events,
            cancel_payout,
            me_balance,
            get_user,
        ],
    )
    app = Litestar(
        route_handlers=[router],
        state=State({_STATE_KEY: state}),
        exception_handlers={AirtmError: _airtm_error},
        openapi_config=None,
    )
    return _Gate(cast(ASGIApp, app), state, faults, settings)
