"""Rate limiting per key (api.md 1.10): a token bucket, its headers and the 429 answer."""

import pytest

from api.bootstrap import create_key
from api.rate_limit import TokenBucketLimiter
from tests.api.support import routes_for_tests, running_api, settings_for_tests


def test_the_bucket_refills_at_the_rate_up_to_the_burst() -> None:
    now = [100.0]
    limiter = TokenBucketLimiter(2, 3, clock=lambda: now[0], wall_clock=lambda: 1_000.0)
    taken = [limiter.take("k") for _ in range(4)]
    assert [decision.allowed for decision in taken] == [True, True, True, False]
    assert [decision.remaining for decision in taken] == [2, 1, 0, 0]
    assert taken[3].retry_after_s == 1
    assert taken[2].reset_at == 1_002  # 3 tokens at 2 per second
    assert limiter.take("other").allowed  # buckets are per key
    now[0] += 0.5  # one token back
    assert limiter.take("k").allowed
    assert not limiter.take("k").allowed
    now[0] += 60
    assert limiter.take("k").remaining == 2  # never more than the burst


@pytest.mark.db
async def test_a_key_over_its_limit_gets_429_with_headers(db_dsn: str) -> None:
    settings = settings_for_tests(rate_limit_per_s=1, rate_limit_burst=3)
    async with running_api(db_dsn, settings=settings, extra_routes=routes_for_tests()) as api:
        # Keys made offline: the master key's requests would spend the same address bucket.
        key = (await create_key(db_dsn, marketplace="a", scopes=["read"], env="test"))[1].key
        other = (await create_key(db_dsn, marketplace="b", scopes=["read"], env="test"))[1].key
        answers = [await api.get("/api/v1/test/events", key) for _ in range(4)]
        assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
        assert [answer.headers["x-ratelimit-remaining"] for answer in answers] == [
            "2",
            "1",
            "0",
            "0",
        ]
        limited = answers[3]
        assert limited.headers["x-ratelimit-limit"] == "3"
        assert int(limited.headers["x-ratelimit-reset"]) > 0
        assert limited.headers["retry-after"] == "1"
        assert limited.json()["error"] == {
            "code": "RATE_LIMITED",
            "message": "Too many requests; retry after the Retry-After delay.",
            "details": {"limit": 1, "window_seconds": 1, "retry_after": 1},
        }
        assert (await api.get("/api/v1/test/events", other)).status_code == 200
        for _ in range(5):
            health = await api.client.get("/api/v1/health")
            assert health.status_code == 200
            assert "x-ratelimit-limit" not in health.headers
        assert (await api.client.get("/api/v1/config")).status_code == 200


@pytest.mark.db
async def test_failed_authentication_spends_the_address_bucket(db_dsn: str) -> None:
    settings = settings_for_tests(rate_limit_per_s=1, rate_limit_burst=2)
    async with running_api(db_dsn, settings=settings) as api:
        statuses = [
            (await api.get("/api/v1/auth/me", "ohk_test_guess")).status_code for _ in range(3)
        ]
    assert statuses == [401, 401, 429]
