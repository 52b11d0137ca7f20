"""Orders over HTTP without providers: create, read, list, reserve, cancel, milestones.

Bad input never answers 500. Ids of the wrong prefix are simply unknown ids: 404 with the
resource code (``ORDER_NOT_FOUND``, ``USER_NOT_FOUND`` with ``details.field``).
"""

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.money import format_amount
from tests.api.support import Api, running_api
from tests.api.test_orders_support import USDC, Market, code, new_market

pytestmark = pytest.mark.db


MILESTONE = {"milestone_ref": "a", "title": "A", "amount": "4"}
# A change to a valid body, and a field the VALIDATION_ERROR must name (``...`` drops a field).
SCHEMA_BREACHES: list[tuple[dict[str, Any], str]] = [
    ({"colour": "red"}, "colour"),
    ({"title": ...}, "title"),
    ({"title": ""}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"buyer_id": 12}, "buyer_id"),
    ({"milestones": []}, "milestones"),
    ({"milestones": [MILESTONE] * 51}, "milestones"),
    ({"milestones": [{**MILESTONE, "milestone_ref": "a b"}]}, "milestones[0].milestone_ref"),
    ({"milestones": [{**MILESTONE, "milestone_ref": "r" * 65}]}, "milestones[0].milestone_ref"),
    ({"milestones": [{"milestone_ref": "a", "amount": "10"}]}, "milestones[0].title"),
    ({"metadata": {"blob": "x" * 9000}}, "metadata"),
    ({"metadata": [1]}, "metadata"),
    ({"client_order_ref": ""}, "client_order_ref"),
    ({"client_order_ref": "r" * 101}, "client_order_ref"),
    ({"description": "d" * 2001}, "description"),
]


@pytest.fixture
async def market(db_dsn: str, pool: asyncpg.Pool) -> AsyncIterator[Market]:
    async with running_api(db_dsn) as api:
        yield await new_market(api, pool, users_via_api=False)


async def _parties(market: Market, deposit: str | None = None) -> tuple[str, str]:
    buyer, seller = await market.user(), await market.user()
    if deposit is not None:
        await market.credit(buyer, deposit)
    return buyer, seller


