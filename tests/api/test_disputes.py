"""Disputes over HTTP on the sandbox: open, assign, resolve, list; tenancy of every endpoint."""

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
RESOLVE = "/escrow/single-release/resolve-dispute"
FLAG = "/escrow/single-release/dispute-escrow"


@pytest.fixture
async def market(db_dsn: str, pool: asyncpg.Pool) -> AsyncIterator[Market]:
    async with running_api_on_sandbox(db_dsn) as api:
        yield await new_market(api, pool)


async def _open(market: Market, order_id: str, **fields: Any) -> dict[str, Any]:
    body = {"opened_by": "BUYER", "reason": "QUALITY_ISSUE", **fields}
    return await market.step(f"/orders/{order_id}/resolution/dispute", body, status=201)


BAD_OPENINGS = [
    ({"opened_by": "ADMIN", "reason": "OTHER"}, "opened_by"),
    ({"opened_by": "BUYER"}, "reason"),
    ({"opened_by": "BUYER", "reason": "OTHER", "evidence": ["x"] * 21}, "evidence"),
    ({"opened_by": "BUYER", "reason": "OTHER", "evidence": [""]}, "evidence[0]"),
    ({"opened_by": "BUYER", "reason": "OTHER", "description": "d" * 2001}, "description"),
]
BAD_RESOLUTIONS = [
    ({"decision": "FULL_RELEASE", "release_amount": "40"}, "INVALID_REQUEST"),
    ({"decision": "SPLIT", "release_amount": "30", "refund_amount": "5"}, "INVALID_AMOUNT"),
    ({"decision": "SPLIT", "release_amount": "40"}, "INVALID_AMOUNT"),
    ({"decision": "SPLIT", "release_amount": "-1", "refund_amount": "41"}, "INVALID_AMOUNT_FORMAT"),
    ({"decision": "SPLIT", "release_amount": 20, "refund_amount": "20"}, "INVALID_AMOUNT_FORMAT"),
    ({"decision": "HALF"}, "VALIDATION_ERROR"),
    ({"decision": "FULL_REFUND", "note": "n" * 2001}, "VALIDATION_ERROR"),
    ({}, "VALIDATION_ERROR"),
]


async def _open_on(market: Market, order_id: str) -> dict[str, Any]:
    """Refuse bad openings, open through the alias, check the frozen order; the dispute."""
    path = f"/orders/{order_id}"
    for body, field in BAD_OPENINGS:
        bad = await market.post(f"{path}/resolution/dispute", body)
        assert (bad.status_code, code(bad)) == (400, "VALIDATION_ERROR"), body
        assert bad.json()["error"]["details"]["fields"][0]["field"] == field
    evidence = ["photo-1", "chat log"]
    opened = await market.post(
        f"{path}/disputes",
        {"opened_by": "BUYER", "reason": "QUALITY_ISSUE", "evidence": evidence, "description": "x"},
    )
    assert opened.status_code == 201, opened.text
    dispute = dict(opened.json())
    assert opened.headers["location"] == f"/api/v1/disputes/{dispute['id']}"
    assert dispute["id"].startswith("dsp_")
    assert (dispute["status"], dispute["opened_by"], dispute["order_id"]) == (
        "OPEN",
        "BUYER",
        order_id,
    )
    assert (dispute["evidence"], dispute["description"]) == (evidence, "x")
    for field in ("assigned_to", "resolution_decision", "release_amount", "resolved_at"):
        assert dispute[field] is None
    order = (await market.get(path)).json()
    assert (order["status"], order["escrow"]["status"], order["dispute_id"]) == (
        "DISPUTED",
        "DISPUTED",
        dispute["id"],
    )
    for action, body in [
        ("resolution/dispute", {"opened_by": "SELLER", "reason": "OTHER"}),
        ("resolution/release", None),
        ("resolution/refund", {"reason": "r"}),
    ]:
        refused = await market.post(f"{path}/{action}", body)
        assert (refused.status_code, code(refused)) == (409, "DISPUTE_ALREADY_OPEN"), action
    return dispute


