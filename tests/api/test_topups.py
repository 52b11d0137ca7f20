"""Top-ups over HTTP on the sandbox (api.md 3.7, 5.5): Airtm payins that credit the user once.

The payer is simulated at the Airtm sandbox (``payer_confirms``, ``payer_starts``); the API
learns the outcome by ``refresh`` or on the public callback. The balance is credited exactly
once, when Airtm says CONFIRMED, however often the top-up is refreshed. Ids of another
marketplace or of the wrong prefix answer 404 ``TOPUP_NOT_FOUND``.
"""

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from providers.sandbox.airtm_state import AirtmState
from tests.api.support import Api, running_api_on_sandbox, settings_for_tests
from tests.api.test_orders_support import Market, code, new_market

pytestmark = pytest.mark.db

TU = "/topups"
RETURN = "https://shop.example/paid?cart=9"
CANCEL = "https://shop.example/cancelled"


@pytest.fixture
async def market(db_dsn: str, pool: asyncpg.Pool) -> AsyncIterator[Market]:
    async with running_api_on_sandbox(db_dsn, wait_s=3.0) as api:
        yield await new_market(api, pool)


def _airtm(market: Market) -> AirtmState:
    return market.sandbox_api.sandbox.airtm


def _body(user: str, amount: str = "25", **fields: Any) -> dict[str, Any]:
    return {"user_id": user, "amount": amount, "return_url": RETURN, "cancel_url": CANCEL, **fields}


async def _create(market: Market, user: str, amount: str = "25", **fields: Any) -> dict[str, Any]:
    response = await market.post(TU, _body(user, amount, **fields))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _callback(market: Market, topup_id: str, **params: str) -> httpx.Response:
    """The payer's browser coming back from Airtm: no credentials."""
    return await market.api.client.get(f"/api/v1{TU}/{topup_id}/callback", params=params)


async def _open_checkout(market: Market, uri: str) -> dict[str, Any]:
    """What the payer's browser gets at ``uri``, on the sandbox serving this test."""
    assert uri.startswith("http://sandbox.test/_sandbox/control/airtm/checkout/")
    transport = httpx.ASGITransport(app=market.sandbox_api.sandbox.asgi_app())
    async with httpx.AsyncClient(transport=transport) as browser:
        response = await browser.get(uri)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _credits(market: Market, topup_id: str) -> int:
    return int(
        await market.pool.fetchval(
            "SELECT count(*) FROM events WHERE type = 'balance.credited'"
            " AND data->>'source_id' = $1",
            topup_id,
        )
    )


async def test_create_confirm_refresh_credits_once(market: Market) -> None:
    user = await market.user()
    created = await market.post(
        TU, _body(user, "25.5", description="Wallet top-up", metadata={"order": "o-1"})
    )
    assert created.status_code == 201, created.text
    topup = created.json()
    assert created.headers["location"] == f"/api/v1{TU}/{topup['id']}"
    assert topup["id"].startswith("topup_")
    assert topup["status"] == "TOPUP_AWAITING_USER_CONFIRMATION"
    assert (topup["amount"], topup["currency"]) == ("25.50", "USD")
    assert (topup["return_url"], topup["cancel_url"]) == (RETURN, CANCEL)
    assert (topup["description"], topup["metadata"]) == ("Wallet top-up", {"order": "o-1"})
    assert topup["confirmation_uri"] is not None
    assert topup["expires_at"].endswith("Z")
    for nullable in ("failure_code", "failure_reason", "completed_at"):
        assert topup[nullable] is None
    payin = _airtm(market).payin(topup["airtm_payin_id"])
    assert (payin.code, payin.status.value, payin.amount_minor) == (
        topup["id"],
        "CREATED",
        255_000_000,
    )
    assert payin.confirmation_uri.endswith(f"{TU}/{topup['id']}/callback?status=confirmed")
    assert payin.cancel_uri.endswith(f"{TU}/{topup['id']}/callback?status=canceled")
    assert (await market.get(f"{TU}/{topup['id']}")).json() == topup
    # confirmation_uri is the payer's checkout page at Airtm (the sandbox's stand-in), not ours.
    checkout = await _open_checkout(market, topup["confirmation_uri"])
    assert checkout["payin"]["id"] == topup["airtm_payin_id"]
    assert checkout["pay"].endswith(f"/airtm/payins/{topup['airtm_payin_id']}/confirm")
    waiting = await market.post(f"{TU}/{topup['id']}/refresh")
    assert waiting.json()["status"] == "TOPUP_AWAITING_USER_CONFIRMATION"
    assert (await market.balance(user))["available"] == "0.00"

    _airtm(market).payer_confirms(topup["airtm_payin_id"])
    first = await market.post(f"{TU}/{topup['id']}/refresh")
    assert first.status_code == 200, first.text
    succeeded = first.json()
    assert succeeded["status"] == "TOPUP_SUCCEEDED"
    assert succeeded["completed_at"] is not None
    assert succeeded["provider_fee"] == "0.00"
    second = await market.post(f"{TU}/{topup['id']}/refresh")
    assert (second.status_code, second.json()["status"]) == (200, "TOPUP_SUCCEEDED")
    assert (await market.balance(user))["available"] == "25.50"
    assert await _credits(market, topup["id"]) == 1

    canceled = await market.post(f"{TU}/{topup['id']}/cancel")
    assert (canceled.status_code, code(canceled)) == (409, "INVALID_STATE")
    assert canceled.json()["error"]["details"]["current_state"] == "TOPUP_SUCCEEDED"

    other = await _create(market, user, "1")
    listed = await market.get(TU, user_id=user)
    assert [item["id"] for item in listed.json()["data"]] == [other["id"], topup["id"]]
    done = await market.get(TU, status="TOPUP_SUCCEEDED,TOPUP_FAILED")
    assert [item["id"] for item in done.json()["data"]] == [topup["id"]]
    page = (await market.get(TU, limit=1)).json()
    assert page["pagination"]["has_more"] is True
    rest = await market.get(TU, limit=1, cursor=page["pagination"]["next_cursor"])
    assert [item["id"] for item in rest.json()["data"]] == [topup["id"]]
    since = await market.get(TU, created_after=other["created_at"])
    assert [item["id"] for item in since.json()["data"]] == [other["id"]]


