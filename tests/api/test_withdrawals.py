"""Crypto withdrawals over HTTP on the sandbox (api.md 3.8, 5.6), and the inputs they refuse.

A funded user (USDC minted to the wallet, the same amount credited to the ledger against
``external:stellar``) withdraws to another activated account: the payment lands on the sandbox
chain, the wallet and the ledger drop together, the withdrawal is COMPLETED. Destinations
Horizon says cannot receive are 422 before anything is held. Ids of another marketplace, or
of the wrong prefix, answer 404 ``WITHDRAWAL_NOT_FOUND``.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.money import format_amount
from tests.api.support import Api, running_api, running_api_on_sandbox
from tests.api.test_orders_support import USDC, Market, code, new_market

pytestmark = pytest.mark.db

WD = "/withdrawals"


@pytest.fixture
async def market(db_dsn: str, pool: asyncpg.Pool) -> AsyncIterator[Market]:
    async with running_api_on_sandbox(db_dsn) as api:
        yield await new_market(api, pool)


async def _funded_user(market: Market, amount: str = "100") -> str:
    user = await market.user()
    await market.wallets_active([user])
    await market.deposit(user, amount, int(amount) * USDC)
    return user


def _crypto(user: str, amount: str, destination: str, **fields: Any) -> dict[str, Any]:
    body = {"user_id": user, "amount": amount, "destination_type": "crypto"}
    return {**body, "destination_ref": destination, **fields}


async def test_crypto_withdrawal_pays_on_chain_and_posts_the_hold(market: Market) -> None:
    user = await _funded_user(market)
    wallet = market.public_keys[user]
    chain = market.sandbox_api.sandbox.chain
    destination = chain.activate().public_key
    body = _crypto(user, "30.5", destination, memo="invoice 7", description="payout")
    created = await market.api.post(f"/api/v1{WD}", market.key, body, idempotency_key="wd-1")
    assert created.status_code == 201, created.text
    withdrawal = created.json()
    assert created.headers["location"] == f"/api/v1{WD}/{withdrawal['id']}"
    assert withdrawal["id"].startswith("wd_")
    assert withdrawal["status"] == "WITHDRAWAL_COMPLETED"
    assert (withdrawal["amount"], withdrawal["currency"]) == ("30.50", "USD")
    assert (withdrawal["destination_type"], withdrawal["destination_ref"]) == (
        "crypto",
        destination,
    )
    assert (withdrawal["memo"], withdrawal["description"]) == ("invoice 7", "payout")
    assert withdrawal["committed"] is True
    assert len(withdrawal["transaction_hash"]) == 64
    assert withdrawal["completed_at"].endswith("Z")
    for nullable in ("airtm_payout_id", "failure_code", "failure_reason"):
        assert withdrawal[nullable] is None
    assert market.usdc(wallet) == 69_5 * USDC // 10
    assert market.usdc(destination) == 30_5 * USDC // 10
    assert await market.balance(user) == {
        "available": "69.50",
        "reserved": "0.00",
        "total": "69.50",
    }
    assert await market.posted(f"user:{user}") == 69_5 * USDC // 10

    replay = await market.api.post(f"/api/v1{WD}", market.key, body, idempotency_key="wd-1")
    assert replay.headers["idempotency-replayed"] == "true"
    assert replay.json() == withdrawal
    fetched = await market.get(f"{WD}/{withdrawal['id']}")
    assert fetched.json() == withdrawal
    refreshed = await market.post(f"{WD}/{withdrawal['id']}/refresh")
    assert (refreshed.status_code, refreshed.json()) == (200, withdrawal)
    canceled = await market.post(f"{WD}/{withdrawal['id']}/cancel", {"reason": "late"})
    assert (canceled.status_code, code(canceled)) == (409, "INVALID_STATE")
    details = canceled.json()["error"]["details"]
    assert details["current_state"] == "WITHDRAWAL_COMPLETED"
    assert details["allowed_states"] == ["WITHDRAWAL_CREATED"]
    commit = await market.post(f"{WD}/{withdrawal['id']}/commit")
    assert (commit.status_code, code(commit)) == (409, "WITHDRAWAL_NOT_COMMITTABLE")
    assert market.usdc(destination) == 30_5 * USDC // 10  # nothing paid twice

    listed = await market.get(WD, user_id=user, status="WITHDRAWAL_COMPLETED,WITHDRAWAL_FAILED")
    assert [item["id"] for item in listed.json()["data"]] == [withdrawal["id"]]
    assert (await market.get(WD, destination_type="airtm_balance")).json()["data"] == []
    window = await market.get(WD, created_after=withdrawal["created_at"])
    assert [item["id"] for item in window.json()["data"]] == [withdrawal["id"]]
    assert (await market.get(WD, created_before=withdrawal["created_at"])).json()["data"] == []


async def test_destinations_and_balances_that_are_refused(market: Market) -> None:
    user = await _funded_user(market, "10")
    chain = market.sandbox_api.sandbox.chain
    no_trustline = chain.new_keypair().public_key
    chain.friendbot(no_trustline)
    cases = [
        (no_trustline, "no_trustline"),
        (chain.new_keypair().public_key, "account_not_found"),
        (market.public_keys[user], "own_wallet"),
        ("G" + "A" * 55, "invalid_address"),
        ("not-an-address", "invalid_address"),
    ]
    for destination, reason in cases:
        refused = await market.post(WD, _crypto(user, "1", destination))
        assert (refused.status_code, code(refused)) == (422, "WITHDRAWAL_DESTINATION_INVALID")
        assert refused.json()["error"]["details"]["reason"] == reason, destination
    good = chain.activate().public_key
    poor = await market.post(WD, _crypto(user, "10.0000001", good))
    assert (poor.status_code, code(poor)) == (422, "INSUFFICIENT_FUNDS")
    details = poor.json()["error"]["details"]
    assert (details["available"], details["requested"]) == ("10.00", "10.0000001")
    assert await market.balance(user) == {
        "available": "10.00",
        "reserved": "0.00",
        "total": "10.00",
    }
    assert (await market.get(WD)).json()["data"] == []

    chain.set_memo_required(good)
    memo_needed = await market.post(WD, _crypto(user, "1", good))
    assert (memo_needed.status_code, code(memo_needed)) == (400, "VALIDATION_ERROR")
    missing = await market.post(WD, _crypto(user, "1", good, user_id="usr_" + "0" * 32))
    assert (missing.status_code, code(missing)) == (404, "USER_NOT_FOUND")

    await market.pool.execute("UPDATE wallets SET is_active = false WHERE user_id = $1", user)
    not_ready = await market.post(WD, _crypto(user, "1", good, memo="m"))
    assert (not_ready.status_code, code(not_ready)) == (422, "WALLET_NOT_READY")


async def test_other_marketplaces_see_nothing(market: Market) -> None:
    user = await _funded_user(market, "5")
    destination = market.sandbox_api.sandbox.chain.activate().public_key
    created = await market.post(WD, _crypto(user, "2", destination))
    assert created.status_code == 201, created.text
    withdrawal_id = created.json()["id"]
    _, other = await market.api.tenant(["*"])
    path = f"/api/v1{WD}/{withdrawal_id}"
    assert code(await market.api.get(path, other)) == "WITHDRAWAL_NOT_FOUND"
    for action in ("refresh", "cancel", "commit"):
        response = await market.api.post(f"{path}/{action}", other)
        assert (response.status_code, code(response)) == (404, "WITHDRAWAL_NOT_FOUND"), action
    assert (await market.api.get(f"/api/v1{WD}", other)).json()["data"] == []
    stolen = await market.api.post(f"/api/v1{WD}", other, _crypto(user, "1", destination))
    assert (stolen.status_code, code(stolen)) == (404, "USER_NOT_FOUND")
    assert stolen.json()["error"]["details"]["field"] == "user_id"
    for wrong in ("ord_" + "0" * 32, "wd_short", "x" * 300):
        response = await market.get(f"{WD}/{wrong}")
        assert (response.status_code, code(response)) == (404, "WITHDRAWAL_NOT_FOUND")
        action = await market.post(f"{WD}/{wrong}/refresh")
        assert (action.status_code, code(action)) == (404, "WITHDRAWAL_NOT_FOUND")
    assert await market.balance(user) == {"available": "3.00", "reserved": "0.00", "total": "3.00"}


BAD_BODIES: list[tuple[Any, str]] = [
    ({"user_id": "u", "amount": "-1", "destination_type": "crypto"}, "INVALID_AMOUNT_FORMAT"),
    ({"user_id": "u", "amount": "1e5", "destination_type": "crypto"}, "INVALID_AMOUNT_FORMAT"),
    ({"user_id": "u", "amount": 1.5, "destination_type": "crypto"}, "INVALID_AMOUNT_FORMAT"),
    (
        {"user_id": "u", "amount": "0.00000001", "destination_type": "crypto"},
        "INVALID_AMOUNT_FORMAT",
    ),
    ({"user_id": "u", "amount": "0", "destination_type": "crypto"}, "INVALID_AMOUNT"),
    ({"user_id": "u", "amount": "1", "destination_type": "bank"}, "VALIDATION_ERROR"),
    ({"user_id": "u", "amount": "1", "destination_type": "crypto", "x": 1}, "VALIDATION_ERROR"),
    (
        {"user_id": "u", "amount": "1", "destination_type": "crypto", "currency": "EUR"},
        "INVALID_CURRENCY",
    ),
    (
        {"user_id": "u", "amount": "1", "destination_type": "crypto", "commit": "yes"},
        "VALIDATION_ERROR",
    ),
    (
        {"user_id": "u", "amount": "1", "destination_type": "crypto", "memo": "m" * 29},
        "VALIDATION_ERROR",
    ),
    ({"amount": "1", "destination_type": "crypto"}, "VALIDATION_ERROR"),
    ({"user_id": 7, "amount": "1", "destination_type": "crypto"}, "VALIDATION_ERROR"),
    ([1, 2], "VALIDATION_ERROR"),
]


async def test_bad_inputs_are_400_never_500(db_dsn: str) -> None:
    async with running_api(db_dsn) as api:
        _, key = await api.tenant(["*"])
        for body, expected in BAD_BODIES:
            response = await api.post(f"/api/v1{WD}", key, body)
            assert (response.status_code, code(response)) == (400, expected), body
        malformed = await api.client.post(
            f"/api/v1{WD}",
            content=b'{"user_id": ',
            headers=api.auth(key, **{"Idempotency-Key": "k", "Content-Type": "application/json"}),
        )
        assert (malformed.status_code, code(malformed)) == (400, "VALIDATION_ERROR")
        no_key = await api.client.post(f"/api/v1{WD}", json={}, headers=api.auth(key))
        assert code(no_key) == "VALIDATION_ERROR"
        for params in (
            {"status": "DONE"},
            {"status": "WITHDRAWAL_CREATED,"},
            {"destination_type": "bank"},
            {"created_after": "2026-01-01"},
            {"limit": "0"},
            {"colour": "red"},
            {"cursor": "c_bogus"},
        ):
            listed = await api.get(f"/api/v1{WD}", key, **params)
            assert (listed.status_code, code(listed)) == (400, "VALIDATION_ERROR"), params
        cancel = await api.post(f"/api/v1{WD}/wd_x/cancel", key, {"reason": "r" * 501})
        assert (cancel.status_code, code(cancel)) == (400, "VALIDATION_ERROR")
        # Without providers the API refuses before writing anything.
        body = {"user_id": "u", "amount": "1", "destination_type": "airtm_balance"}
        unavailable = await api.post(f"/api/v1{WD}", key, body)
        assert (unavailable.status_code, code(unavailable)) == (503, "PROVIDER_UNAVAILABLE")
        read_only = await api.new_key((await api.tenant())[0], ["read"])
        denied = await api.post(f"/api/v1{WD}", read_only, body)
        assert (denied.status_code, code(denied)) == (403, "INSUFFICIENT_SCOPE")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    amount=st.one_of(
        st.text(max_size=20),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.none(),
        st.from_regex(r"-?[0-9]{1,14}(\.[0-9]{0,9})?(e[0-9])?", fullmatch=True),
    )
)
async def test_any_amount_is_refused_cleanly(api: Api, amount: Any) -> None:
    """Whatever the amount, the answer is a 400 (or 503: valid, but no provider here)."""
    _, key = await api.tenant(["write"])
    body = {"user_id": "u", "amount": amount, "destination_type": "crypto"}
    response = await api.post(f"/api/v1{WD}", key, body)
    assert response.status_code in (400, 503), response.text


async def test_a_payment_whose_answer_was_lost_is_202_then_settled_by_refresh(
    db_dsn: str, pool: asyncpg.Pool
) -> None:
    async with running_api_on_sandbox(db_dsn, wait_s=0.3) as api:
        market = await new_market(api, pool)
        user = await _funded_user(market, "20")
        destination = api.sandbox.chain.activate().public_key
        api.sandbox.faults.add("horizon", "POST", "/transactions", "applied_response_lost")
        # The operation's own lookup fails once too: it retries after a backoff (>= 0.5 s).
        api.sandbox.faults.add("horizon", "GET", "/transactions/", "status:503")
        created = await market.post(WD, _crypto(user, "4", destination))
        assert created.status_code == 202, created.text
        withdrawal = created.json()
        assert created.headers["location"] == f"/api/v1{WD}/{withdrawal['id']}"
        assert withdrawal["status"] == "WITHDRAWAL_COMMITTED"
        assert market.usdc(destination) == 4 * USDC  # it did land
        refreshed = await market.post(f"{WD}/{withdrawal['id']}/refresh")
        assert refreshed.status_code == 200
        assert refreshed.json()["status"] == "WITHDRAWAL_COMPLETED"
        assert len(refreshed.json()["transaction_hash"]) == 64
        # The payment operation then settles the same hash: nothing is posted twice.
        assert await _operation_end(pool, withdrawal["id"]) == "SUCCEEDED"
        after = (await market.get(f"{WD}/{withdrawal['id']}")).json()
        assert after == refreshed.json()
        assert await market.balance(user) == {
            "available": "16.00",
            "reserved": "0.00",
            "total": "16.00",
        }
        assert await market.posted(f"user:{user}") == 16 * USDC
        assert market.usdc(market.public_keys[user]) == 16 * USDC


async def _operation_end(pool: asyncpg.Pool, withdrawal_id: str, timeout_s: float = 10) -> str:
    """Wait for the withdrawal's operation to end; its final status."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        status = await pool.fetchval(
            "SELECT status::text FROM operations WHERE resource_id = $1", withdrawal_id
        )
        if status != "RUNNING":
            return str(status)
        assert loop.time() < deadline, "the operation did not end"
        await asyncio.sleep(0.1)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cents=st.lists(st.integers(1, 1_500), min_size=1, max_size=4))
