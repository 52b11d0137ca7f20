"""Escrow, funding, milestones, release and refund over HTTP on the sandbox (api.md 1.9, 3.5).

The app runs its background operation runner against an in-process sandbox; a request waits
(bounded) for its operation: 200/201 when it ended, 202 while it runs, the api.md error when it
FAILED (after the compensation of section 5).
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from tests.api.support import running_api_on_sandbox
from tests.api.test_orders_support import USDC, Market, code, new_market

pytestmark = pytest.mark.db

TW = "trustless_work"
DEPLOY = "/deployer/single-release"
MILESTONES = [
    {"milestone_ref": "m1", "title": "Sketches", "amount": "20"},
    {"milestone_ref": "m2", "title": "Final", "amount": "30"},
]


@pytest.fixture
async def market(db_dsn: str, pool: asyncpg.Pool) -> AsyncIterator[Market]:
    async with running_api_on_sandbox(db_dsn) as api:
        yield await new_market(api, pool)


async def _until(market: Market, order_id: str, status: str, timeout_s: float = 15.0) -> Any:
    """Poll GET until the order reaches ``status``; the order."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        order = (await market.get(f"/orders/{order_id}")).json()
        if order["status"] == status:
            return order
        assert loop.time() < deadline, f"order stayed {order['status']}"
        await asyncio.sleep(0.1)


async def _escrow(market: Market, order_id: str, seller: str) -> str:
    """Refusals before and around the deploy, then the deploy (201); the contract id."""
    path = f"/orders/{order_id}"
    early = await market.post(f"{path}/escrow")
    assert (early.status_code, code(early)) == (409, "INVALID_STATE")
    assert early.json()["error"]["details"]["current_state"] == "ORDER_CREATED"
    unfunded = await market.post(f"{path}/escrow/fund")
    assert (unfunded.status_code, code(unfunded)) == (404, "ESCROW_NOT_FOUND")
    premature = await market.post(f"{path}/resolution/release")
    assert (premature.status_code, code(premature)) == (409, "INVALID_STATE")
    await market.step(f"{path}/reserve")
    await market.pool.execute("UPDATE wallets SET is_active = false WHERE user_id = $1", seller)
    not_ready = await market.post(f"{path}/escrow")
    assert (not_ready.status_code, code(not_ready)) == (422, "WALLET_NOT_READY")
    await market.pool.execute("UPDATE wallets SET is_active = true WHERE user_id = $1", seller)
    with_body = await market.post(f"{path}/escrow", {"contract": "C"})
    assert (with_body.status_code, code(with_body)) == (400, "VALIDATION_ERROR")

    created = await market.post(f"{path}/escrow")
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/api/v1{path}"
    order = created.json()
    escrow = order["escrow"]
    assert (order["status"], escrow["status"]) == ("ESCROW_FUNDING", "CREATED")
    assert escrow["trustless_contract_id"].startswith("C")
    assert (escrow["amount"], escrow["platform_fee_bps"], escrow["trustless_work_fee_bps"]) == (
        "50.00",
        500,
        30,
    )
    assert (escrow["payouts"], escrow["funded_at"], escrow["funding_transaction_hash"]) == (
        [],
        None,
        None,
    )
    operation = order["operation"]
    assert (operation["kind"], operation["status"], operation["last_error"]) == (
        "ESCROW_CREATE",
        "SUCCEEDED",
        None,
    )
    for action, error in [("escrow", "ESCROW_ALREADY_EXISTS"), ("cancel", "INVALID_STATE")]:
        refused = await market.post(f"{path}/{action}")
        assert (refused.status_code, code(refused)) == (409, error)
    too_soon = await market.post(f"{path}/milestones/m1/complete")
    assert (too_soon.status_code, code(too_soon)) == (409, "INVALID_STATE")
    return str(escrow["trustless_contract_id"])


