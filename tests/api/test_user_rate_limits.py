"""Per-user creation limits (api.md 1.10): top-ups and withdrawals per user and minute.

The limits count what the user really created in the last minute, so a replay of a created
request is answered as before, another user is not affected, and a refused request writes
nothing and may be retried later under the same key.
"""

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from tests.api.support import running_api_on_sandbox, settings_for_tests
from tests.api.test_orders_support import USDC, Market, code, new_market

pytestmark = pytest.mark.db

PAYEE = "payee@example.com"
TOPUP = {"return_url": "https://shop.example/ok", "cancel_url": "https://shop.example/no"}


@pytest.fixture
async def market(db_dsn: str, pool: asyncpg.Pool) -> AsyncIterator[Market]:
    settings = settings_for_tests(topups_per_user_per_min=3, withdrawals_per_user_per_min=2)
    async with running_api_on_sandbox(db_dsn, settings=settings, wait_s=3.0) as api:
        api.sandbox.airtm.fund(1_000 * USDC)
        api.sandbox.airtm.add_user(PAYEE)
        yield await new_market(api, pool)


async def _count(market: Market, table: str, user: str) -> int:
    return int(await market.pool.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", user))


async def _post(market: Market, path: str, body: dict[str, Any], idempotency_key: str) -> Any:
    return await market.api.post(f"/api/v1{path}", market.key, body, idempotency_key)


def _limited(response: Any, limit: int) -> None:
    assert response.status_code == 429, response.text
    assert code(response) == "RATE_LIMITED"
    details = response.json()["error"]["details"]
    assert (details["limit"], details["window_seconds"]) == (limit, 60)
    assert 1 <= details["retry_after"] <= 60
    assert response.headers["retry-after"] == str(details["retry_after"])


async def test_topups_past_the_limit_are_429_and_write_nothing(market: Market) -> None:
    alice, bob = await market.user(), await market.user()
    for n in range(3):
        made = await _post(market, "/topups", {"user_id": alice, "amount": "5", **TOPUP}, f"t{n}")
        assert made.status_code == 201, made.text
    refused = await _post(market, "/topups", {"user_id": alice, "amount": "5", **TOPUP}, "t3")
    _limited(refused, 3)
    assert await _count(market, "topups", alice) == 3

    replay = await _post(market, "/topups", {"user_id": alice, "amount": "5", **TOPUP}, "t0")
    assert replay.status_code == 201
    assert replay.headers["idempotency-replayed"] == "true"
    other = await _post(market, "/topups", {"user_id": bob, "amount": "5", **TOPUP}, "b0")
    assert other.status_code == 201, other.text

    # The refused key was not stored: once the window moves on, the same request goes through.
    await market.pool.execute(
        "UPDATE topups SET created_at = created_at - interval '61 seconds' WHERE user_id = $1",
        alice,
    )
    retried = await _post(market, "/topups", {"user_id": alice, "amount": "5", **TOPUP}, "t3")
    assert retried.status_code == 201, retried.text
    assert "idempotency-replayed" not in retried.headers


async def test_withdrawals_past_the_limit_are_429_and_hold_nothing(market: Market) -> None:
    alice = await market.user()
    await market.credit(alice, "100")
    body = {"user_id": alice, "amount": "10", "destination_type": "airtm_balance"}
    for n in range(2):
        made = await _post(market, "/withdrawals", {**body, "destination_ref": PAYEE}, f"w{n}")
        assert made.status_code == 201, made.text
    refused = await _post(market, "/withdrawals", {**body, "destination_ref": PAYEE}, "w2")
    _limited(refused, 2)
    assert await _count(market, "withdrawals", alice) == 2
    balance = await market.balance(alice)
    assert (balance["available"], balance["reserved"]) == ("80.00", "20.00")
