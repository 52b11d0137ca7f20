"""Outbound webhook endpoints over HTTP (api.md 3.10): every route, its errors, scopes and
tenancy, and the background delivery to a real receiver on 127.0.0.1.

The app runs with its sandbox runtime (the keyring seals the secrets; the dispatcher of the
lifespan delivers), insecure URLs allowed so that the local receiver can be the target.
"""

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from api.settings import SettingsError, load_settings
from tests.api.support import (
    MASTER_KEY,
    SandboxApi,
    running_api,
    running_api_on_sandbox,
    settings_for_tests,
)
from tests.db.webhook_receiver import running_receiver

pytestmark = pytest.mark.db

BASE = "/api/v1/webhook-endpoints"
SECRET_FORM = re.compile(r"whsec_[A-Za-z0-9_-]{43}")
NOWHERE = "http://127.0.0.1:9/hooks"  # never contacted: these endpoints see no matching events


@pytest.fixture
async def api(db_dsn: str) -> AsyncIterator[SandboxApi]:
    """The app with insecure URLs allowed, fast polling and slow retries."""
    settings = settings_for_tests(
        webhook_allow_insecure_urls=True,
        webhook_poll_interval_s=0.05,
        webhook_backoff_base_s=3600.0,
    )
    async with running_api_on_sandbox(db_dsn, settings=settings) as running:
        yield running