async def _assign_and_refund(market: Market, dispute: dict[str, Any]) -> dict[str, Any]:
    """Scopes, assignment, refused decisions, then FULL_REFUND; the resolved dispute."""
    support = await market.api.new_key(market.marketplace_id, ["support"])
    writer = await market.api.new_key(market.marketplace_id, ["write"])
    path = f"/disputes/{dispute['id']}"
    early = await market.post(f"{path}/resolve", {"decision": "FULL_REFUND"}, support)
    assert (early.status_code, code(early)) == (409, "INVALID_STATE")
    denied = await market.post(f"{path}/assign", {"assigned_to": "ana"}, writer)
    assert (denied.status_code, code(denied)) == (403, "INSUFFICIENT_SCOPE")
    assigned = await market.step(f"{path}/assign", {"assigned_to": "ana"})
    assert (assigned["status"], assigned["assigned_to"]) == ("UNDER_REVIEW", "ana")
    reassigned = await market.post(f"{path}/assign", {"assigned_to": "bo"}, support)
    assert reassigned.json()["assigned_to"] == "bo"
    for body, error in BAD_RESOLUTIONS:
        bad = await market.post(f"{path}/resolve", body, support)
        assert (bad.status_code, code(bad)) == (400, error), body
    mismatch = await market.post(f"{path}/resolve", BAD_RESOLUTIONS[1][0], support)
    assert mismatch.json()["error"]["details"] == {"escrow_amount": "40.00", "total": "35.00"}
    resolved = await market.post(
        f"{path}/resolve", {"decision": "FULL_REFUND", "note": "agreed"}, support
    )
    assert resolved.status_code == 200, resolved.text
    body = dict(resolved.json())
    assert (body["status"], body["resolution_decision"]) == ("RESOLVED", "FULL_REFUND")
    assert (body["release_amount"], body["refund_amount"]) == ("0.00", "40.00")
    assert (body["decision_note"], body["resolved_at"] is not None) == ("agreed", True)
    assert body["resolved_by"].startswith("key_")
    closed = (await market.get(f"/orders/{dispute['order_id']}")).json()
    assert (closed["status"], closed["close_reason"]) == ("CLOSED", "REFUNDED")
    assert (await market.get(path)).json() == body
    for action, payload in [
        ("resolve", {"decision": "FULL_REFUND"}),
        ("assign", {"assigned_to": "x"}),
    ]:
        late = await market.post(f"{path}/{action}", payload)
        assert (late.status_code, code(late)) == (409, "INVALID_STATE"), action
    return body


async def _list(market: Market, resolved: dict[str, Any], open_: dict[str, Any]) -> None:
    """Filters, paging and their validation on GET /disputes."""

    async def ids(**params: Any) -> list[str]:
        response = await market.get("/disputes", **params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["data"]]

    assert await ids() == [open_["id"], resolved["id"]]
    assert await ids(order_id=resolved["order_id"]) == [resolved["id"]]
    assert await ids(status="OPEN") == [open_["id"]]
    assert await ids(status="RESOLVED,UNDER_REVIEW") == [resolved["id"]]
    assert await ids(opened_by="SELLER") == [open_["id"]]
    assert await ids(assigned_to="bo") == [resolved["id"]]
    assert await ids(created_after=open_["created_at"]) == [open_["id"]]
    assert await ids(created_before=open_["created_at"]) == [resolved["id"]]
    page = (await market.get("/disputes", limit=1)).json()
    assert page["pagination"]["has_more"] is True
    assert await ids(limit=1, cursor=page["pagination"]["next_cursor"]) == [resolved["id"]]
    for params in ({"status": "CLOSED"}, {"opened_by": "ADMIN"}, {"created_after": "2026-01-01"}):
        bad = await market.get("/disputes", **params)
        assert (bad.status_code, code(bad)) == (400, "VALIDATION_ERROR"), params
    unknown = await market.get(f"/disputes/dsp_{'0' * 32}")
    assert (unknown.status_code, code(unknown)) == (404, "DISPUTE_NOT_FOUND")


async def test_open_assign_resolve_and_list(market: Market) -> None:
    buyer, seller = await market.parties(deposit=("100", 100 * USDC))
    order_id = await market.in_progress(buyer, seller, "40")
    dispute = await _open_on(market, order_id)
    resolved = await _assign_and_refund(market, dispute)
    second_order = await market.in_progress(buyer, seller, "10")
    second = await _open(market, second_order, opened_by="SELLER", reason="NOT_DELIVERED")
    await _list(market, resolved, second)
    assert await market.zero_sum_violations() == 0


