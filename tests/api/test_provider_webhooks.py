"""Inbound provider webhooks over HTTP (api.md 3.14): verified, stored once, applied as news.

Airtm webhooks are the sandbox's own outbox messages (the real ``{type, data}`` bodies),
signed here with the app's secret so each test decides what arrives, when and how often; the
last tests let the sandbox deliver them itself. A webhook is only news: the payin or payout is
re-read at Airtm and applied through the code a refresh uses, which never moves backwards.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.settings import SettingsError, load_settings
from providers.airtm.webhooks import sign, signature_headers
from providers.sandbox.airtm_records import OutboxMessage
from providers.sandbox.airtm_state import AirtmState
from providers.trustless_work import webhooks as tw
from tests.api.support import Api, running_api, running_api_on_sandbox, settings_for_tests
from tests.api.test_orders_support import USDC, Market, code, new_market

AIRTM = "/api/v1/webhooks/airtm"
TW = "/api/v1/webhooks/trustless-work"
SECRET = "whsec_" + "c2VjcmV0LWZvci10aGUtd2ViaG9vay10ZXN0cy0wMTIz"
TW_SECRET = "tw-secret-for-tests"
PAYEE = "payee@example.com"
SETTINGS = {"airtm_webhook_secret": SECRET, "tw_webhook_secret": TW_SECRET}


def test_svix_signature_vector() -> None:
    # The worked example of Svix's documentation: fixed secret, id, timestamp and body.
    signature = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_trustless_work_signature_vector() -> None:
    # RFC 4231-style check with the well-known HMAC-SHA256 example key and message.
    body = b"The quick brown fox jumps over the lazy dog"
    expected = "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    assert tw.sign("key", body) == expected
    assert tw.verify("key", body, expected)
    assert not tw.verify("key", body, expected.upper())
    assert not tw.verify("key", body + b" ", expected)
    assert not tw.verify("other", body, expected)


def test_webhook_secrets_are_settings_and_stay_out_of_repr() -> None:
    loaded = load_settings(
        {"OFFERHUB_AIRTM_WEBHOOK_SECRET": SECRET, "OFFERHUB_TW_WEBHOOK_SECRET": TW_SECRET}
    )
    assert (loaded.airtm_webhook_secret, loaded.tw_webhook_secret) == (SECRET, TW_SECRET)
    assert SECRET not in repr(loaded)
    assert TW_SECRET not in repr(loaded)
    assert load_settings({}).airtm_webhook_secret is None
    for bad in ("whsec_not base64!", "c2VjcmV0"):
        with pytest.raises(SettingsError, match="OFFERHUB_AIRTM_WEBHOOK_SECRET") as raised:
            load_settings({"OFFERHUB_AIRTM_WEBHOOK_SECRET": bad})
        assert bad not in str(raised.value)


def _signed(
    body: bytes,
    *,
    message_id: str | None = None,
    timestamp_s: int | None = None,
    secrets: tuple[str, ...] = (SECRET,),
) -> dict[str, str]:
    msg = message_id or f"msg_{uuid.uuid4().hex}"
    stamp = int(time.time()) if timestamp_s is None else timestamp_s
    headers = signature_headers(list(secrets), msg, stamp, body)
    return {**headers, "content-type": "application/json"}


async def _post_airtm(client: httpx.AsyncClient, body: bytes, **signing: Any) -> httpx.Response:
    return await client.post(AIRTM, content=body, headers=_signed(body, **signing))


async def _events(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT * FROM provider_events ORDER BY id")
    return [dict(row) for row in rows]


# -- refusals (no providers needed) ----------------------------------------------------------


@pytest.fixture
async def bare(db_dsn: str) -> AsyncIterator[Api]:
    settings = settings_for_tests(rate_limit_per_s=1, rate_limit_burst=1, **SETTINGS)
    async with running_api(db_dsn, settings=settings) as api:
        yield api


@pytest.mark.db
async def test_bad_airtm_signatures_are_401_and_store_nothing(
    bare: Api, pool: asyncpg.Pool
) -> None:
    body = b'{"type":"payin.confirmed","data":{}}'
    now = int(time.time())
    good = _signed(body)
    cases = {
        "no headers": {"content-type": "application/json"},
        "no signature": {k: v for k, v in good.items() if k != "svix-signature"},
        "wrong secret": _signed(body, secrets=("whsec_" + "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==",)),
        "tampered body": good,
        "stale": _signed(body, timestamp_s=now - 301),
        "future": _signed(body, timestamp_s=now + 301),
        "bad timestamp": {**good, "svix-timestamp": "soon"},
        "garbage signature": {**good, "svix-signature": "v1,???? v2,abc"},
    }
    for name, headers in cases.items():
        sent = body + b" " if name == "tampered body" else body
        response = await bare.client.post(AIRTM, content=sent, headers=headers)
        assert (response.status_code, code(response)) == (401, "WEBHOOK_SIGNATURE_INVALID"), name
        assert response.headers["x-request-id"]
    # Exempt from rate limiting (1 request/s here): eight refusals, no 429.
    assert await _events(pool) == []

    # Signed, but not an Airtm event: 400 naming the field, still nothing stored.
    nul = b'{"type":"payin.later\\u0000","data":{}}'
    for bad in (
        b'{"data":{}}',
        b"[1,2]",
        b"not json",
        b'{"type":"payin.confirmed","data":{}}',
        nul,
    ):
        response = await _post_airtm(bare.client, bad)
        assert (response.status_code, code(response)) == (400, "VALIDATION_ERROR"), bad
    missing = await _post_airtm(bare.client, b'{"data":{}}')
    assert missing.json()["error"]["details"]["fields"][0]["field"] == "body"
    assert await _events(pool) == []


@pytest.mark.db
async def test_bad_trustless_work_signatures_and_no_secret(db_dsn: str, pool: asyncpg.Pool) -> None:
    body = b'{"type":"escrow.funded","event_id":"ev-1","data":{"contract_id":null}}'
    async with running_api(db_dsn, settings=settings_for_tests(**SETTINGS)) as api:
        for headers in ({}, {tw.SIGNATURE_HEADER: "00" * 32}, {tw.SIGNATURE_HEADER: "zz"}):
            response = await api.client.post(TW, content=body, headers=headers)
            assert (response.status_code, code(response)) == (401, "WEBHOOK_SIGNATURE_INVALID")
        bad_body = b'{"type":"x","data":{}}'
        signed = {tw.SIGNATURE_HEADER: tw.sign(TW_SECRET, bad_body)}
        malformed = await api.client.post(TW, content=bad_body, headers=signed)
        assert (malformed.status_code, code(malformed)) == (400, "VALIDATION_ERROR")
        assert malformed.json()["error"]["details"]["fields"][0]["field"] == "body"
    # No secrets configured: every call is refused, even a correctly signed one.
    async with running_api(db_dsn) as api:
        signed = {tw.SIGNATURE_HEADER: tw.sign(TW_SECRET, body)}
        refused = await api.client.post(TW, content=body, headers=signed)
        assert (refused.status_code, code(refused)) == (401, "WEBHOOK_SIGNATURE_INVALID")
        airtm_body = b'{"type":"payin.confirmed","data":{}}'
        refused = await _post_airtm(api.client, airtm_body)
        assert (refused.status_code, code(refused)) == (401, "WEBHOOK_SIGNATURE_INVALID")
    assert await _events(pool) == []


@pytest.mark.db
async def test_unknown_types_and_ids_are_stored_ignored(bare: Api, pool: asyncpg.Pool) -> None:
    unknown = b'{"type":"payin.refunded","data":{"anything":1}}'
    first = await _post_airtm(bare.client, unknown, message_id="msg_unknown")
    assert (first.status_code, first.json()) == (200, {"status": "ok", "duplicate": False})
    again = await _post_airtm(bare.client, unknown, message_id="msg_unknown")
    assert (again.status_code, again.json()) == (200, {"status": "ok", "duplicate": True})

    hint = (
        b'{"type":"escrow.funded","event_id":"tw-1","data":{"contract_id":"C' + b"A" * 55 + b'"}}'
    )
    tw_headers = {tw.SIGNATURE_HEADER: tw.sign(TW_SECRET, hint)}
    answered = await bare.client.post(TW, content=hint, headers=tw_headers)
    assert answered.json() == {"status": "ok", "duplicate": False}
    events = await _events(pool)
    assert [(e["provider"], e["provider_event_id"], e["status"], e["outcome"]) for e in events] == [
        ("airtm", "msg_unknown", "IGNORED", "unknown_type"),
        ("trustless_work", "tw-1", "IGNORED", "unmatched"),
    ]
    assert events[0]["body"] == {"type": "payin.refunded", "data": {"anything": 1}}
    assert events[0]["sent_at"] is not None
    assert all(e["processed_at"] is not None and e["marketplace_id"] is None for e in events)


# -- applying Airtm news on the sandbox ------------------------------------------------------


@pytest.fixture
async def market(db_dsn: str, pool: asyncpg.Pool) -> AsyncIterator[Market]:
    settings = settings_for_tests(**SETTINGS)
    async with running_api_on_sandbox(db_dsn, settings=settings, wait_s=3.0) as api:
        api.sandbox.airtm.fund(1_000 * USDC)
        api.sandbox.airtm.add_user(PAYEE)
        yield await new_market(api, pool)


def _airtm(market: Market) -> AirtmState:
    return market.sandbox_api.sandbox.airtm


def _message(market: Market, type_: str, resource_id: str) -> OutboxMessage:
    """The sandbox's latest webhook of ``type_`` about a payin or payout id."""
    found = [m for m in _airtm(market).outbox if m.type == type_ and resource_id.encode() in m.body]
    assert found, f"no {type_} webhook for {resource_id}"
    return found[-1]