async def _create(api: SandboxApi, key: str, **body: Any) -> dict[str, Any]:
    response = await api.post(BASE, key, {"url": NOWHERE, **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _delete(api: SandboxApi, key: str, endpoint_id: str) -> httpx.Response:
    return await api.client.delete(f"{BASE}/{endpoint_id}", headers=api.auth(key))


def _fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 400, response.text
    body = response.json()["error"]
    assert body["code"] == "VALIDATION_ERROR"
    return [item["field"] for item in body["details"]["fields"]]


def _code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_create_read_list_and_replay(api: SandboxApi) -> None:
    _, key = await api.tenant(["admin"])
    body = {"url": NOWHERE, "description": "orders", "event_types": ["order.*", "user.created"]}
    created = await api.post(BASE, key, body, idempotency_key="whe-1")
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["id"].startswith("whe_")
    assert len(endpoint["id"]) == 36
    assert created.headers["location"] == f"{BASE}/{endpoint['id']}"
    assert SECRET_FORM.fullmatch(endpoint["secret"])
    assert endpoint["url"] == NOWHERE
    assert endpoint["description"] == "orders"
    assert endpoint["event_types"] == ["order.*", "user.created"]
    assert endpoint["secret_rotated_at"] is None
    assert endpoint["previous_secret_expires_at"] is None
    assert endpoint["created_at"].endswith("Z")
    assert endpoint["updated_at"].endswith("Z")
    without_secret = {name: value for name, value in endpoint.items() if name != "secret"}

    replay = await api.post(BASE, key, body, idempotency_key="whe-1")
    assert replay.status_code == 201
    assert replay.headers["idempotency-replayed"] == "true"
    assert replay.json() == without_secret  # the secret is shown once

    fetched = await api.get(f"{BASE}/{endpoint['id']}", key)
    assert fetched.status_code == 200
    assert fetched.json() == without_secret
    listed = await api.get(BASE, key)
    assert listed.json() == {
        "data": [without_secret],
        "pagination": {"has_more": False, "next_cursor": None},
    }
    # The secret is stored sealed, never in plaintext.
    [row] = await _query(api.dsn, "SELECT secret_sealed FROM webhook_endpoints")
    assert endpoint["secret"] not in row["secret_sealed"]


async def test_defaults_and_pagination_newest_first(api: SandboxApi) -> None:
    _, key = await api.tenant(["admin"])
    ids = [(await _create(api, key))["id"] for _ in range(3)]
    assert (await api.get(f"{BASE}/{ids[0]}", key)).json()["event_types"] == ["*"]
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        params: dict[str, Any] = {"limit": 1} if cursor is None else {"limit": 1, "cursor": cursor}
        page = (await api.get(BASE, key, **params)).json()
        seen += [item["id"] for item in page["data"]]
        cursor = page["pagination"]["next_cursor"]
    assert seen == list(reversed(ids))
    assert cursor is None
    assert _fields(await api.get(BASE, key, limit=0)) == ["query.limit"]
    assert _fields(await api.get(BASE, key, cursor="c_bogus")) == ["query.cursor"]


async def test_invalid_input_is_refused_and_nothing_is_written(db_dsn: str) -> None:
    async with running_api_on_sandbox(db_dsn) as api:  # insecure URLs not allowed here
        _, key = await api.tenant(["admin"])
        cases: list[tuple[dict[str, Any], list[str]]] = [
            ({"url": "http://hooks.example.com/x"}, ["url"]),
            ({"url": "https://127.0.0.1/x"}, ["url"]),
            ({"url": "https://10.0.0.8/x"}, ["url"]),
            ({"url": "https://169.254.169.254/x"}, ["url"]),
            ({"url": "https://localhost/x"}, ["url"]),
            ({"url": "https://" + "a" * 2048}, ["url"]),
            (
                {"url": "https://ok.example.com", "event_types": ["*", "order.nope"]},
                ["event_types[1]"],
            ),
            ({"url": "ftp://x", "event_types": ["nope.*"]}, ["url", "event_types[0]"]),
            ({"url": "https://ok.example.com", "event_types": []}, ["event_types"]),
            ({"url": "https://ok.example.com", "event_types": ["*"] * 101}, ["event_types"]),
            ({"url": "https://ok.example.com", "description": "d" * 256}, ["description"]),
            ({"url": "https://ok.example.com", "colour": "red"}, ["colour"]),
            ({}, ["url"]),
        ]
        for body, fields in cases:
            assert _fields(await api.post(BASE, key, body)) == fields, body
        # A public https URL is fine without the insecure setting.
        ok = await api.post(BASE, key, {"url": "https://hooks.example.com/x"})
        assert ok.status_code == 201, ok.text
        rows = await _query(api.dsn, "SELECT url FROM webhook_endpoints")
        assert [row["url"] for row in rows] == ["https://hooks.example.com/x"]


async def test_every_route_needs_the_admin_scope(api: SandboxApi) -> None:
    _, admin = await api.tenant(["admin"])
    _, others = await api.tenant(["read", "write", "support"])
    endpoint_id = (await _create(api, admin))["id"]
    delivery = f"{BASE}/{endpoint_id}/deliveries/whd_{'0' * 32}/redeliver"
    for key in (others, MASTER_KEY):
        responses = [
            await api.post(BASE, key, {"url": NOWHERE}),
            await api.get(BASE, key),
            await api.get(f"{BASE}/{endpoint_id}", key),
            await _delete(api, key, endpoint_id),
            await api.post(f"{BASE}/{endpoint_id}/rotate-secret", key),
            await api.get(f"{BASE}/{endpoint_id}/deliveries", key),
            await api.post(delivery, key),
        ]
        assert [response.status_code for response in responses] == [403] * 7
        assert {_code(response) for response in responses} == {"INSUFFICIENT_SCOPE"}
    assert (await api.get(f"{BASE}/{endpoint_id}", admin)).status_code == 200


async def test_another_marketplaces_endpoint_is_not_found(api: SandboxApi) -> None:
    _, owner = await api.tenant(["admin"])
    _, stranger = await api.tenant(["admin"])
    endpoint_id = (await _create(api, owner))["id"]
    for target in (endpoint_id, "whe_" + "0" * 32, "nonsense"):
        responses = [
            await api.get(f"{BASE}/{target}", stranger),
            await _delete(api, stranger, target),
            await api.post(f"{BASE}/{target}/rotate-secret", stranger),
            await api.get(f"{BASE}/{target}/deliveries", stranger),
            await api.post(f"{BASE}/{target}/deliveries/whd_{'0' * 32}/redeliver", stranger),
        ]
        assert [response.status_code for response in responses] == [404] * 5, target
        assert {_code(response) for response in responses} == {"WEBHOOK_ENDPOINT_NOT_FOUND"}
    assert (await api.get(BASE, stranger)).json()["data"] == []
    assert (await api.get(f"{BASE}/{endpoint_id}", owner)).status_code == 200


async def test_rotate_secret_with_default_zero_and_invalid_grace(api: SandboxApi) -> None:
    _, key = await api.tenant(["admin"])
    endpoint = await _create(api, key)
    path = f"{BASE}/{endpoint['id']}/rotate-secret"

    rotated = await api.post(path, key, idempotency_key="rot-1")
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert SECRET_FORM.fullmatch(body["secret"])
    assert body["secret"] != endpoint["secret"]
    expires = _time(body["previous_secret_expires_at"]) - _time(body["secret_rotated_at"])
    assert abs(expires - timedelta(seconds=86_400)) < timedelta(seconds=1)
    replay = await api.post(path, key, idempotency_key="rot-1")
    assert replay.headers["idempotency-replayed"] == "true"
    assert "secret" not in replay.json()
    assert replay.json()["secret_rotated_at"] == body["secret_rotated_at"]

    week = await api.post(path, key, {"grace_period_seconds": 604_800})
    expires = _time(week.json()["previous_secret_expires_at"]) - _time(
        week.json()["secret_rotated_at"]
    )
    assert abs(expires - timedelta(days=7)) < timedelta(seconds=1)
    now = await api.post(path, key, {"grace_period_seconds": 0})
    assert now.status_code == 200
    assert now.json()["previous_secret_expires_at"] is None
    assert len({body["secret"], week.json()["secret"], now.json()["secret"]}) == 3

    for bad in (-1, 604_801, "60", 1.5):
        assert _fields(await api.post(path, key, {"grace_period_seconds": bad})) == [
            "grace_period_seconds"
        ]

    # Each change is audited as the calling key; no secret reaches the audit log.
    entries = await _query(
        api.dsn,
        "SELECT action, actor_type, summary::text AS summary FROM audit_log"
        " WHERE resource_id = $1 ORDER BY chain_index",
        endpoint["id"],
    )
    assert [entry["action"] for entry in entries] == [
        "WEBHOOK_ENDPOINT_CREATED",
        *["WEBHOOK_ENDPOINT_SECRET_ROTATED"] * 3,
    ]
    assert {entry["actor_type"] for entry in entries} == {"API_KEY"}
    shown = [endpoint["secret"], body["secret"], week.json()["secret"], now.json()["secret"]]
    assert not any(secret in entry["summary"] for entry in entries for secret in shown)
    assert "whsec_" not in "".join(entry["summary"] for entry in entries)


async def _wait_for_status(
    api: SandboxApi, key: str, endpoint_id: str, status: str, count: int = 1
) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = []
    for _ in range(200):
        page = await api.get(f"{BASE}/{endpoint_id}/deliveries", key, status=status)
        data = page.json()["data"]
        if len(data) >= count:
            return data
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {status} delivery: {data}")


async def _new_user(api: SandboxApi, key: str) -> str:
    body = {"external_user_id": f"ext-{uuid.uuid4().hex[:8]}"}
    response = await api.post("/api/v1/users", key, body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_events_are_delivered_signed_listed_and_redelivered(api: SandboxApi) -> None:
    marketplace_id, key = await api.tenant(["*"])
    async with running_receiver() as receiver:
        endpoint = await _create(api, key, url=receiver.url, event_types=["user.*"])
        receiver.secrets = [endpoint["secret"]]
        user_id = await _new_user(api, key)
        [delivered] = await _wait_for_status(api, key, endpoint["id"], "SUCCEEDED")

        [request] = receiver.requests
        assert request.verified_with == [endpoint["secret"]]
        assert request.headers["offerhub-event-type"] == "user.created"
        assert request.headers["offerhub-delivery-id"] == delivered["id"]
        assert delivered["endpoint_id"] == endpoint["id"]
        assert delivered["event_type"] == "user.created"
        assert delivered["event_id"] == request.headers["offerhub-event-id"]
        assert delivered["attempts"] == 1
        assert delivered["last_response_status"] == 200
        assert delivered["next_attempt_at"] is None
        assert delivered["redelivery_of"] is None
        assert delivered["completed_at"].endswith("Z")
        assert isinstance(delivered["event_sequence"], int)
        assert f'"resource_id":"{user_id}"'.encode() in request.body
        assert f'"marketplace_id":"{marketplace_id}"'.encode() in request.body

        await _check_delivery_filters(api, key, endpoint["id"], delivered)

        path = f"{BASE}/{endpoint['id']}/deliveries/{delivered['id']}/redeliver"
        again = await api.post(path, key, idempotency_key="again-1")
        assert again.status_code == 202, again.text
        copy = again.json()
        replay = await api.post(path, key, idempotency_key="again-1")
        assert replay.headers["idempotency-replayed"] == "true"
        assert replay.json() == copy  # no second redelivery
        assert copy["status"] == "PENDING"
        assert copy["redelivery_of"] == delivered["id"]
        assert copy["event_id"] == delivered["event_id"]
        assert copy["attempts"] == 0
        assert again.headers["location"].startswith(f"{BASE}/{endpoint['id']}/deliveries")
        await receiver.wait_for(2)
        assert receiver.requests[1].body == request.body
        assert receiver.requests[1].headers["offerhub-delivery-id"] == copy["id"]
        await _wait_for_status(api, key, endpoint["id"], "SUCCEEDED", count=2)
        assert len(receiver.requests) == 2

    unknown = await api.post(f"{BASE}/{endpoint['id']}/deliveries/whd_{'0' * 32}/redeliver", key)
    assert unknown.status_code == 404
    assert _code(unknown) == "WEBHOOK_DELIVERY_NOT_FOUND"
    other = await _create(api, key)
    foreign = await api.post(f"{BASE}/{other['id']}/deliveries/{delivered['id']}/redeliver", key)
    assert _code(foreign) == "WEBHOOK_DELIVERY_NOT_FOUND"


async def _check_delivery_filters(
    api: SandboxApi, key: str, endpoint_id: str, delivered: dict[str, Any]
) -> None:
    path = f"{BASE}/{endpoint_id}/deliveries"

    async def ids(**params: Any) -> list[str]:
        response = await api.get(path, key, **params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["data"]]

    assert await ids() == [delivered["id"]]
    assert await ids(event_type="user.created") == [delivered["id"]]
    assert await ids(event_type="order.created") == []
    assert await ids(event_id=delivered["event_id"]) == [delivered["id"]]
    assert await ids(status="PENDING,FAILED") == []
    assert await ids(status="SUCCEEDED,CANCELED") == [delivered["id"]]
    assert _fields(await api.get(path, key, status="DONE")) == ["query.status"]
    assert _fields(await api.get(path, key, colour="red")) == ["query.colour"]


async def test_delete_cancels_pending_deliveries_and_hides_the_endpoint(api: SandboxApi) -> None:
    _, key = await api.tenant(["*"])
    async with running_receiver(lambda _: 500) as receiver:
        endpoint = await _create(api, key, url=receiver.url, event_types=["user.created"])
        await _new_user(api, key)
        await _new_user(api, key)
        await receiver.wait_for(2)
        # Both failed once and wait an hour for their retry.
        await _wait_for_status(api, key, endpoint["id"], "PENDING", count=2)
        pending = (await api.get(f"{BASE}/{endpoint['id']}/deliveries", key)).json()["data"]
        assert all(item["attempts"] == 1 and item["last_error"] == "HTTP 500" for item in pending)

        deleted = await _delete(api, key, endpoint["id"])
        assert deleted.status_code == 204
        assert deleted.content == b""
    _assert_gone(await api.get(f"{BASE}/{endpoint['id']}", key))
    _assert_gone(await _delete(api, key, endpoint["id"]))
    _assert_gone(await api.get(f"{BASE}/{endpoint['id']}/deliveries", key))
    assert (await api.get(BASE, key)).json()["data"] == []
    rows = await _query(
        api.dsn,
        "SELECT status, next_attempt_at, completed_at FROM webhook_deliveries"
        " WHERE endpoint_id = $1",
        endpoint["id"],
    )
    assert [row["status"] for row in rows] == ["CANCELED", "CANCELED"]
    assert all(row["next_attempt_at"] is None and row["completed_at"] for row in rows)
    # A deleted endpoint gets no new deliveries.
    await _new_user(api, key)
    count = await _query(
        api.dsn,
        "SELECT count(*) AS n FROM webhook_deliveries WHERE endpoint_id = $1",
        endpoint["id"],
    )
    assert count[0]["n"] == 2


def _assert_gone(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    assert _code(response) == "WEBHOOK_ENDPOINT_NOT_FOUND"


async def test_an_endpoint_receives_only_matching_events(api: SandboxApi) -> None:
    _, key = await api.tenant(["*"])
    async with running_receiver() as receiver:
        wallets = await _create(api, key, url=receiver.url, event_types=["wallet.*"])
        receiver.secrets = [wallets["secret"]]
        await _new_user(api, key)
        await _wait_for_status(api, key, wallets["id"], "SUCCEEDED")
        await asyncio.sleep(0.2)  # nothing else may arrive
    types = [request.headers["offerhub-event-type"] for request in receiver.requests]
    assert types == ["wallet.created"]
    assert receiver.requests[0].verified_with == [wallets["secret"]]


async def test_without_a_runtime_secrets_cannot_be_sealed(db_dsn: str) -> None:
    async with running_api(db_dsn) as plain:
        _, key = await plain.tenant(["admin"])
        response = await plain.post(BASE, key, {"url": "https://hooks.example.com/x"})
        assert response.status_code == 503
        assert _code(response) == "PROVIDER_UNAVAILABLE"
        assert (await plain.get(BASE, key)).json()["data"] == []


def test_webhook_settings_come_from_the_environment() -> None:
    defaults = load_settings({})
    assert defaults.webhook_allow_insecure_urls is False
    assert defaults.webhook_backoff_base_s == 30
    assert defaults.webhook_backoff_max_s == 6 * 3600
    assert defaults.webhook_max_age_s == 3 * 86400
    assert defaults.webhook_poll_interval_s == 1
    configured = load_settings(
        {
            "OFFERHUB_WEBHOOK_ALLOW_INSECURE_URLS": "true",
            "OFFERHUB_WEBHOOK_BACKOFF_BASE_S": "5",
            "OFFERHUB_WEBHOOK_BACKOFF_MAX_S": "60",
            "OFFERHUB_WEBHOOK_MAX_AGE_S": "3600",
            "OFFERHUB_WEBHOOK_POLL_INTERVAL_S": "2",
        }
    )
    assert configured.webhook_allow_insecure_urls is True
    assert (configured.webhook_backoff_base_s, configured.webhook_backoff_max_s) == (5, 60)
    assert (configured.webhook_max_age_s, configured.webhook_poll_interval_s) == (3600, 2)
    with pytest.raises(SettingsError, match="OFFERHUB_WEBHOOK_ALLOW_INSECURE_URLS"):
        load_settings({"OFFERHUB_WEBHOOK_ALLOW_INSECURE_URLS": "maybe"})
    with pytest.raises(SettingsError, match="OFFERHUB_WEBHOOK_BACKOFF_BASE_S"):
        load_settings({"OFFERHUB_WEBHOOK_BACKOFF_BASE_S": "0"})