async def _dispute_status(market: Market, dispute_id: str, status: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        dispute = (await market.get(f"/disputes/{dispute_id}")).json()
        if dispute["status"] == status:
            return dict(dispute)
        assert loop.time() < deadline, f"dispute stayed {dispute['status']}"
        await asyncio.sleep(0.1)


async def test_a_resolution_answers_202_while_it_runs_and_resumes_after_failing(
    db_dsn: str, pool: asyncpg.Pool
) -> None:
    async with running_api_on_sandbox(db_dsn, wait_s=0.5) as api:
        market = await new_market(api, pool)
        buyer, seller = await market.parties(deposit=("50", 50 * USDC))
        first = await _open(market, await market.in_progress(buyer, seller, "20"))
        second = await _open(market, await market.in_progress(buyer, seller, "30"))
        split = {"decision": "SPLIT", "release_amount": "12", "refund_amount": "8"}

        await market.step(f"/disputes/{first['id']}/assign", {"assigned_to": "ana"})
        api.sandbox.faults.add(TW, "POST", RESOLVE, "status:503")
        pending = await market.post(f"/disputes/{first['id']}/resolve", split)
        assert pending.status_code == 202, pending.text
        assert pending.headers["location"] == f"/api/v1/disputes/{first['id']}"
        recorded = pending.json()
        assert (recorded["status"], recorded["resolution_decision"]) == ("UNDER_REVIEW", "SPLIT")
        assert (recorded["release_amount"], recorded["refund_amount"]) == ("12.00", "8.00")
        other = await market.post(f"/disputes/{first['id']}/resolve", {"decision": "FULL_REFUND"})
        assert (other.status_code, code(other)) == (409, "INVALID_STATE")
        running = await market.post(f"/disputes/{first['id']}/resolve", split)
        assert (running.status_code, code(running)) == (409, "INVALID_STATE")
        await _dispute_status(market, first["id"], "RESOLVED")
        order = (await market.get(f"/orders/{first['order_id']}")).json()
        assert (order["status"], order["close_reason"]) == ("CLOSED", "SPLIT")
        assert [p["party"] for p in order["escrow"]["payouts"]] == ["SELLER", "BUYER"]

        await market.step(f"/disputes/{second['id']}/assign", {"assigned_to": "ana"})
        api.sandbox.faults.add(TW, "POST", FLAG, "status:400")
        key = str(uuid.uuid4())
        release = {"decision": "FULL_RELEASE"}
        failed = await api.post(
            f"/api/v1/disputes/{second['id']}/resolve", market.key, release, key
        )
        assert (failed.status_code, code(failed)) == (502, "PROVIDER_ERROR"), failed.text
        assert failed.json()["error"]["details"]["operation_id"].startswith("op_")
        kept = (await market.get(f"/disputes/{second['id']}")).json()
        assert (kept["status"], kept["resolution_decision"]) == ("UNDER_REVIEW", "FULL_RELEASE")
        assert (await market.get(f"/orders/{second['order_id']}")).json()["status"] == "DISPUTED"
        changed = await market.post(
            f"/disputes/{second['id']}/resolve", {"decision": "FULL_REFUND"}
        )
        assert (changed.status_code, code(changed)) == (409, "INVALID_STATE")
        resumed = await api.post(
            f"/api/v1/disputes/{second['id']}/resolve", market.key, release, key
        )
        assert resumed.status_code in (200, 202), resumed.text
        await _dispute_status(market, second["id"], "RESOLVED")
        order = (await market.get(f"/orders/{second['order_id']}")).json()
        assert (order["status"], order["close_reason"]) == ("CLOSED", "RELEASED")
        assert await market.zero_sum_violations() == 0


async def test_another_marketplace_finds_no_order_or_dispute(market: Market) -> None:
    buyer, seller = await market.parties(deposit=("20", 20 * USDC))
    order_id = await market.in_progress(buyer, seller, "20")
    dispute = await _open(market, order_id)
    _, stranger = await market.api.tenant(["*"])
    order_calls = [
        ("GET", "", None),
        ("GET", "/milestones", None),
        ("POST", "/reserve", None),
        ("POST", "/cancel", None),
        ("POST", "/escrow", None),
        ("POST", "/escrow/fund", None),
        ("POST", "/milestones/m1/complete", None),
        ("POST", "/resolution/release", None),
        ("POST", "/release", None),
        ("POST", "/resolution/refund", {"reason": "r"}),
        ("POST", "/refund", {"reason": "r"}),
        ("POST", "/resolution/dispute", {"opened_by": "BUYER", "reason": "OTHER"}),
        ("POST", "/disputes", {"opened_by": "BUYER", "reason": "OTHER"}),
    ]
    for method, suffix, body in order_calls:
        for key, target in ((stranger, order_id), (market.key, "dsp_wrong_prefix")):
            path = f"/orders/{target}{suffix}"
            if method == "GET":
                response = await market.get(path, key)
            else:
                response = await market.post(path, body, key)
            assert (response.status_code, code(response)) == (404, "ORDER_NOT_FOUND"), path
    dispute_calls = [
        ("GET", "", None),
        ("POST", "/assign", {"assigned_to": "x"}),
        ("POST", "/resolve", {"decision": "FULL_RELEASE"}),
    ]
    for method, suffix, body in dispute_calls:
        for key, target in ((stranger, dispute["id"]), (market.key, order_id)):
            path = f"/disputes/{target}{suffix}"
            if method == "GET":
                response = await market.get(path, key)
            else:
                response = await market.post(path, body, key)
            assert (response.status_code, code(response)) == (404, "DISPUTE_NOT_FOUND"), path
    assert (await market.get("/disputes", stranger)).json()["data"] == []
    assert (await market.get("/disputes", stranger, order_id=order_id)).json()["data"] == []
    assert (await market.get("/orders", stranger)).json()["data"] == []
    unchanged = (await market.get(f"/disputes/{dispute['id']}")).json()
    assert unchanged == dispute
    assert (await market.get(f"/orders/{order_id}")).json()["status"] == "DISPUTED"