async def _topup(market: Market, user: str, amount: str) -> dict[str, Any]:
    urls = {"return_url": "https://shop.example/paid", "cancel_url": "https://shop.example/no"}
    response = await market.post("/topups", {"user_id": user, "amount": amount, **urls})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _credits(market: Market, topup_id: str) -> int:
    return int(
        await market.pool.fetchval(
            "SELECT count(*) FROM events WHERE type = 'balance.credited'"
            " AND data->>'source_id' = $1",
            topup_id,
        )
    )


async def _status(market: Market, path: str) -> str:
    return str((await market.get(path)).json()["status"])


@pytest.mark.db
async def test_payin_confirmed_credits_once_with_refresh_and_repeats(market: Market) -> None:
    user = await market.user()
    topup = await _topup(market, user, "25")
    payin_id = topup["airtm_payin_id"]
    _airtm(market).payer_confirms(payin_id)
    confirmed = _message(market, "payin.confirmed", payin_id)
    client = market.api.client

    answered = await _post_airtm(client, confirmed.body, message_id=confirmed.message_id)
    assert (answered.status_code, answered.json()) == (200, {"status": "ok", "duplicate": False})
    assert await _status(market, f"/topups/{topup['id']}") == "TOPUP_SUCCEEDED"
    repeat = await _post_airtm(client, confirmed.body, message_id=confirmed.message_id)
    assert repeat.json() == {"status": "ok", "duplicate": True}
    refreshed = await market.post(f"/topups/{topup['id']}/refresh")
    assert refreshed.json()["status"] == "TOPUP_SUCCEEDED"
    # The same news under another message id (Airtm re-sent it): stored, nothing applied.
    resent = await _post_airtm(client, confirmed.body, message_id="msg_resent")
    assert resent.json() == {"status": "ok", "duplicate": False}

    assert await market.balance(user) == {
        "available": "25.00",
        "reserved": "0.00",
        "total": "25.00",
    }
    assert await market.posted(f"user:{user}") == 25 * USDC
    assert await _credits(market, topup["id"]) == 1
    assert await market.zero_sum_violations() == 0
    events = await _events(market.pool)
    assert [(e["provider_event_id"], e["status"], e["outcome"]) for e in events] == [
        (confirmed.message_id, "APPLIED", "TOPUP_SUCCEEDED"),
        ("msg_resent", "IGNORED", "final:TOPUP_SUCCEEDED"),
    ]
    assert (events[0]["marketplace_id"], events[0]["resource_type"], events[0]["resource_id"]) == (
        market.marketplace_id,
        "topup",
        topup["id"],
    )
    assert events[0]["attempts"] == 1


