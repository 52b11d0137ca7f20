"""Wallets over HTTP (api.md 3.3): live balance, deposit instructions, on-chain transactions.

Everything runs on the real app with its sandbox runtime: Horizon answers over HTTP, faults
are injected into the sandbox's Horizon, and USDC is put on wallets by minting on its chain.
"""

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from common.ids import new_id
from flows.queries import users as user_queries
from tests.api.support import SandboxApi, running_api, running_api_on_sandbox
from tests.api.test_users import USERS, wait_for_active_wallet

pytestmark = pytest.mark.db

USDC = 10_000_000  # minor units of 1 USDC


@pytest.fixture
async def sandbox_api(db_dsn: str) -> AsyncIterator[SandboxApi]:
    """The app with its sandbox runtime and background runner."""
    async with running_api_on_sandbox(db_dsn) as running:
        yield running


async def _active_user(api: SandboxApi, key: str, external_id: str) -> dict[str, Any]:
    user = (await api.post(USERS, key, {"external_user_id": external_id})).json()
    await wait_for_active_wallet(api, key, user["id"])
    return dict(user)


async def test_balance_deposit_and_transactions_follow_the_chain(sandbox_api: SandboxApi) -> None:
    api = sandbox_api
    _, key = await api.tenant(["write", "read", "admin"])
    user = await _active_user(api, key, "holder")
    base = f"{USERS}/{user['id']}/wallet"
    address = user["wallet"]["public_key"]
    wallet = (await api.get(base, key)).json()
    assert wallet["balance"] == {"usdc": "0.00", "xlm": wallet["balance"]["xlm"]}
    assert wallet["balance_error"] is None
    assert (wallet["type"], wallet["provider"], wallet["is_primary"]) == (
        "INVISIBLE",
        "STELLAR",
        True,
    )

    first = api.sandbox.chain.mint(address, 12 * USDC + USDC // 2)
    api.sandbox.chain.mint(address, 3 * USDC)
    live = (await api.get(base, key)).json()
    assert live["balance"]["usdc"] == "15.50"

    config = (await api.get("/api/v1/config", key)).json()
    deposit = (await api.get(f"{base}/deposit", key)).json()
    assert deposit["user_id"] == user["id"]
    assert (deposit["provider"], deposit["method"], deposit["memo"]) == (
        "crypto",
        "stellar_address",
        None,
    )
    assert deposit["address"] == address
    assert deposit["network"] == config["network"]
    assert deposit["asset"] == {"code": "USDC", "issuer": config["asset"]["issuer"]}
    assert address in deposit["instructions"]

    listed = await api.get(f"{base}/transactions", key)
    assert listed.status_code == 200, listed.text
    moves = listed.json()["data"]
    usdc_asset = f"USDC:{config['asset']['issuer']}"
    assert [(m["type"], m["direction"], m["amount"], m["asset"]) for m in moves] == [
        ("payment", "IN", "3.00", usdc_asset),
        ("payment", "IN", "12.50", usdc_asset),
        ("create_account", "IN", moves[2]["amount"], "XLM"),
    ]
    assert all(m["to"] == address and m["successful"] for m in moves)
    assert all(m["created_at"].endswith("Z") and m["transfer_id"] is None for m in moves)
    assert listed.json()["pagination"] == {"has_more": False, "next_cursor": None}

    # A ledger transfer booked with the tx hash as its reference is matched to the movement.
    adjustment = await api.post(
        f"{USERS}/{user['id']}/balance/adjustments",
        key,
        {
            "direction": "CREDIT",
            "amount": "12.5",
            "reason": "manual deposit booking",
            "reference": first.hash,
            "counter_account": "external:stellar",
        },
    )
    assert adjustment.status_code == 201, adjustment.text
    matched = (await api.get(f"{base}/transactions", key)).json()["data"]
    assert [m["transfer_id"] for m in matched] == [None, adjustment.json()["id"], None]
    assert matched[1]["transaction_hash"] == first.hash

    # Paging one by one walks the same list; a cursor is bound to its user's path.
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = (await api.get(f"{base}/transactions", key, **params)).json()
        seen += [m["id"] for m in page["data"]]
        cursor = page["pagination"]["next_cursor"]
        if cursor is None:
            break
    assert seen == [m["id"] for m in moves]
    other = await _active_user(api, key, "other")
    first_page = (await api.get(f"{base}/transactions", key, limit=1)).json()
    foreign = await api.get(
        f"{USERS}/{other['id']}/wallet/transactions",
        key,
        cursor=first_page["pagination"]["next_cursor"],
    )
    assert foreign.status_code == 400
    assert foreign.json()["error"]["details"]["fields"][0]["field"] == "query.cursor"
    for params in ({"cursor": "c_nope"}, {"cursor": "garbage"}, {"limit": 0}, {"x": "1"}):
        bad = await api.get(f"{base}/transactions", key, **params)
        assert bad.status_code == 400, params
        assert bad.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_horizon_failures_degrade_the_wallet_and_fail_the_listing(
    sandbox_api: SandboxApi,
) -> None:
    api = sandbox_api
    _, key = await api.tenant(["write", "read"])
    user = await _active_user(api, key, "unlucky")
    base = f"{USERS}/{user['id']}/wallet"

    api.sandbox.faults.add("horizon", "GET", "/accounts/", "status:503")
    degraded = await api.get(base, key)
    assert degraded.status_code == 200
    assert degraded.json()["balance"] is None
    assert degraded.json()["balance_error"].startswith("STELLAR_NETWORK_ERROR")
    assert degraded.json()["is_active"] is True

    api.sandbox.faults.add("horizon", "GET", "/accounts/", "status:503")
    failed = await api.get(f"{base}/transactions", key)
    assert failed.status_code == 502
    error = failed.json()["error"]
    assert error["code"] == "STELLAR_NETWORK_ERROR"
    assert error["details"]["provider"] == "stellar"
    assert error["details"]["provider_status"] == 503

    api.sandbox.faults.add("horizon", "GET", "/accounts/", "status:429:7")
    limited = await api.get(f"{base}/transactions", key)
    assert limited.status_code == 502
    assert limited.json()["error"]["code"] == "PROVIDER_RATE_LIMITED"
    assert limited.headers["retry-after"] == "7"

    api.sandbox.faults.add("horizon", "GET", "/accounts/", "status:400")
    refused = await api.get(f"{base}/transactions", key)
    assert refused.status_code == 502
    assert refused.json()["error"]["code"] == "PROVIDER_ERROR"
    assert refused.json()["error"]["details"]["provider_status"] == 400

    # Once Horizon recovers, so does the answer.
    assert (await api.get(base, key)).json()["balance"] is not None
    assert (await api.get(f"{base}/transactions", key)).status_code == 200


async def test_a_wallet_still_activating_shows_zero_and_no_movements(
    sandbox_api: SandboxApi,
) -> None:
    api = sandbox_api
    _, key = await api.tenant(["write", "read"])
    # Every activation submission fails for a while: the wallet stays inactive.
    api.sandbox.faults.add("horizon", "POST", "/transactions", "status:503", count=1000)
    user = (await api.post(USERS, key, {"external_user_id": "pending"})).json()
    wallet = (await api.get(f"{USERS}/{user['id']}/wallet", key)).json()
    assert (wallet["is_active"], wallet["funded"], wallet["trustline_ready"]) == (
        False,
        False,
        False,
    )
    assert wallet["balance"] == {"usdc": "0.00", "xlm": "0.00"}
    listed = await api.get(f"{USERS}/{user['id']}/wallet/transactions", key)
    assert listed.json() == {"data": [], "pagination": {"has_more": False, "next_cursor": None}}
    api.sandbox.faults.clear()


async def test_a_user_without_wallet_gets_wallet_not_found(db_dsn: str) -> None:
    async with running_api(db_dsn) as api:
        marketplace_id, key = await api.tenant(["read"])
        conn = await asyncpg.connect(db_dsn)
        try:
            # A user row whose wallet was never opened (only possible outside POST /users).
            user = await user_queries.insert_user(
                conn,
                marketplace_id=marketplace_id,
                user_id=new_id("usr_"),
                external_user_id="walletless",
                email=None,
                type="BOTH",
                metadata=None,
            )
        finally:
            await conn.close()
        assert user is not None
        for suffix in ("/wallet", "/wallet/deposit", "/wallet/transactions"):
            answer = await api.get(f"{USERS}/{user.id}{suffix}", key)
            assert answer.status_code == 404, suffix
            assert answer.json()["error"]["code"] == "WALLET_NOT_FOUND"
        fetched = await api.get(f"{USERS}/{user.id}", key)
        assert fetched.json()["wallet"] is None
