"""Users over HTTP (api.md 3.3): create (idempotent on external_user_id), read, list, tenancy.

Users are created on the real app with its sandbox runtime, so each new user's wallet is
activated in the background by the operation runner, exactly as in production.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.api.support import SandboxApi, running_api, running_api_on_sandbox

pytestmark = pytest.mark.db

USERS = "/api/v1/users"


@pytest.fixture
async def sandbox_api(db_dsn: str) -> AsyncIterator[SandboxApi]:
    """The app with its sandbox runtime and background runner."""
    async with running_api_on_sandbox(db_dsn) as running:
        yield running


async def _fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def wait_for_active_wallet(api: SandboxApi, key: str, user_id: str) -> dict[str, Any]:
    """Poll GET wallet until the background activation has landed (a few seconds at most)."""
    body: dict[str, Any] = {}
    for _ in range(100):
        response = await api.get(f"{USERS}/{user_id}/wallet", key)
        assert response.status_code == 200, response.text
        body = response.json()
        if body["is_active"]:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"wallet never activated: {body}")


def _fields(response: httpx.Response) -> set[str]:
    return {item["field"] for item in response.json()["error"]["details"]["fields"]}


async def test_a_new_user_gets_an_activated_wallet_and_a_replay_creates_nothing(
    sandbox_api: SandboxApi,
) -> None:
    api = sandbox_api
    marketplace_id, key = await api.tenant(["write", "read"])
    body = {"external_user_id": "ext-1", "email": "ana@example.com", "type": "seller"}
    created = await api.post(USERS, key, body, idempotency_key="create-ext-1")
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["id"].startswith("usr_")
    assert created.headers["location"] == f"{USERS}/{user['id']}"
    assert user["type"] == "SELLER"
    assert user["status"] == "ACTIVE"
    assert user["email"] == "ana@example.com"
    assert user["wallet"]["id"].startswith("wal_")
    assert user["wallet"]["public_key"].startswith("G")
    for nullable in ("airtm_user_id", "airtm_email", "airtm_linked_at", "metadata"):
        assert user[nullable] is None
    assert user["created_at"].endswith("Z")

    wallet = await wait_for_active_wallet(api, key, user["id"])
    assert wallet["funded"] is True
    assert wallet["trustline_ready"] is True
    assert wallet["public_key"] == user["wallet"]["public_key"]

    # Same key, same body: the stored 201 is replayed, nothing runs.
    replay = await api.post(USERS, key, body, idempotency_key="create-ext-1")
    assert replay.status_code == 201
    assert replay.headers["idempotency-replayed"] == "true"
    assert replay.json() == user
    # A new key for the same external id: 200 with the user unchanged, whatever else is sent.
    again = await api.post(USERS, key, {**body, "email": "other@example.com", "type": "BUYER"})
    assert again.status_code == 200
    assert "location" not in again.headers
    assert again.json() == user
    fetched = await api.get(f"{USERS}/{user['id']}", key)
    assert fetched.status_code == 200
    assert fetched.json() == user

    events = await _fetch(
        api.dsn,
        "SELECT type FROM events WHERE marketplace_id = $1 AND type IN ($2, $3) ORDER BY sequence",
        marketplace_id,
        "user.created",
        "wallet.created",
    )
    assert [event["type"] for event in events] == ["user.created", "wallet.created"]
    counts = await _fetch(
        api.dsn,
        "SELECT (SELECT count(*) FROM users WHERE marketplace_id = $1) AS users,"
        " (SELECT count(*) FROM wallets WHERE marketplace_id = $1) AS wallets,"
        " (SELECT count(*) FROM operations WHERE marketplace_id = $1) AS operations",
        marketplace_id,
    )
    assert dict(counts[0]) == {"users": 1, "wallets": 1, "operations": 1}


async def test_concurrent_creates_of_one_external_id_make_one_user(
    sandbox_api: SandboxApi,
) -> None:
    api = sandbox_api
    marketplace_id, key = await api.tenant(["write"])
    body = {"external_user_id": "racer", "metadata": {"tier": "gold", "tags": ["a"]}}
    answers = await asyncio.gather(*(api.post(USERS, key, body) for _ in range(6)))
    assert sorted(answer.status_code for answer in answers) == [200] * 5 + [201]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert answers[0].json()["metadata"] == {"tier": "gold", "tags": ["a"]}
    rows = await _fetch(api.dsn, "SELECT id FROM users WHERE marketplace_id = $1", marketplace_id)
    assert len(rows) == 1


async def test_list_filters_and_pages_newest_first(sandbox_api: SandboxApi) -> None:
    api = sandbox_api
    _, key = await api.tenant(["write", "read"])
    created = []
    for index, kind in enumerate(["BUYER", "SELLER", "BOTH", "buyer", "Seller"]):
        answer = await api.post(USERS, key, {"external_user_id": f"u{index}", "type": kind})
        created.append(answer.json())
    newest_first = [user["id"] for user in reversed(created)]

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await api.get(USERS, key, **params)
        assert page.status_code == 200, page.text
        seen += [user["id"] for user in page.json()["data"]]
        cursor = page.json()["pagination"]["next_cursor"]
        assert page.json()["pagination"]["has_more"] is (cursor is not None)
        if cursor is None:
            break
    assert seen == newest_first

    buyers = await api.get(USERS, key, type="buyer")
    assert [user["external_user_id"] for user in buyers.json()["data"]] == ["u3", "u0"]
    both = await api.get(USERS, key, type="BOTH,seller")
    assert [user["external_user_id"] for user in both.json()["data"]] == ["u4", "u2", "u1"]
    one = await api.get(USERS, key, external_user_id="u2")
    assert [user["id"] for user in one.json()["data"]] == [created[2]["id"]]
    active = await api.get(USERS, key, status="ACTIVE,SUSPENDED")
    assert len(active.json()["data"]) == 5
    assert (await api.get(USERS, key, status="SUSPENDED")).json()["data"] == []
    middle = created[2]["created_at"]
    after = await api.get(USERS, key, created_after=middle)
    assert [user["external_user_id"] for user in after.json()["data"]] == ["u4", "u3", "u2"]
    before = await api.get(USERS, key, created_before=middle)
    assert [user["external_user_id"] for user in before.json()["data"]] == ["u1", "u0"]

    first = await api.get(USERS, key, limit=1)
    other_filters = await api.get(
        USERS, key, type="BUYER", cursor=first.json()["pagination"]["next_cursor"]
    )
    assert other_filters.status_code == 400
    assert _fields(other_filters) == {"query.cursor"}
    bad_queries: list[tuple[dict[str, Any], str]] = [
        ({"type": "ADMIN"}, "query.type"),
        ({"status": "GONE"}, "query.status"),
        ({"created_after": "2026-01-12"}, "query.created_after"),
        ({"created_before": "2026-01-12T10:00:00"}, "query.created_before"),
        ({"limit": 0}, "query.limit"),
        ({"limit": 101}, "query.limit"),
        ({"cursor": "c_garbage"}, "query.cursor"),
        ({"colour": "red"}, "query.colour"),
    ]
    for bad_params, field in bad_queries:
        bad = await api.get(USERS, key, **bad_params)
        assert bad.status_code == 400, (bad_params, bad.text)
        assert bad.json()["error"]["code"] == "VALIDATION_ERROR"
        assert _fields(bad) == {field}, bad_params


async def test_bad_create_bodies_are_400_and_create_nothing(sandbox_api: SandboxApi) -> None:
    api = sandbox_api
    marketplace_id, key = await api.tenant(["write"])
    cases: list[tuple[Any, set[str]]] = [
        ({}, {"external_user_id"}),
        ({"external_user_id": ""}, {"external_user_id"}),
        ({"external_user_id": "x" * 256}, {"external_user_id"}),
        ({"external_user_id": 5}, {"external_user_id"}),
        ({"external_user_id": "a", "email": "not-an-email"}, {"email"}),
        ({"external_user_id": "a", "email": "a@" + "b" * 250 + ".co"}, {"email"}),
        ({"external_user_id": "a", "type": "ADMIN"}, {"type"}),
        ({"external_user_id": "a", "metadata": ["not", "an", "object"]}, {"metadata"}),
        ({"external_user_id": "a", "metadata": {"blob": "x" * 9000}}, {"metadata"}),
        ({"external_user_id": "a", "colour": "red"}, {"colour"}),
        (["external_user_id"], {"body"}),
    ]
    for body, fields in cases:
        answer = await api.post(USERS, key, body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]["code"] == "VALIDATION_ERROR"
        assert _fields(answer) == fields, body
    malformed = await api.client.post(
        USERS,
        content=b'{"external_user_id": ',
        headers=api.auth(key, **{"Idempotency-Key": "k", "Content-Type": "application/json"}),
    )
    assert malformed.status_code == 400
    no_key = await api.client.post(USERS, json={"external_user_id": "a"}, headers=api.auth(key))
    assert _fields(no_key) == {"header.Idempotency-Key"}
    # Optional fields sent as null mean "absent".
    nulls = await api.post(
        USERS, key, {"external_user_id": "nulls", "email": None, "type": None, "metadata": None}
    )
    assert nulls.status_code == 201
    assert nulls.json()["type"] == "BOTH"
    rows = await _fetch(
        api.dsn, "SELECT external_user_id FROM users WHERE marketplace_id = $1", marketplace_id
    )
    assert [row["external_user_id"] for row in rows] == ["nulls"]


async def test_other_marketplaces_and_wrong_ids_get_404_user_not_found(
    sandbox_api: SandboxApi,
) -> None:
    api = sandbox_api
    _, owner = await api.tenant()
    _, stranger = await api.tenant()
    user = (await api.post(USERS, owner, {"external_user_id": "mine"})).json()
    reads = ["", "/wallet", "/wallet/deposit", "/wallet/transactions", "/balance"]
    for user_id in (user["id"], "usr_" + "0" * 32, "ord_" + "0" * 32, "nonsense"):
        caller = stranger if user_id == user["id"] else owner
        for suffix in reads:
            answer = await api.get(f"{USERS}/{user_id}{suffix}", caller)
            assert answer.status_code == 404, (user_id, suffix, answer.text)
            assert answer.json()["error"]["code"] == "USER_NOT_FOUND"
        adjustment = {"direction": "CREDIT", "amount": "1", "reason": "r"}
        posted = await api.post(f"{USERS}/{user_id}/balance/adjustments", caller, adjustment)
        assert posted.json()["error"]["code"] == "USER_NOT_FOUND"
        link = await api.post(f"{USERS}/{user_id}/airtm/link", caller, {"email": "a@b.co"})
        assert link.status_code == 404
        assert link.json()["error"]["code"] == "USER_NOT_FOUND"
    # The stranger's list does not show it; the same external id is free in its marketplace.
    assert (await api.get(USERS, stranger)).json()["data"] == []
    theirs = await api.post(USERS, stranger, {"external_user_id": "mine"})
    assert theirs.status_code == 201
    assert theirs.json()["id"] != user["id"]


async def test_scopes_are_enforced(sandbox_api: SandboxApi) -> None:
    api = sandbox_api
    marketplace_id, reader = await api.tenant(["read"])
    writer = await api.new_key(marketplace_id, ["write"])
    denied = await api.post(USERS, reader, {"external_user_id": "x"})
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "INSUFFICIENT_SCOPE"
    user = (await api.post(USERS, writer, {"external_user_id": "x"})).json()
    assert (await api.get(f"{USERS}/{user['id']}", writer)).status_code == 403
    assert (await api.get(f"{USERS}/{user['id']}", reader)).status_code == 200


async def test_without_providers_creating_a_user_is_503_and_reads_still_work(
    db_dsn: str,
) -> None:
    async with running_api(db_dsn) as api:
        marketplace_id, key = await api.tenant()
        answer = await api.post(USERS, key, {"external_user_id": str(uuid.uuid4())})
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "PROVIDER_UNAVAILABLE"
        assert "retry-after" in answer.headers
        listed = await api.get(USERS, key)
        assert listed.json() == {"data": [], "pagination": {"has_more": False, "next_cursor": None}}
        rows = await _fetch(db_dsn, "SELECT 1 FROM users WHERE marketplace_id = $1", marketplace_id)
        assert rows == []