@pytest.mark.db
async def test_ten_concurrent_identical_posts_apply_once(market: Market) -> None:
    user = await market.user()
    topup = await _topup(market, user, "12.5")
    _airtm(market).payer_confirms(topup["airtm_payin_id"])
    confirmed = _message(market, "payin.confirmed", topup["airtm_payin_id"])
    headers = _signed(confirmed.body, message_id=confirmed.message_id)
    answers = await asyncio.gather(
        *(market.api.client.post(AIRTM, content=confirmed.body, headers=headers) for _ in range(10))
    )
    assert [a.status_code for a in answers] == [200] * 10
    assert sorted(a.json()["duplicate"] for a in answers) == [False] + [True] * 9
    assert len(await _events(market.pool)) == 1
    assert await _status(market, f"/topups/{topup['id']}") == "TOPUP_SUCCEEDED"
    assert await _credits(market, topup["id"]) == 1
    assert await market.posted(f"user:{user}") == 125 * USDC // 10
    # One audit entry for the one stored event, by the provider, in the marketplace's chain.
    audited = await market.pool.fetch(
        "SELECT actor_type, actor_id, resource_id FROM audit_log"
        " WHERE marketplace_id = $1 AND action = 'WEBHOOK_RECEIVED'",
        market.marketplace_id,
    )
    assert [tuple(row) for row in audited] == [("PROVIDER", "airtm", topup["id"])]