async def test_create_and_read_an_order(market: Market) -> None:
    buyer, seller = await _parties(market)
    milestones = [
        {"milestone_ref": "design", "title": "Design", "amount": "30.5"},
        {"milestone_ref": "final.v1", "title": "Final", "amount": "50"},
    ]
    created = await market.post(
        "/orders",
        {
            "buyer_id": buyer,
            "seller_id": seller,
            "amount": "80.50",
            "currency": "USD",
            "title": "Logo design",
            "description": "Three colours",
            "client_order_ref": "ref-1",
            "milestones": milestones,
            "metadata": {"channel": "web", "tags": [1, 2]},
        },
    )
    assert created.status_code == 201, created.text
    order = created.json()
    assert created.headers["location"] == f"/api/v1/orders/{order['id']}"
    assert order["id"].startswith("ord_")
    assert (order["status"], order["amount"], order["currency"]) == (
        "ORDER_CREATED",
        "80.50",
        "USD",
    )
    assert (order["close_reason"], order["escrow"], order["dispute_id"]) == (None, None, None)
    assert (order["operation"], order["closed_at"]) == (None, None)
    assert order["metadata"] == {"channel": "web", "tags": [1, 2]}
    assert [m["amount"] for m in order["milestones"]] == ["30.50", "50.00"]
    assert [m["status"] for m in order["milestones"]] == ["OPEN", "OPEN"]
    assert order["milestones"][0]["completed_at"] is None
    assert order["created_at"].endswith("Z")
    assert "reserve_transfer_id" not in order

    fetched = await market.get(f"/orders/{order['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == order
    listed_milestones = await market.get(f"/orders/{order['id']}/milestones")
    assert listed_milestones.json() == {
        "data": order["milestones"],
        "pagination": {"has_more": False, "next_cursor": None},
    }


async def test_list_orders_with_filters_and_pages(market: Market) -> None:
    buyer, seller = await _parties(market)
    order = await market.order(buyer, seller, "80", client_order_ref="ref-1")
    plain = await market.order(buyer, seller, "5")
    assert (plain["milestones"], plain["client_order_ref"]) == ([], None)
    other_buyer, _ = await _parties(market)
    third = await market.order(other_buyer, buyer, "7")

    async def ids(**params: Any) -> list[str]:
        response = await market.get("/orders", **params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["data"]]

    assert await ids() == [third["id"], plain["id"], order["id"]]
    assert await ids(buyer_id=buyer) == [plain["id"], order["id"]]
    assert await ids(seller_id=buyer) == [third["id"]]
    assert await ids(user_id=buyer) == [third["id"], plain["id"], order["id"]]
    assert await ids(client_order_ref="ref-1") == [order["id"]]
    assert await ids(status="ORDER_CREATED,CLOSED") == [third["id"], plain["id"], order["id"]]
    assert await ids(status="CLOSED") == []
    assert await ids(created_after=order["created_at"], created_before=third["created_at"]) == [
        plain["id"],
        order["id"],
    ]
    assert await ids(created_after="2999-01-01T00:00:00+02:00") == []

    first = (await market.get("/orders", limit=2)).json()
    assert first["pagination"]["has_more"] is True
    assert [item["id"] for item in first["data"]] == [third["id"], plain["id"]]
    cursor = first["pagination"]["next_cursor"]
    second = (await market.get("/orders", limit=2, cursor=cursor)).json()
    assert [item["id"] for item in second["data"]] == [order["id"]]
    assert second["pagination"] == {"has_more": False, "next_cursor": None}
    moved = await market.get("/orders", limit=2, cursor=cursor, buyer_id=buyer)
    assert (moved.status_code, code(moved)) == (400, "VALIDATION_ERROR")


async def test_list_filters_are_validated(market: Market) -> None:
    cases = [
        ({"status": "NOPE"}, "query.status"),
        ({"status": "CLOSED,"}, "query.status"),
        ({"created_after": "2026-01-12"}, "query.created_after"),
        ({"created_before": "yesterday"}, "query.created_before"),
        ({"created_after": "2026-13-40T00:00:00Z"}, "query.created_after"),
        ({"limit": "0"}, "query.limit"),
        ({"limit": "101"}, "query.limit"),
        ({"cursor": "c_garbage"}, "query.cursor"),
        ({"colour": "red"}, "query.colour"),
    ]
    for params, field in cases:
        response = await market.get("/orders", **params)
        assert response.status_code == 400, (params, response.text)
        assert code(response) == "VALIDATION_ERROR"
        assert response.json()["error"]["details"]["fields"][0]["field"] == field
    fine = await market.get("/orders", created_after="2026-01-12T10:00:00.123456789Z")
    assert fine.status_code == 200
    unknown = await market.get(f"/orders/ord_{'x' * 32}/milestones", colour="red")
    assert (unknown.status_code, code(unknown)) == (400, "VALIDATION_ERROR")


async def test_create_refuses_bad_orders_with_the_documented_codes(market: Market) -> None:
    buyer, seller = await _parties(market)
    base = {"buyer_id": buyer, "seller_id": seller, "amount": "10", "title": "T"}

    async def refused(changes: dict[str, Any], status: int, error: str) -> dict[str, Any]:
        body = {key: value for key, value in {**base, **changes}.items() if value is not ...}
        response = await market.post("/orders", body)
        assert (response.status_code, code(response)) == (status, error), (changes, response.text)
        return dict(response.json()["error"]["details"])

    details = await refused({"buyer_id": "usr_" + "0" * 32}, 404, "USER_NOT_FOUND")
    assert details["field"] == "buyer_id"
    assert (await refused({"seller_id": "ord_x"}, 404, "USER_NOT_FOUND"))["field"] == "seller_id"
    await refused({"seller_id": buyer}, 400, "INVALID_REQUEST")
    for amount in ("-1", "1e5", 1.5, 10, "0.00000001", " 1", "01", "1,5", None):
        details = await refused({"amount": amount}, 400, "INVALID_AMOUNT_FORMAT")
        assert details["fields"][0]["field"] == "amount"
    await refused({"amount": "0"}, 400, "INVALID_AMOUNT")
    for amount in ("0.009", "1000000.0000001", "922337203685.4775807"):
        details = await refused({"amount": amount}, 400, "INVALID_AMOUNT")
        assert details == {"min": "0.01", "max": "1000000.00"}
    await refused({"currency": "EUR"}, 400, "INVALID_CURRENCY")
    split = [
        {"milestone_ref": "a", "title": "A", "amount": "4"},
        {"milestone_ref": "b", "title": "B", "amount": "5"},
    ]
    details = await refused({"milestones": split}, 400, "INVALID_AMOUNT")
    assert details == {"amount": "10.00", "milestones_total": "9.00"}
    twice = [{**split[0], "amount": "5"}, {**split[0], "amount": "5"}]
    await refused({"milestones": twice}, 400, "INVALID_REQUEST")
    bad_ms = [{"milestone_ref": "a", "title": "A", "amount": "-5"}]
    details = await refused({"milestones": bad_ms}, 400, "INVALID_AMOUNT_FORMAT")
    assert details["fields"][0]["field"] == "milestones[0].amount"
    for changes, field in SCHEMA_BREACHES:
        details = await refused(changes, 400, "VALIDATION_ERROR")
        assert field in [item["field"] for item in details["fields"]], (changes, details)
    first = await market.order(buyer, seller, "10", client_order_ref="shop-42")
    details = await refused({"client_order_ref": "shop-42"}, 409, "ORDER_ALREADY_EXISTS")
    assert details["order_id"] == first["id"]


async def test_bodies_that_are_not_json_objects_are_refused(market: Market) -> None:
    base = {"buyer_id": "usr_x", "seller_id": "usr_y", "amount": "10", "title": "T"}
    malformed = await market.api.client.post(
        "/api/v1/orders",
        content=b'{"buyer_id": ',
        headers=market.api.auth(
            market.key, **{"Idempotency-Key": "m-1", "Content-Type": "application/json"}
        ),
    )
    assert (malformed.status_code, code(malformed)) == (400, "VALIDATION_ERROR")
    for raw in (b"[]", b'"orders"', b"null", b"12"):
        odd = await market.api.client.post(
            "/api/v1/orders",
            content=raw,
            headers=market.api.auth(
                market.key, **{"Idempotency-Key": "m-3", "Content-Type": "application/json"}
            ),
        )
        assert (odd.status_code, code(odd)) == (400, "VALIDATION_ERROR"), raw
    text = await market.api.client.post(
        "/api/v1/orders",
        content=b"buyer_id=x",
        headers=market.api.auth(
            market.key, **{"Idempotency-Key": "m-2", "Content-Type": "text/plain"}
        ),
    )
    assert (text.status_code, code(text)) == (415, "UNSUPPORTED_MEDIA_TYPE")
    no_key = await market.api.client.post(
        "/api/v1/orders", json=base, headers=market.api.auth(market.key)
    )
    assert no_key.json()["error"]["details"]["fields"] == [
        {"field": "header.Idempotency-Key", "message": "required"}
    ]


async def test_reserve_and_cancel_move_the_buyer_balance(market: Market) -> None:
    buyer, seller = await _parties(market, deposit="100")
    order = await market.order(buyer, seller, "60")
    path = f"/orders/{order['id']}"
    mismatch = await market.post(f"{path}/reserve", {"amount": "59.99"})
    assert (mismatch.status_code, code(mismatch)) == (422, "RESERVE_MISMATCH_AMOUNT")
    for amount in ("-1", 60, "1e5"):
        bad = await market.post(f"{path}/reserve", {"amount": amount})
        assert (bad.status_code, code(bad)) == (400, "INVALID_AMOUNT_FORMAT")
    zero = await market.post(f"{path}/reserve", {"amount": "0"})
    assert (zero.status_code, code(zero)) == (400, "INVALID_AMOUNT")
    unknown = await market.post(f"{path}/reserve", {"colour": 1})
    assert (unknown.status_code, code(unknown)) == (400, "VALIDATION_ERROR")
    reserved = await market.step(f"{path}/reserve", {"amount": "60.00"})
    assert reserved["status"] == "FUNDS_RESERVED"
    assert await market.balance(buyer) == {
        "available": "40.00",
        "reserved": "60.00",
        "total": "100.00",
    }
    again = await market.post(f"{path}/reserve")
    assert (again.status_code, code(again)) == (409, "INVALID_STATE")
    assert again.json()["error"]["details"] == {
        "resource_type": "order",
        "resource_id": order["id"],
        "current_state": "FUNDS_RESERVED",
        "allowed_states": ["ORDER_CREATED"],
    }
    short = await market.order(buyer, seller, "40.01")
    refused = await market.post(f"/orders/{short['id']}/reserve")
    assert (refused.status_code, code(refused)) == (422, "INSUFFICIENT_FUNDS")
    assert refused.json()["error"]["details"] == {
        "user_id": buyer,
        "available": "40.00",
        "requested": "40.01",
        "currency": "USD",
    }
    canceled = await market.step(f"{path}/cancel", {"reason": "changed my mind"})
    assert (canceled["status"], canceled["close_reason"]) == ("CLOSED", "CANCELED")
    assert canceled["closed_at"] is not None
    assert await market.balance(buyer) == {
        "available": "100.00",
        "reserved": "0.00",
        "total": "100.00",
    }
    twice = await market.post(f"{path}/cancel")
    assert (twice.status_code, code(twice)) == (409, "INVALID_STATE")
    long_reason = await market.post(f"/orders/{short['id']}/cancel", {"reason": "r" * 501})
    assert (long_reason.status_code, code(long_reason)) == (400, "VALIDATION_ERROR")
    unreserved = await market.step(f"/orders/{short['id']}/cancel")
    assert unreserved["close_reason"] == "CANCELED"
    types = await market.pool.fetch(
        "SELECT type, data FROM events WHERE marketplace_id = $1 AND"
        " (resource_id = $2 OR resource_type = 'balance') ORDER BY sequence",
        market.marketplace_id,
        order["id"],
    )
    assert [row["type"] for row in types] == [
        "balance.credited",
        "order.created",
        "balance.reserved",
        "order.funds_reserved",
        "balance.released",
        "order.canceled",
        "order.closed",
    ]
    assert await market.zero_sum_violations() == 0


async def test_milestone_completion_needs_an_order_in_progress(market: Market) -> None:
    buyer, seller = await _parties(market)
    order = await market.order(
        buyer, seller, "3", milestones=[{"milestone_ref": "m1", "title": "M", "amount": "3"}]
    )
    path = f"/orders/{order['id']}/milestones"
    early = await market.post(f"{path}/m1/complete")
    assert (early.status_code, code(early)) == (409, "INVALID_STATE")
    assert early.json()["error"]["details"]["allowed_states"] == ["IN_PROGRESS"]
    missing = await market.post(f"{path}/nope/complete")
    assert (missing.status_code, code(missing)) == (404, "MILESTONE_NOT_FOUND")
    with_body = await market.post(f"{path}/m1/complete", {"x": 1})
    assert (with_body.status_code, code(with_body)) == (400, "VALIDATION_ERROR")
    gone = await market.post(f"/orders/ord_{'0' * 32}/milestones/m1/complete")
    assert (gone.status_code, code(gone)) == (404, "ORDER_NOT_FOUND")


async def test_unknown_and_foreign_orders_are_not_found(market: Market) -> None:
    buyer, seller = await _parties(market, deposit="10")
    order = await market.order(buyer, seller, "10", client_order_ref="mine")
    _, stranger = await market.api.tenant(["*"])
    for order_id in (order["id"], "ord_" + "0" * 32, "usr_wrong_prefix", "x"):
        for method, path in [
            ("GET", f"/orders/{order_id}"),
            ("GET", f"/orders/{order_id}/milestones"),
            ("POST", f"/orders/{order_id}/reserve"),
            ("POST", f"/orders/{order_id}/cancel"),
            ("POST", f"/orders/{order_id}/milestones/m/complete"),
        ]:
            key = stranger if order_id == order["id"] else market.key
            if method == "GET":
                response = await market.get(path, key)
            else:
                response = await market.post(path, key=key)
            assert (response.status_code, code(response)) == (404, "ORDER_NOT_FOUND"), path
    listed = await market.get("/orders", stranger, client_order_ref="mine")
    assert listed.json()["data"] == []
    foreign_buyer = await market.post(
        "/orders",
        {"buyer_id": buyer, "seller_id": seller, "amount": "1", "title": "T"},
        key=stranger,
    )
    assert (foreign_buyer.status_code, code(foreign_buyer)) == (404, "USER_NOT_FOUND")
    assert (await market.get(f"/orders/{order['id']}")).json()["status"] == "ORDER_CREATED"


async def test_scopes_and_idempotent_creation(market: Market) -> None:
    buyer, seller = await _parties(market)
    api: Api = market.api
    reader = await api.new_key(market.marketplace_id, ["read"])
    writer = await api.new_key(market.marketplace_id, ["write"])
    support = await api.new_key(market.marketplace_id, ["support"])
    body = {"buyer_id": buyer, "seller_id": seller, "amount": "2", "title": "T"}
    denied = await market.post("/orders", body, key=reader)
    assert (denied.status_code, code(denied)) == (403, "INSUFFICIENT_SCOPE")
    assert (await market.get("/orders", writer)).status_code == 403
    first = await api.post("/api/v1/orders", writer, body, idempotency_key="create-1")
    replay = await api.post("/api/v1/orders", writer, body, idempotency_key="create-1")
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.content == first.content
    assert replay.headers["idempotency-replayed"] == "true"
    assert replay.headers["location"] == first.headers["location"]
    other = await api.post("/api/v1/orders", writer, {**body, "amount": "3"}, "create-1")
    assert (other.status_code, code(other)) == (409, "IDEMPOTENCY_KEY_REUSED")
    order_id = first.json()["id"]
    refused = await market.post(f"/orders/{order_id}/reserve", key=support)
    assert (refused.status_code, code(refused)) == (403, "INSUFFICIENT_SCOPE")
    assert (await market.get(f"/orders/{order_id}", reader)).status_code == 200
    assert len((await market.get("/orders", reader)).json()["data"]) == 1


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    amounts=st.lists(st.integers(1, 40 * 100), min_size=1, max_size=6),
    plan=st.lists(
        st.tuples(st.sampled_from(["reserve", "cancel"]), st.integers(0, 5)), max_size=12
    ),
)
async def test_any_reserve_and_cancel_sequence_keeps_the_balance_exact(
    market: Market, amounts: list[int], plan: list[tuple[str, int]]
) -> None:
    """Reserved is the sum of FUNDS_RESERVED orders; nothing appears, vanishes or overdraws."""
    buyer, seller = await _parties(market, deposit="100")  # fresh users per example
    orders = [
        await market.order(buyer, seller, format_amount(cents * USDC // 100)) for cents in amounts
    ]
    for action, index in plan:
        order = orders[index % len(orders)]
        response = await market.post(f"/orders/{order['id']}/{action}")
        assert response.status_code in (200, 409, 422), response.text
    status = {}
    for order in orders:
        status[order["id"]] = (await market.get(f"/orders/{order['id']}")).json()["status"]
    reserved = sum(
        cents * USDC // 100
        for cents, order in zip(amounts, orders, strict=True)
        if status[order["id"]] == "FUNDS_RESERVED"
    )
    balance = await market.balance(buyer)
    assert balance["reserved"] == format_amount(reserved)
    assert balance["available"] == format_amount(100 * USDC - reserved)
    assert balance["total"] == "100.00"
    assert await market.zero_sum_violations() == 0


async def test_long_running_actions_need_the_providers(market: Market) -> None:
    """Without providers, actions that start an operation answer 503 and change nothing."""
    buyer, seller = await _parties(market, deposit="5")
    order = await market.order(buyer, seller, "5")
    await market.step(f"/orders/{order['id']}/reserve")
    for suffix, body in [
        ("/escrow", None),
        ("/escrow/fund", None),
        ("/resolution/release", None),
        ("/refund", {"reason": "r"}),
    ]:
        response = await market.post(f"/orders/{order['id']}{suffix}", body)
        assert (response.status_code, code(response)) == (503, "PROVIDER_UNAVAILABLE"), suffix
        assert "retry-after" in response.headers
    resolve = await market.post(f"/disputes/dsp_{'0' * 32}/resolve", {"decision": "FULL_REFUND"})
    assert (resolve.status_code, code(resolve)) == (503, "PROVIDER_UNAVAILABLE")
    assert (await market.get(f"/orders/{order['id']}")).json()["status"] == "FUNDS_RESERVED"