async def test_callback_redirects_and_never_credits_by_itself(market: Market) -> None:
    user = await market.user()
    topup = await _create(market, user, "10")
    lying = await _callback(market, topup["id"], status="confirmed")
    assert lying.status_code == 302
    target = urlsplit(lying.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == "https://shop.example/paid"
    assert parse_qs(target.query) == {
        "cart": ["9"],
        "topup_id": [topup["id"]],
        "status": ["TOPUP_AWAITING_USER_CONFIRMATION"],
    }
    assert lying.headers["x-request-id"]
    assert (await market.balance(user))["available"] == "0.00"

    _airtm(market).payer_confirms(topup["airtm_payin_id"])
    paid = await _callback(market, topup["id"], status="confirmed", code=topup["id"])
    query = parse_qs(urlsplit(paid.headers["location"]).query)
    assert query["status"] == ["TOPUP_SUCCEEDED"]
    assert (await market.balance(user))["available"] == "10.00"
    again = await _callback(market, topup["id"], status="confirmed")
    assert parse_qs(urlsplit(again.headers["location"]).query)["status"] == ["TOPUP_SUCCEEDED"]
    assert await _credits(market, topup["id"]) == 1

    left = await _create(market, user, "3")
    _airtm(market).payer_cancels(left["airtm_payin_id"])
    gone = await _callback(market, left["id"], status="canceled")
    location = gone.headers["location"]
    assert location.startswith(CANCEL + "?")
    assert parse_qs(urlsplit(location).query)["status"] == ["TOPUP_CANCELED"]

    missing = await _callback(market, "topup_" + "0" * 32, status="confirmed")
    assert (missing.status_code, code(missing)) == (404, "TOPUP_NOT_FOUND")
    odd = await _callback(market, topup["id"], status="confirmed", extra="1")
    assert (odd.status_code, code(odd)) == (400, "VALIDATION_ERROR")


async def test_cancel_before_and_after_the_payer_starts(market: Market) -> None:
    user = await market.user()
    topup = await _create(market, user, "7")
    canceled = await market.post(f"{TU}/{topup['id']}/cancel", {"reason": "wrong amount"})
    assert canceled.status_code == 200, canceled.text
    body = canceled.json()
    assert (body["status"], body["failure_reason"]) == ("TOPUP_CANCELED", "wrong amount")
    assert _airtm(market).payin(topup["airtm_payin_id"]).status.value == "CANCELED"
    twice = await market.post(f"{TU}/{topup['id']}/cancel")
    assert (twice.status_code, code(twice)) == (409, "INVALID_STATE")

    paying = await _create(market, user, "8")
    _airtm(market).payer_starts(paying["airtm_payin_id"])
    refused = await market.post(f"{TU}/{paying['id']}/cancel")
    assert (refused.status_code, code(refused)) == (409, "INVALID_STATE")
    assert refused.json()["error"]["details"]["current_state"] == "TOPUP_PROCESSING"
    assert (await market.get(f"{TU}/{paying['id']}")).json()["status"] == "TOPUP_PROCESSING"
    assert _airtm(market).payin(paying["airtm_payin_id"]).status.value == "PROCESSING"


async def test_airtm_unreachable_then_refresh_creates_the_payin(market: Market) -> None:
    user = await market.user()
    faults = market.sandbox_api.sandbox.faults
    faults.add("airtm", "*", "/payins", "status:503", count=10)
    created = await market.api.post(f"/api/v1{TU}", market.key, _body(user, "5"), "tu-away")
    assert created.status_code == 202, created.text
    topup = created.json()
    assert (topup["status"], topup["airtm_payin_id"]) == ("TOPUP_CREATED", None)
    assert created.headers["location"] == f"/api/v1{TU}/{topup['id']}"
    replay = await market.api.post(f"/api/v1{TU}", market.key, _body(user, "5"), "tu-away")
    assert (replay.status_code, replay.json()) == (202, topup)
    faults.clear()
    refreshed = await market.post(f"{TU}/{topup['id']}/refresh")
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["status"] == "TOPUP_AWAITING_USER_CONFIRMATION"
    assert _airtm(market).payin_by_code(topup["id"]).status.value == "CREATED"


async def test_airtm_refusal_fails_the_topup(market: Market) -> None:
    user = await market.user()
    market.sandbox_api.sandbox.faults.add("airtm", "POST", "/payins", "status:422")
    refused = await market.post(TU, _body(user, "5"))
    assert (refused.status_code, code(refused)) == (502, "PROVIDER_ERROR")
    details = refused.json()["error"]["details"]
    assert (details["provider"], details["provider_status"]) == ("airtm", 422)
    failed = (await market.get(f"{TU}/{details['topup_id']}")).json()
    assert failed["status"] == "TOPUP_FAILED"
    assert failed["failure_reason"] is not None


async def test_refused_inputs_and_other_marketplaces(market: Market) -> None:
    user = await market.user()
    topup = await _create(market, user, "2")
    cases: list[tuple[dict[str, Any], int, str]] = [
        (_body("usr_" + "0" * 32), 404, "USER_NOT_FOUND"),
        (_body(user, "1.001"), 400, "INVALID_AMOUNT"),
        (_body(user, "0"), 400, "INVALID_AMOUNT"),
        (_body(user, "-1"), 400, "INVALID_AMOUNT_FORMAT"),
        (_body(user, "1e5"), 400, "INVALID_AMOUNT_FORMAT"),
        (_body(user, "0.00000001"), 400, "INVALID_AMOUNT_FORMAT"),
        ({**_body(user), "amount": 1.5}, 400, "INVALID_AMOUNT_FORMAT"),
        (_body(user, currency="EUR"), 400, "INVALID_CURRENCY"),
        (_body(user, return_url="http://shop.example/x"), 400, "VALIDATION_ERROR"),
        (_body(user, cancel_url="shop.example"), 400, "VALIDATION_ERROR"),
        (_body(user, return_url="https://" + "a" * 2050), 400, "VALIDATION_ERROR"),
        (_body(user, description="d" * 256), 400, "VALIDATION_ERROR"),
        (_body(user, metadata={"blob": "x" * 9000}), 400, "VALIDATION_ERROR"),
        (_body(user, metadata=[1]), 400, "VALIDATION_ERROR"),
        (_body(user, colour="red"), 400, "VALIDATION_ERROR"),
        ({"amount": "1"}, 400, "VALIDATION_ERROR"),
    ]
    for body, status, expected in cases:
        response = await market.post(TU, body)
        assert (response.status_code, code(response)) == (status, expected), body
    # Without configured defaults the payer's return URLs are required.
    unset = await market.post(TU, {"user_id": user, "amount": "1"})
    assert (unset.status_code, code(unset)) == (400, "VALIDATION_ERROR")
    assert unset.json()["error"]["details"]["fields"][0]["field"] == "return_url"

    _, other = await market.api.tenant(["*"])
    api: Api = market.api
    path = f"/api/v1{TU}/{topup['id']}"
    assert code(await api.get(path, other)) == "TOPUP_NOT_FOUND"
    for action in ("refresh", "cancel"):
        response = await api.post(f"{path}/{action}", other)
        assert (response.status_code, code(response)) == (404, "TOPUP_NOT_FOUND"), action
    assert (await api.get(f"/api/v1{TU}", other)).json()["data"] == []
    stolen = await api.post(f"/api/v1{TU}", other, _body(user))
    assert (stolen.status_code, code(stolen)) == (404, "USER_NOT_FOUND")
    for wrong in ("wd_" + "0" * 32, "topup_short"):
        response = await market.get(f"{TU}/{wrong}")
        assert (response.status_code, code(response)) == (404, "TOPUP_NOT_FOUND")
        refresh = await market.post(f"{TU}/{wrong}/refresh")
        assert (refresh.status_code, code(refresh)) == (404, "TOPUP_NOT_FOUND")
    for params in ({"status": "PAID"}, {"created_before": "yesterday"}, {"limit": "101"}):
        listed = await market.get(TU, **params)
        assert (listed.status_code, code(listed)) == (400, "VALIDATION_ERROR"), params
    assert (await market.get(f"{TU}/{topup['id']}")).json()["status"] == (
        "TOPUP_AWAITING_USER_CONFIRMATION"
    )


LOSE_REPLY = """
UPDATE idempotency_keys
SET status = 'IN_FLIGHT', claim = 'dead-request', locked_until = now() - interval '1 second',
    effect_committed = true, response_status = NULL, response_body = NULL,
    response_location = NULL, completed_at = NULL
WHERE key = $1
"""


async def test_a_takeover_or_a_retry_finds_the_committed_topup(market: Market) -> None:
    user = await market.user()
    first = await market.api.post(f"/api/v1{TU}", market.key, _body(user, "4"), "tu-dead")
    assert first.status_code == 201, first.text
    await market.pool.execute(LOSE_REPLY, "tu-dead")
    retry = await market.api.post(f"/api/v1{TU}", market.key, _body(user, "4"), "tu-dead")
    assert (retry.status_code, retry.json()) == (201, first.json())
    assert len((await market.get(TU)).json()["data"]) == 1
    assert len(_airtm(market).payins) == 1

    # A 502 is not stored: the retry runs again and answers from the failed top-up.
    market.sandbox_api.sandbox.faults.add("airtm", "POST", "/payins", "status:422")
    refused = await market.api.post(f"/api/v1{TU}", market.key, _body(user, "6"), "tu-502")
    assert refused.status_code == 502
    again = await market.api.post(f"/api/v1{TU}", market.key, _body(user, "6"), "tu-502")
    assert again.status_code == 201
    assert again.json()["id"] == refused.json()["error"]["details"]["topup_id"]
    assert again.json()["status"] == "TOPUP_FAILED"


async def test_without_airtm_nothing_is_written(api: Api) -> None:
    _, key = await api.tenant(["*"])
    body = {"user_id": "usr_" + "0" * 32, "amount": "5"}
    refused = await api.post(f"/api/v1{TU}", key, body)
    assert (refused.status_code, code(refused)) == (503, "PROVIDER_UNAVAILABLE")
    assert refused.headers["retry-after"]
    again = await api.post(f"/api/v1{TU}", key, body, idempotency_key="same")
    assert again.status_code == 503
    assert (await api.get(f"/api/v1{TU}", key)).json()["data"] == []
    missing = await api.client.get(f"/api/v1{TU}/topup_{'0' * 32}/callback")
    assert (missing.status_code, code(missing)) == (404, "TOPUP_NOT_FOUND")
    headers = api.auth(key, **{"Idempotency-Key": "k", "Content-Type": "application/json"})
    malformed = await api.client.post(f"/api/v1{TU}", content=b"{", headers=headers)
    assert (malformed.status_code, code(malformed)) == (400, "VALIDATION_ERROR")
    as_text = await api.client.post(
        f"/api/v1{TU}", content=b"{}", headers={**headers, "Content-Type": "text/plain"}
    )
    assert (as_text.status_code, code(as_text)) == (415, "UNSUPPORTED_MEDIA_TYPE")


async def test_omitted_return_urls_take_the_configured_defaults(
    db_dsn: str, pool: asyncpg.Pool
) -> None:
    settings = settings_for_tests(topup_return_url=RETURN, topup_cancel_url=CANCEL)
    async with running_api_on_sandbox(db_dsn, settings=settings, wait_s=3.0) as api:
        market = await new_market(api, pool)
        user = await market.user()
        created = await market.post(TU, {"user_id": user, "amount": "1"})
        assert created.status_code == 201, created.text
        assert (created.json()["return_url"], created.json()["cancel_url"]) == (RETURN, CANCEL)
