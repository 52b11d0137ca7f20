"""Rate limiting (api.md 1.10): an in-process token bucket per API key (per IP without one).

Each bucket holds up to ``burst`` tokens and refills at ``rate_per_s``; a request takes one.
Limited responses carry ``X-RateLimit-Limit`` (the bucket size), ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset`` (unix seconds when the bucket is full again). One process keeps its own
buckets: with N API processes a key may reach N times the configured rate.
"""

import math
import time
from collections.abc import Callable
from typing import Final

import msgspec
from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

from api.errors import RateLimited
from api.request_id import scope_state

__all__ = [
    "Decision",
    "TokenBucketLimiter",
    "add_rate_limit_headers",
    "enforce_rate_limit",
    "refuse_concurrent",
]

_STATE_KEY: Final = "offerhub.rate_limit"
# Past this many buckets, full (idle) ones are dropped: they hold no information.
_MAX_BUCKETS: Final = 10_000


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of taking one token."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: int
    retry_after_s: int


class TokenBucketLimiter:
    """Token buckets keyed by caller; not shared between processes."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        assert rate_per_s > 0
        assert burst >= 1
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._wall_clock = wall_clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def _level(self, bucket: str, now: float) -> float:
        tokens, updated = self._buckets.get(bucket, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - updated) * self.rate_per_s)

    def take(self, bucket: str) -> Decision:
        """Take one token from ``bucket`` if there is one."""
        now = self._clock()
        tokens = self._level(bucket, now)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        if len(self._buckets) >= _MAX_BUCKETS and bucket not in self._buckets:
            self._prune(now)
        self._buckets[bucket] = (tokens, now)
        full_in_s = (self.burst - tokens) / self.rate_per_s
        return Decision(
            allowed=allowed,
            limit=self.burst,
            remaining=int(tokens),
            reset_at=math.ceil(self._wall_clock() + full_in_s),
            retry_after_s=0 if allowed else max(1, math.ceil((1 - tokens) / self.rate_per_s)),
        )

    def _prune(self, now: float) -> None:
        full = [key for key in self._buckets if self._level(key, now) >= self.burst]
        for key in full:
            del self._buckets[key]


def enforce_rate_limit(scope: Scope, limiter: TokenBucketLimiter | None, bucket: str) -> None:
    """Take a token for this request; remember the outcome for the response headers.

    Raises:
        RateLimited: the bucket is empty (429 with ``Retry-After``).
    """
    if limiter is None:
        return
    decision = limiter.take(bucket)
    scope_state(scope)[_STATE_KEY] = decision
    if not decision.allowed:
        # Stated as "limit requests per window_seconds", in whole numbers.
        window_s = 1 if limiter.rate_per_s >= 1 else math.ceil(1 / limiter.rate_per_s)
        raise RateLimited(
            limit=max(1, math.floor(limiter.rate_per_s * window_s)),
            window_seconds=window_s,
            retry_after=decision.retry_after_s,
        )


def refuse_concurrent(scope: Scope, *, limit: int, retry_after_s: int) -> RateLimited:
    """The 429 of a concurrency cap (SSE streams per key), with ``X-RateLimit-*`` saying so.

    A cap has no window: ``window_seconds`` is the retry delay, the earliest moment worth
    asking again. Returns the error for the caller to raise.
    """
    scope_state(scope)[_STATE_KEY] = Decision(
        allowed=False,
        limit=limit,
        remaining=0,
        reset_at=math.ceil(time.time() + retry_after_s),
        retry_after_s=retry_after_s,
    )
    return RateLimited(limit=limit, window_seconds=retry_after_s, retry_after=retry_after_s)


async def add_rate_limit_headers(message: Message, scope: Scope) -> None:
    """``before_send`` hook: the ``X-RateLimit-*`` headers of a rate-limited request."""
    if message["type"] != "http.response.start":
        return
    decision = scope_state(scope).get(_STATE_KEY)
    if isinstance(decision, Decision):
        headers = MutableScopeHeaders.from_message(message)
        headers["X-RateLimit-Limit"] = str(decision.limit)
        headers["X-RateLimit-Remaining"] = str(decision.remaining)
        headers["X-RateLimit-Reset"] = str(decision.reset_at)