async def _fund_and_complete(market: Market, order_id: str, buyer: str, contract: str) -> None:
    """Fund (200 IN_PROGRESS), refuse an early release, complete both milestones."""
    path = f"/orders/{order_id}"
    funded = await market.step(f"{path}/escrow/fund")
    assert (funded["status"], funded["escrow"]["status"]) == ("IN_PROGRESS", "FUNDED")
    assert funded["escrow"]["funded_at"] is not None
    assert len(funded["escrow"]["funding_transaction_hash"]) == 64
    assert funded["operation"]["kind"] == "ESCROW_FUND"
    assert (market.usdc(contract), market.usdc(market.public_keys[buyer])) == (50 * USDC, 50 * USDC)
    again = await market.post(f"{path}/escrow/fund")
    assert (again.status_code, code(again)) == (409, "ESCROW_ALREADY_FUNDED")
    open_ms = await market.post(f"{path}/resolution/release")
    assert (open_ms.status_code, code(open_ms)) == (409, "INVALID_STATE")
    assert open_ms.json()["error"]["details"]["open_milestones"] == ["m1", "m2"]
    done = await market.step(f"{path}/milestones/m1/complete")
    assert (done["milestone_ref"], done["status"], done["amount"]) == ("m1", "COMPLETED", "20.00")
    assert done["completed_at"] is not None
    twice = await market.post(f"{path}/milestones/m1/complete")
    assert (twice.status_code, code(twice)) == (409, "INVALID_STATE")
    missing = await market.post(f"{path}/milestones/m3/complete")
    assert (missing.status_code, code(missing)) == (404, "MILESTONE_NOT_FOUND")
    await market.step(f"{path}/milestones/m2/complete")
    listed = (await market.get(f"{path}/milestones")).json()["data"]
    assert [item["status"] for item in listed] == ["COMPLETED", "COMPLETED"]


async def _release(market: Market, order_id: str, seller: str) -> None:
    """Release through the alias; a replay through the canonical path is the same request."""
    path = f"/orders/{order_id}"
    for body in ({}, {"reason": ""}, {"reason": 5}):
        bad = await market.post(f"{path}/resolution/refund", body)
        assert (bad.status_code, code(bad)) == (400, "VALIDATION_ERROR"), body
    key = str(uuid.uuid4())
    released = await market.api.post(f"/api/v1{path}/release", market.key, {"reason": "ok"}, key)
    assert released.status_code == 200, released.text
    closed = released.json()
    assert (closed["status"], closed["close_reason"]) == ("CLOSED", "RELEASED")
    [payout] = closed["escrow"]["payouts"]
    assert payout == {
        "party": "SELLER",
        "user_id": seller,
        "gross_amount": "50.00",
        "platform_fee": "2.50",
        "trustless_work_fee": "0.15",
        "net_amount": "47.35",
        "transaction_hash": payout["transaction_hash"],
    }
    assert closed["escrow"]["status"] == "RELEASED"
    assert closed["escrow"]["released_at"] is not None
    replay = await market.api.post(
        f"/api/v1{path}/resolution/release", market.key, {"reason": "ok"}, key
    )
    assert (replay.content, replay.headers["idempotency-replayed"]) == (released.content, "true")
    late = await market.post(f"{path}/resolution/release")
    assert (late.status_code, code(late)) == (409, "INVALID_STATE")
    assert market.usdc(market.public_keys[seller]) == 473_500_000
    assert (await market.balance(seller))["available"] == "47.35"


async def test_escrow_fund_milestones_release_and_refund(market: Market) -> None:
    buyer, seller = await market.parties(deposit=("100", 100 * USDC))
    order_id = (await market.order(buyer, seller, "50", milestones=MILESTONES))["id"]
    contract = await _escrow(market, order_id, seller)
    await _fund_and_complete(market, order_id, buyer, contract)
    await _release(market, order_id, seller)
    other = await market.in_progress(buyer, seller, "10")
    refunded = await market.step(f"/orders/{other}/refund", {"reason": "no show"})
    assert (refunded["status"], refunded["close_reason"]) == ("CLOSED", "REFUNDED")
    assert refunded["escrow"]["payouts"][0]["party"] == "BUYER"
    assert refunded["escrow"]["payouts"][0]["net_amount"] == "9.47"
    assert refunded["escrow"]["refunded_at"] is not None
    assert refunded["dispute_id"] is None
    assert await market.zero_sum_violations() == 0