@pytest.mark.db
async def test_out_of_order_and_lying_news_never_move_back(market: Market) -> None:
    user = await market.user()
    topup = await _topup(market, user, "9")
    payin_id = topup["airtm_payin_id"]
    created = _message(market, "payin.created", payin_id)
    # A signed payin.confirmed whose payin Airtm still holds as CREATED: re-read, not trusted.
    early = created.body.replace(b'"payin.created"', b'"payin.confirmed"').replace(
        b'"CREATED"', b'"CONFIRMED"'
    )
    lying = await _post_airtm(market.api.client, early, message_id="msg_early")
    assert lying.status_code == 200
    assert await _status(market, f"/topups/{topup['id']}") == "TOPUP_AWAITING_USER_CONFIRMATION"
    assert (await market.balance(user))["available"] == "0.00"

    _airtm(market).payer_confirms(payin_id)
    confirmed = _message(market, "payin.confirmed", payin_id)
    await _post_airtm(market.api.client, confirmed.body, message_id=confirmed.message_id)
    # payin.created arrives last: ignored, the top-up stays SUCCEEDED.
    late = await _post_airtm(market.api.client, created.body, message_id=created.message_id)
    assert late.json() == {"status": "ok", "duplicate": False}
    assert await _status(market, f"/topups/{topup['id']}") == "TOPUP_SUCCEEDED"
    assert await _credits(market, topup["id"]) == 1
    events = await _events(market.pool)
    assert [(e["provider_event_id"], e["status"], e["outcome"]) for e in events] == [
        ("msg_early", "IGNORED", "duplicate"),
        (confirmed.message_id, "APPLIED", "TOPUP_SUCCEEDED"),
        (created.message_id, "IGNORED", "final:TOPUP_SUCCEEDED"),
    ]


async def _park_payout_polling(market: Market, withdrawal_id: str) -> None:
    """Once the payout operation has polled once, push its next poll out of the test's way.

    Otherwise its poll (every 5 s) could complete the withdrawal before the webhook does.
    """
    for _ in range(200):
        parked = await market.pool.fetchval(
            "UPDATE operations SET next_attempt_at = now() + interval '1 hour'"
            " WHERE resource_id = $1 AND status = 'RUNNING'"
            " AND last_error->>'error' = 'PayoutPending' RETURNING id",
            withdrawal_id,
        )
        if parked is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the payout operation never polled")


