"""API keys and marketplaces over HTTP: create, list, revoke, /auth/me, tenancy, the master key."""

import asyncpg
import pytest

from api.api_keys import hash_secret, parse_key
from tests.api.support import MASTER_KEY, Api

pytestmark = pytest.mark.db


async def test_master_creates_and_reads_marketplaces(api: Api) -> None:
    created = await api.post("/api/v1/marketplaces", MASTER_KEY, {"name": "Acme"})
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "Acme"
    assert body["platform_fee_bps"] == 500
    assert body["id"].startswith("mkt_")
    assert body["created_at"].endswith("Z")
    assert created.headers["location"] == f"/api/v1/marketplaces/{body['id']}"
    fetched = await api.get(f"/api/v1/marketplaces/{body['id']}", MASTER_KEY)
    assert fetched.json() == body
    missing = await api.get("/api/v1/marketplaces/mkt_" + "0" * 32, MASTER_KEY)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "MARKETPLACE_NOT_FOUND"
    fee = await api.post("/api/v1/marketplaces", MASTER_KEY, {"name": "B", "platform_fee_bps": 0})
    assert fee.json()["platform_fee_bps"] == 0
    taken = await api.post("/api/v1/marketplaces", MASTER_KEY, {"name": "Acme"})
    assert taken.status_code == 400
    assert taken.json()["error"]["code"] == "INVALID_REQUEST"
    too_high = await api.post(
        "/api/v1/marketplaces", MASTER_KEY, {"name": "C", "platform_fee_bps": 9901}
    )
    assert too_high.json()["error"]["details"]["fields"][0]["field"] == "platform_fee_bps"


async def test_key_lifecycle_create_list_me_revoke(api: Api) -> None:
    marketplace_id, admin = await api.tenant(["admin"])
    created = await api.post(
        "/api/v1/auth/api-keys", admin, {"name": "backend", "scopes": ["read", "write"]}
    )
    assert created.status_code == 201
    key = created.json()
    assert key["scopes"] == ["read", "write"]
    assert key["marketplace_id"] == marketplace_id
    assert key["status"] == "ACTIVE"
    assert key["last_used_at"] is None
    assert key["revoked_at"] is None
    parsed = parse_key(key["key"])
    assert parsed is not None
    assert parsed.env == "test"
    assert parsed.key_id == key["id"]

    me = await api.get("/api/v1/auth/me", key["key"])
    assert me.status_code == 200
    assert me.json()["api_key"]["id"] == key["id"]
    assert me.json()["api_key"]["last_used_at"] is not None
    assert me.json()["marketplace"]["id"] == marketplace_id
    assert me.json()["master"] is False
    assert me.json()["network"] == "sandbox"
    assert (await api.get("/api/v1/me", key["key"])).json() == me.json()

    listed = await api.get("/api/v1/auth/api-keys", admin)
    assert next(item["id"] for item in listed.json()["data"]) == key["id"]
    assert all("key" not in item for item in listed.json()["data"])

    revoked = await api.client.delete(f"/api/v1/auth/api-keys/{key['id']}", headers=api.auth(admin))
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "REVOKED"
    assert revoked.json()["revoked_at"] is not None
    again = await api.client.delete(f"/api/v1/auth/api-keys/{key['id']}", headers=api.auth(admin))
    assert again.json() == revoked.json()
    denied = await api.get("/api/v1/auth/me", key["key"])
    assert denied.status_code == 401
    assert denied.json()["error"]["code"] == "INVALID_API_KEY"
    active = await api.get("/api/v1/auth/api-keys", admin, status="ACTIVE")
    assert key["id"] not in [item["id"] for item in active.json()["data"]]
    both = await api.get("/api/v1/auth/api-keys", admin, status="REVOKED,ACTIVE")
    assert key["id"] in [item["id"] for item in both.json()["data"]]
    bad = await api.get("/api/v1/auth/api-keys", admin, status="GONE")
    assert bad.json()["error"]["details"]["fields"][0]["field"] == "query.status"


async def test_only_a_salted_hash_is_stored(api: Api) -> None:
    _marketplace_id, key = await api.tenant()
    parsed = parse_key(key)
    assert parsed is not None
    conn = await asyncpg.connect(api.dsn)
    try:
        row = await conn.fetchrow("SELECT * FROM api_keys WHERE id = $1", parsed.key_id)
        stored = await conn.fetch("SELECT response_body FROM idempotency_keys")
    finally:
        await conn.close()
    assert row["hash"] == hash_secret(row["salt"], parsed.secret)
    assert parsed.secret not in str(dict(row))
    assert all(parsed.secret.encode() not in record["response_body"] for record in stored)


