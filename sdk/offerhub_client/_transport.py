"""Sending one logical call, with safe retries: the blocking and the asyncio loop.

Everything but the loop is shared: building the HTTP request, deciding whether and how long to
wait before the next attempt (:class:`RetryPolicy`), decoding the answer or raising its error.

A mutating call (every POST) gets its ``Idempotency-Key`` once, before the first attempt, and
sends the same key on every retry, so the server executes it at most once and replays its answer
(api.md 1.8). Retried: timeouts and connection errors, 429, 5xx and 409
``IDEMPOTENCY_KEY_IN_PROGRESS``, waiting ``Retry-After`` when the server sends it and an
exponential backoff with jitter otherwise. Never retried: any other 4xx.
"""

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Final

import httpx
import msgspec

from offerhub_client._call import Request
from offerhub_client.errors import (
    APIConnectionError,
    APITimeoutError,
    error_from_response,
    retry_after_s,
)
from offerhub_client.version import VERSION

__all__ = ["AsyncTransport", "RetryPolicy", "SyncTransport"]

_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
_IN_PROGRESS: Final = "IDEMPOTENCY_KEY_IN_PROGRESS"
_USER_AGENT: Final = f"offerhub-client-python/{VERSION}"


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How often and how long to retry a call that may succeed later.

    ``max_attempts`` counts the first one. The n-th wait is ``base_delay_s * 2**(n-1)``, capped
    at ``max_delay_s``, times a random factor in [0.5, 1] (so clients that failed together do
    not retry together). A ``Retry-After`` longer than ``max_retry_after_s`` ends the retries.
    """

    max_attempts: int = 5
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0
    max_retry_after_s: float = 60.0

    def backoff_s(self, attempt: int) -> float:
        """The jittered wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret

    def after_error(self, attempt: int) -> float | None:
        """The wait before retrying after no answer at all, or None to give up."""
        return self.backoff_s(attempt) if attempt < self.max_attempts else None

    def after_response(self, attempt: int, response: httpx.Response) -> float | None:
        """The wait before retrying after ``response``, or None to keep the answer."""
        if not _is_retriable(response) or attempt >= self.max_attempts:
            return None
        hinted = retry_after_s(response.headers)
        if hinted is None:
            return self.backoff_s(attempt)
        return hinted if hinted <= self.max_retry_after_s else None


def _error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def _is_retriable(response: httpx.Response) -> bool:
    if response.status_code in _RETRY_STATUSES or response.status_code > 504:
        return True
    return response.status_code == 409 and _error_code(response) == _IN_PROGRESS


class _Codec:
    """Decoders per response type, built once (msgspec's advice) and shared by both loops."""

    def __init__(self) -> None:
        self._decoders: dict[Any, msgspec.json.Decoder[Any]] = {}

    def decode(self, request: Request, response: httpx.Response) -> Any:
        """The decoded result of a 2xx answer, or raise the error of any other."""
        if not response.is_success:
            try:
                body: object = response.json()
            except ValueError:
                body = None
            raise error_from_response(response.status_code, body, dict(response.headers))
        if request.response is None or response.status_code == 204:
            return None
        if request.response is bytes:
            return response.content
        decoder = self._decoders.get(request.response)
        if decoder is None:
            decoder = self._decoders[request.response] = msgspec.json.Decoder(request.response)
        return decoder.decode(response.content)


class _Base:
    """What both transports share: credentials, headers, the policy and the codec."""

    def __init__(self, api_key: str | None, policy: RetryPolicy) -> None:
        self.api_key = api_key
        self.policy = policy
        self.codec = _Codec()

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Headers of every request: the bearer key, the user agent, and ``extra``."""
        headers = {"User-Agent": _USER_AGENT, "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return {**headers, **(extra or {})}

    def build(self, http: httpx.Client | httpx.AsyncClient, request: Request) -> httpx.Request:
        """The HTTP request of ``request`` (its Idempotency-Key already chosen)."""
        extra = {}
        if request.idempotency_key is not None:
            extra["Idempotency-Key"] = request.idempotency_key
        return http.build_request(
            request.method,
            request.path.lstrip("/"),
            params=request.query or None,
            json=request.body if request.method == "POST" else None,
            headers=self.headers(extra),
        )


def _with_key(request: Request) -> Request:
    """One key per logical call: the caller's, or a fresh UUID for a POST without one."""
    if request.method != "POST" or request.idempotency_key is not None:
        return request
    return msgspec.structs.replace(request, idempotency_key=str(uuid.uuid4()))


def _connection_error(error: httpx.TransportError) -> APIConnectionError:
    if isinstance(error, httpx.TimeoutException):
        return APITimeoutError(f"no answer in time: {error!r}")
    return APIConnectionError(f"no answer: {error!r}")


class SyncTransport(_Base):
    """The blocking loop over an ``httpx.Client``."""

    is_async = False

    def __init__(
        self,
        http: httpx.Client,
        api_key: str | None,
        policy: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(api_key, policy)
        self.http = http
        self.sleep = sleep

    def run(self, request: Request) -> Any:
        """Send ``request`` until it succeeds, fails for good, or the retries run out."""
        request = _with_key(request)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.http.send(self.build(self.http, request))
            except httpx.TransportError as error:
                delay = self.policy.after_error(attempt)
                if delay is None:
                    raise _connection_error(error) from error
                self.sleep(delay)
                continue
            delay = self.policy.after_response(attempt, response)
            if delay is None:
                return self.codec.decode(request, response)
            self.sleep(delay)

    def iterate(self, build: Callable[..., Request], *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Every item of a list endpoint, following ``next_cursor`` page after page."""
        while True:
            page = self.run(build(*args, **kwargs))
            yield from page.data
            if not page.pagination.has_more or page.pagination.next_cursor is None:
                return
            kwargs["cursor"] = page.pagination.next_cursor


class AsyncTransport(_Base):
    """The asyncio loop over an ``httpx.AsyncClient``."""

    is_async = True

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: str | None,
        policy: RetryPolicy,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        super().__init__(api_key, policy)
        self.http = http
        self.sleep = sleep

    async def run(self, request: Request) -> Any:
        """Send ``request`` until it succeeds, fails for good, or the retries run out."""
        request = _with_key(request)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self.http.send(self.build(self.http, request))
            except httpx.TransportError as error:
                delay = self.policy.after_error(attempt)
                if delay is None:
                    raise _connection_error(error) from error
                await self.sleep(delay)
                continue
            delay = self.policy.after_response(attempt, response)
            if delay is None:
                return self.codec.decode(request, response)
            await self.sleep(delay)

    async def iterate(
        self, build: Callable[..., Request], *args: Any, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """Every item of a list endpoint, following ``next_cursor`` page after page."""
        while True:
            page = await self.run(build(*args, **kwargs))
            for item in page.data:
                yield item
            if not page.pagination.has_more or page.pagination.next_cursor is None:
                return
            kwargs["cursor"] = page.pagination.next_cursor