@pytest.mark.db
async def test_payout_completed_completes_the_withdrawal(market: Market) -> None:
    user = await market.user()
    await market.credit(user, "100")
    body = {
        "user_id": user,
        "amount": "40",
        "destination_type": "airtm_balance",
        "destination_ref": PAYEE,
        "commit": True,
    }
    created = await market.post("/withdrawals", body)
    assert created.status_code == 201, created.text
    withdrawal = created.json()
    assert withdrawal["status"] == "WITHDRAWAL_COMMITTED"
    assert (await market.balance(user))["reserved"] == "40.00"
    payout_id = withdrawal["airtm_payout_id"]
    await _park_payout_polling(market, withdrawal["id"])
    _airtm(market).payout_completes(payout_id)
    completed = _message(market, "payout.completed", payout_id)

    answered = await _post_airtm(market.api.client, completed.body, message_id=completed.message_id)
    assert answered.json() == {"status": "ok", "duplicate": False}
    assert await _status(market, f"/withdrawals/{withdrawal['id']}") == "WITHDRAWAL_COMPLETED"
    assert await market.balance(user) == {
        "available": "60.00",
        "reserved": "0.00",
        "total": "60.00",
    }
    [event] = await _events(market.pool)
    assert (event["status"], event["resource_type"], event["resource_id"]) == (
        "APPLIED",
        "withdrawal",
        withdrawal["id"],
    )
    # A late payout.created for the completed withdrawal changes nothing.
    early = _message(market, "payout.created", payout_id)
    await _post_airtm(market.api.client, early.body, message_id=early.message_id)
    assert await _status(market, f"/withdrawals/{withdrawal['id']}") == "WITHDRAWAL_COMPLETED"
    assert await market.posted(f"user:{user}") == 60 * USDC


@pytest.mark.db
async def test_processing_failure_is_retried_internally(market: Market) -> None:
    user = await market.user()
    topup = await _topup(market, user, "5")
    _airtm(market).payer_confirms(topup["airtm_payin_id"])
    confirmed = _message(market, "payin.confirmed", topup["airtm_payin_id"])
    faults = market.sandbox_api.sandbox.faults
    faults.add("airtm", "GET", "/payins", "status:503", count=1000)
    answered = await _post_airtm(market.api.client, confirmed.body)
    assert answered.json() == {"status": "ok", "duplicate": False}
    [event] = await _events(market.pool)
    assert (event["status"], event["attempts"]) == ("FAILED", 1)
    assert "ProviderUnavailable" in event["error"]
    assert await _status(market, f"/topups/{topup['id']}") == "TOPUP_AWAITING_USER_CONFIRMATION"

    faults.clear()
    # Skip the backoff; the runtime's retrier (polling every 0.2 s here) does the rest.
    await market.pool.execute("UPDATE provider_events SET next_attempt_at = now()")
    for _ in range(100):
        [event] = await _events(market.pool)
        if event["status"] != "FAILED":
            break
        await asyncio.sleep(0.05)
    assert (event["status"], event["attempts"], event["error"]) == ("APPLIED", 2, None)
    assert await _status(market, f"/topups/{topup['id']}") == "TOPUP_SUCCEEDED"
    assert await _credits(market, topup["id"]) == 1


_OUTCOMES = {
    "confirm": ("payin.confirmed", "TOPUP_SUCCEEDED"),
    "cancel": ("payin.canceled", "TOPUP_CANCELED"),
    "fail": ("payin.failed", "TOPUP_FAILED"),
}


@pytest.mark.db
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    outcome=st.sampled_from(sorted(_OUTCOMES)),
    finals=st.lists(st.booleans(), min_size=1, max_size=6),
)
async def test_any_delivery_order_ends_where_airtm_is(
    market: Market, outcome: str, finals: list[bool]
) -> None:
    """Created and final messages, each delivered any number of times in any order."""
    user = await market.user()
    topup = await _topup(market, user, "3")
    payin_id = topup["airtm_payin_id"]
    act = {"confirm": _airtm(market).payer_confirms, "cancel": _airtm(market).payer_cancels}
    act.get(outcome, _airtm(market).payer_fails)(payin_id)
    final_type, final_status = _OUTCOMES[outcome]
    created, final = (
        _message(market, "payin.created", payin_id),
        _message(market, final_type, payin_id),
    )
    seen: set[str] = set()
    for is_final in finals:
        message = final if is_final else created
        answer = await _post_airtm(market.api.client, message.body, message_id=message.message_id)
        assert answer.json() == {"status": "ok", "duplicate": message.message_id in seen}
        seen.add(message.message_id)

    status = await _status(market, f"/topups/{topup['id']}")
    # Every message re-reads the payin, so even a lone payin.created ends the top-up.
    assert status == final_status
    assert await _credits(market, topup["id"]) == (1 if outcome == "confirm" else 0)
    stored = await market.pool.fetch(
        "SELECT status, outcome FROM provider_events WHERE resource_id = $1", topup["id"]
    )
    assert len(stored) == len(seen)
    assert [row["outcome"] for row in stored].count(final_status) == 1


