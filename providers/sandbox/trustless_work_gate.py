"""The edge of the simulated Trustless Work: injected faults, ``x-api-key`` and the limiter.

Order, as at TW's edge: a matching fault for service ``"trustless_work"`` (``latency_ms``,
``hang``, ``status:<code>``, ``fail_before_apply``, ``applied_response_lost``; a
``tampered_xdr`` fault is only flagged in ``scope["state"]`` for the build route to act on),
then the API key (401), then the optional requests-per-window limiter (429 + Retry-After).
"""

import hmac
import math
from collections import deque
from typing import Final

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
from providers.sandbox.trustless_work_views import encode, error_body

__all__ = ["SERVICE", "TAMPER_KEY", "ASGIApp", "Gate"]

SERVICE: Final = "trustless_work"
TAMPER_KEY: Final = "tw_tampered_xdr"
_JSON: Final = "application/json"
_NOT_SENT: Final = "The transaction could not be sent to the Stellar network, please try again"


class _RateLimiter:
    """At most ``limit`` requests in any ``window_s`` seconds of the sandbox clock."""

    def __init__(self, limit: int, window_s: int, clock: SandboxClock) -> None:
        self._limit = limit
        self._window_s = window_s
        self._clock = clock
        self._seen: deque[float] = deque()

    def retry_after_s(self) -> int | None:
        """Count one request; ``None`` when allowed, else the seconds until a slot frees."""
        now = self._clock.now()
        while self._seen and self._seen[0] <= now - self._window_s:
            self._seen.popleft()
        if len(self._seen) >= self._limit:
            return max(1, math.ceil(self._seen[0] + self._window_s - now))
        self._seen.append(now)
        return None


async def _send_error(
    send: Send, status: int, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", _JSON.encode()), *headers],
    }
    await send(start)
    body = encode(error_body(status, message))
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_injected_error(
    send: Send, status: int, message: str, retry_after_s: int | None
) -> None:
    retry = () if retry_after_s is None else ((b"retry-after", str(retry_after_s).encode()),)
    await _send_error(send, status, message, retry)


class Gate:
    """Faults, then the API key, then the rate limit, in front of the routes."""

    def __init__(
        self,
        app: ASGIApp,
        clock: SandboxClock,
        faults: FaultRules,
        *,
        path_prefix: str,
        api_key: str,
        rate_limit: int | None,
        rate_window_s: int,
        hang_s: float,
    ) -> None:
        self._app = app
        self._faults = faults
        self._prefix = path_prefix.rstrip("/")
        self._api_key = api_key.encode()
        self._replies = FaultReplies(
            send_error=_send_injected_error,
            hang_s=hang_s,
            before_apply_status=500,
            before_apply_message=_NOT_SENT,
            response_lost_message="Gateway Timeout",
        )
        self._limiter = (
            None if rate_limit is None else _RateLimiter(rate_limit, rate_window_s, clock)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path = scope["path"].removeprefix(self._prefix) or "/"
        fault = self._faults.match(SERVICE, scope["method"], path)
        if fault is not None and fault.kind == "tampered_xdr":
            # Not an HTTP failure: the build route reads the flag and tampers its envelope.
            scope.setdefault("state", {})[TAMPER_KEY] = True
        elif fault is not None and await apply_http_fault(
            fault, self._app, scope, receive, send, replies=self._replies
        ):
            return
        if not self._authorized(scope):
            await _send_error(send, 401, "Invalid or missing API key")
            return
        wait_s = None if self._limiter is None else self._limiter.retry_after_s()
        if wait_s is not None:
            retry = ((b"retry-after", str(wait_s).encode()),)
            await _send_error(send, 429, "ThrottlerException: Too Many Requests", retry)
            return
        await self._app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name.lower() == b"x-api-key":
                return hmac.compare_digest(value, self._api_key)
        return False