async def test_star_means_all_scopes_and_scopes_are_checked(api: Api) -> None:
    _marketplace_id, admin = await api.tenant(["admin"])
    star = await api.post("/api/v1/auth/api-keys", admin, {"name": "all", "scopes": ["*"]})
    assert star.json()["scopes"] == ["read", "write", "support", "admin"]
    for scopes, message in (([], "length >= 1"), (["read", "read"], "unique"), (["root"], "")):
        response = await api.post("/api/v1/auth/api-keys", admin, {"name": "x", "scopes": scopes})
        assert response.status_code == 400
        fields = response.json()["error"]["details"]["fields"]
        assert fields[0]["field"].startswith("scopes")
        assert message in fields[0]["message"]
    _, writer = await api.tenant(["write"])
    forbidden = await api.post("/api/v1/auth/api-keys", writer, {"name": "x", "scopes": ["read"]})
    assert forbidden.status_code == 403


async def test_marketplace_id_is_required_with_master_and_refused_otherwise(api: Api) -> None:
    marketplace_id, admin = await api.tenant(["admin"])
    body = {"name": "x", "scopes": ["read"]}
    no_target = await api.post("/api/v1/auth/api-keys", MASTER_KEY, body)
    assert no_target.json()["error"]["details"]["fields"] == [
        {"field": "marketplace_id", "message": "required with the master key"}
    ]
    named = await api.post(
        "/api/v1/auth/api-keys", admin, {**body, "marketplace_id": marketplace_id}
    )
    assert named.status_code == 400
    unknown = await api.post(
        "/api/v1/auth/api-keys", MASTER_KEY, {**body, "marketplace_id": "mkt_" + "1" * 32}
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "MARKETPLACE_NOT_FOUND"
    listed = await api.get("/api/v1/auth/api-keys", MASTER_KEY, marketplace_id=marketplace_id)
    assert len(listed.json()["data"]) == 1
    assert (await api.get("/api/v1/auth/api-keys", MASTER_KEY)).status_code == 400
    master_me = await api.get("/api/v1/auth/me", MASTER_KEY)
    assert master_me.json() == {
        "api_key": None,
        "marketplace": None,
        "master": True,
        "network": "sandbox",
        "version": master_me.json()["version"],
    }


async def test_tenants_never_see_each_others_keys(api: Api) -> None:
    _, admin_a = await api.tenant(["admin"])
    _, admin_b = await api.tenant(["admin"])
    key_b = parse_key(admin_b)
    assert key_b is not None
    listed = await api.get("/api/v1/auth/api-keys", admin_a)
    assert key_b.key_id not in [item["id"] for item in listed.json()["data"]]
    revoke = await api.client.delete(
        f"/api/v1/auth/api-keys/{key_b.key_id}", headers=api.auth(admin_a)
    )
    assert revoke.status_code == 404
    assert revoke.json()["error"]["code"] == "API_KEY_NOT_FOUND"
    assert (await api.get("/api/v1/auth/me", admin_b)).status_code == 200
    by_master = await api.client.delete(
        f"/api/v1/auth/api-keys/{key_b.key_id}", headers=api.auth(MASTER_KEY)
    )
    assert by_master.json()["status"] == "REVOKED"
    assert (await api.get("/api/v1/auth/me", admin_b)).status_code == 401


async def test_last_used_at_is_written_at_most_once_a_minute(api: Api) -> None:
    _, key = await api.tenant()
    parsed = parse_key(key)
    assert parsed is not None
    conn = await asyncpg.connect(api.dsn)
    try:
        await api.get("/api/v1/auth/me", key)
        first = await conn.fetchval(
            "SELECT last_used_at FROM api_keys WHERE id = $1", parsed.key_id
        )
        await api.get("/api/v1/auth/me", key)
        assert (
            await conn.fetchval("SELECT last_used_at FROM api_keys WHERE id = $1", parsed.key_id)
            == first
        )
        await conn.execute(
            "UPDATE api_keys SET last_used_at = now() - interval '2 minutes' WHERE id = $1",
            parsed.key_id,
        )
        await api.get("/api/v1/auth/me", key)
        later = await conn.fetchval(
            "SELECT last_used_at FROM api_keys WHERE id = $1", parsed.key_id
        )
    finally:
        await conn.close()
    assert later > first