async def test_actions_answer_202_while_their_operation_retries(
    db_dsn: str, pool: asyncpg.Pool
) -> None:
    async with running_api_on_sandbox(db_dsn, wait_s=0.3) as api:
        market = await new_market(api, pool)
        faults = api.sandbox.faults
        buyer, seller = await market.parties(deposit=("30", 30 * USDC))
        order = await market.order(buyer, seller, "30")
        path = f"/orders/{order['id']}"
        await market.step(f"{path}/reserve")

        faults.add(TW, "POST", DEPLOY, "status:503")
        key = str(uuid.uuid4())
        pending = await api.post(f"/api/v1{path}/escrow", market.key, None, key)
        assert pending.status_code == 202, pending.text
        assert pending.headers["location"] == f"/api/v1{path}"
        body = pending.json()
        assert (body["status"], body["escrow"]["status"]) == ("ESCROW_CREATING", "CREATING")
        assert (body["operation"]["kind"], body["operation"]["status"]) == (
            "ESCROW_CREATE",
            "RUNNING",
        )
        replay = await api.post(f"/api/v1{path}/escrow", market.key, None, key)
        assert (replay.status_code, replay.content) == (202, pending.content)
        assert replay.headers["idempotency-replayed"] == "true"
        await _until(market, order["id"], "ESCROW_FUNDING")

        faults.add(TW, "POST", "/escrow/single-release/fund-escrow", "status:503")
        funding = await market.post(f"{path}/escrow/fund")
        assert funding.status_code == 202, funding.text
        assert (funding.json()["status"], funding.json()["escrow"]["status"]) == (
            "ESCROW_FUNDING",
            "FUNDING",
        )
        await _until(market, order["id"], "IN_PROGRESS")

        faults.add(TW, "POST", "/escrow/single-release/release-funds", "status:503")
        releasing = await market.post(f"{path}/resolution/release")
        assert releasing.status_code == 202, releasing.text
        assert releasing.json()["status"] == "RELEASE_REQUESTED"
        assert releasing.headers["location"] == f"/api/v1{path}"
        running = await market.post(f"{path}/resolution/release")
        assert (running.status_code, code(running)) == (409, "INVALID_STATE")
        closed = await _until(market, order["id"], "CLOSED")
        assert closed["close_reason"] == "RELEASED"
        assert await market.zero_sum_violations() == 0


async def test_a_failed_operation_answers_its_error_after_the_compensation(
    market: Market,
) -> None:
    buyer, seller = await market.parties()
    # The ledger says 25, the wallet holds 10: the contract refuses the funding.
    await market.credit(buyer, "25")
    market.sandbox_api.sandbox.chain.mint(market.public_keys[buyer], 10 * USDC)
    order = await market.order(buyer, seller, "25")
    path = f"/orders/{order['id']}"
    await market.step(f"{path}/reserve")

    market.sandbox_api.sandbox.faults.add(TW, "POST", DEPLOY, "status:400")
    key = str(uuid.uuid4())
    failed = await market.api.post(f"/api/v1{path}/escrow", market.key, None, key)
    assert (failed.status_code, code(failed)) == (502, "PROVIDER_ERROR"), failed.text
    details = failed.json()["error"]["details"]
    assert details["operation_id"].startswith("op_")
    assert (details["provider"], details["provider_status"]) == ("trustless_work", 400)
    assert "provider_message" in details
    after = (await market.get(path)).json()
    assert (after["status"], after["escrow"]["status"]) == ("FUNDS_RESERVED", "FAILED")
    assert (after["operation"]["status"], after["operation"]["last_error"]["code"]) == (
        "FAILED",
        "PROVIDER_ERROR",
    )
    assert await market.balance(buyer) == {
        "available": "0.00",
        "reserved": "25.00",
        "total": "25.00",
    }
    # A 502 is not stored: the same key runs again, and a new escrow is deployed.
    retried = await market.api.post(f"/api/v1{path}/escrow", market.key, None, key)
    assert retried.status_code == 201, retried.text
    assert retried.json()["escrow"]["id"] != after["escrow"]["id"]

    fund_key = str(uuid.uuid4())
    short = await market.api.post(f"/api/v1{path}/escrow/fund", market.key, None, fund_key)
    assert (short.status_code, code(short)) == (422, "ESCROW_INSUFFICIENT_FUNDS"), short.text
    assert short.json()["error"]["details"]["operation_id"].startswith("op_")
    stored = await market.api.post(f"/api/v1{path}/escrow/fund", market.key, None, fund_key)
    assert (stored.status_code, stored.content) == (422, short.content)
    assert stored.headers["idempotency-replayed"] == "true"
    kept = (await market.get(path)).json()
    assert (kept["status"], kept["escrow"]["status"]) == ("ESCROW_FUNDING", "CREATED")
    assert (await market.balance(buyer))["reserved"] == "25.00"

    market.sandbox_api.sandbox.chain.mint(market.public_keys[buyer], 15 * USDC)
    funded = await market.step(f"{path}/escrow/fund")
    assert funded["status"] == "IN_PROGRESS"
    assert await market.balance(buyer) == {"available": "0.00", "reserved": "0.00", "total": "0.00"}
    assert await market.zero_sum_violations() == 0