# -- the sandbox delivering its own webhooks -------------------------------------------------


@pytest.mark.db
async def test_sandbox_airtm_delivers_its_webhooks(db_dsn: str, pool: asyncpg.Pool) -> None:
    async with running_api_on_sandbox(db_dsn, wait_s=3.0, airtm_webhooks=True) as api:
        market = await new_market(api, pool)
        sandbox = api.sandbox
        user = await market.user()
        topup = await _topup(market, user, "30")
        control = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=sandbox.asgi_app()), base_url="http://sandbox.test"
        )
        sandbox.faults.add("airtm", "WEBHOOK", "payin.confirmed", "duplicate_webhook")
        async with control:
            path = f"/_sandbox/control/airtm/payins/{topup['airtm_payin_id']}/confirm"
            confirmed = await control.post(path)
            assert confirmed.status_code == 200, confirmed.text
        # The control action delivered the webhooks before answering: no refresh needed.
        assert await _status(market, f"/topups/{topup['id']}") == "TOPUP_SUCCEEDED"
        assert await market.posted(f"user:{user}") == 30 * USDC
        assert await _credits(market, topup["id"]) == 1
    # Each message is stored once (the duplicated delivery included). Whichever arrives first
    # after the payer confirmed applies what Airtm says now (the payin is re-read): that may be
    # payin.created, delivered late by the pump; the other then finds the top-up final.
    events = await _events(pool)
    assert sorted(e["type"] for e in events) == ["payin.confirmed", "payin.created"]
    assert {e["status"] for e in events} <= {"APPLIED", "IGNORED"}
    assert [e["outcome"] for e in events].count("TOPUP_SUCCEEDED") == 1


# -- Trustless Work hints --------------------------------------------------------------------


async def _post_tw(market: Market, event_id: str, contract_id: str) -> httpx.Response:
    # The payload claims the escrow is funded; a hint must never apply that by itself.
    data = {"contract_id": contract_id, "status": "FUNDED", "amount": 30, "transaction_hash": None}
    body = msgspec.json.encode({"type": "escrow.funded", "event_id": event_id, "data": data})
    headers = {tw.SIGNATURE_HEADER: tw.sign(TW_SECRET, body), "content-type": "application/json"}
    return await market.api.client.post(TW, content=body, headers=headers)


@pytest.mark.db
async def test_trustless_work_hint_wakes_the_running_operation_only(market: Market) -> None:
    buyer, seller = await market.parties(deposit=("30", 30 * USDC))
    order = await market.order(buyer, seller, "30")
    path = f"/orders/{order['id']}"
    await market.step(f"{path}/reserve")
    await market.step(f"{path}/escrow", status=201)
    contract_id = await market.pool.fetchval(
        "SELECT contract_id FROM escrows WHERE order_id = $1", order["id"]
    )
    idle = await _post_tw(market, "tw-idle", contract_id)
    assert idle.json() == {"status": "ok", "duplicate": False}

    market.sandbox_api.sandbox.faults.add(
        "trustless_work", "POST", "/escrow/single-release/fund-escrow", "status:503", count=1000
    )
    funding = await market.post(f"{path}/escrow/fund")
    assert funding.status_code == 202, funding.text
    operation_id = funding.json()["operation"]["id"]
    busy = await _post_tw(market, "tw-busy", contract_id)
    assert busy.json() == {"status": "ok", "duplicate": False}
    repeat = await _post_tw(market, "tw-busy", contract_id)
    assert repeat.json() == {"status": "ok", "duplicate": True}

    events = await _events(market.pool)
    assert [(e["provider_event_id"], e["status"], e["outcome"]) for e in events] == [
        ("tw-idle", "IGNORED", "no_running_operation"),
        ("tw-busy", "APPLIED", f"woke:{operation_id}"),
    ]
    assert {e["resource_type"] for e in events} == {"escrow"}
    current = (await market.get(path)).json()
    assert (current["status"], current["escrow"]["status"]) == ("ESCROW_FUNDING", "FUNDING")