async def test_wallet_and_ledger_drop_together(market: Market, cents: list[int]) -> None:
    """Each withdrawal completes or is refused whole; the wallet always equals the ledger."""
    user = await _funded_user(market, "20")
    wallet = market.public_keys[user]
    destination = market.sandbox_api.sandbox.chain.activate().public_key
    left = 20 * USDC
    for amount in cents:
        minor = amount * USDC // 100
        response = await market.post(WD, _crypto(user, format_amount(minor), destination))
        if minor <= left:
            assert response.status_code == 201, response.text
            assert response.json()["status"] == "WITHDRAWAL_COMPLETED"
            left -= minor
        else:
            assert (response.status_code, code(response)) == (422, "INSUFFICIENT_FUNDS")
        assert market.usdc(wallet) == left
        assert await market.posted(f"user:{user}") == left
    assert market.usdc(destination) == 20 * USDC - left
    assert await market.zero_sum_violations() == 0


LOSE_REPLY = """
UPDATE idempotency_keys
SET status = 'IN_FLIGHT', claim = 'dead-request', locked_until = now() - interval '1 second',
    effect_committed = true, response_status = NULL, response_body = NULL,
    response_location = NULL, completed_at = NULL
WHERE key = $1
"""


async def test_a_takeover_answers_from_the_committed_withdrawal(market: Market) -> None:
    """A request that died after its effect: the retry finds that withdrawal, pays nothing."""
    user = await _funded_user(market, "10")
    destination = market.sandbox_api.sandbox.chain.activate().public_key
    body = _crypto(user, "4", destination)
    first = await market.api.post(f"/api/v1{WD}", market.key, body, idempotency_key="wd-dead")
    assert first.status_code == 201, first.text
    await market.pool.execute(LOSE_REPLY, "wd-dead")
    retry = await market.api.post(f"/api/v1{WD}", market.key, body, idempotency_key="wd-dead")
    assert retry.status_code == 201, retry.text
    assert "idempotency-replayed" not in retry.headers
    assert retry.json() == first.json()
    assert market.usdc(destination) == 4 * USDC
    assert [item["id"] for item in (await market.get(WD)).json()["data"]] == [first.json()["id"]]
    replay = await market.api.post(f"/api/v1{WD}", market.key, body, idempotency_key="wd-dead")
    assert replay.headers["idempotency-replayed"] == "true"
