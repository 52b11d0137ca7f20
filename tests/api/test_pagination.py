"""Keyset pagination over HTTP: newest first, every row once, cursors bound to endpoint+filters."""

from typing import Any

import asyncpg
import pytest

from tests.api.support import MASTER_KEY, Api

pytestmark = pytest.mark.db


async def walk(api: Api, path: str, key: str, limit: int, **params: Any) -> list[str]:
    """Every id of a listing, page by page."""
    seen: list[str] = []
    cursor = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        page = await api.get(path, key, **query)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["data"]) <= limit
        seen += [item["id"] for item in body["data"]]
        if not body["pagination"]["has_more"]:
            assert body["pagination"]["next_cursor"] is None
            return seen
        cursor = body["pagination"]["next_cursor"]
        assert cursor.startswith("c_")


async def test_pages_list_every_row_once_newest_first(api: Api) -> None:
    created = [(await api.new_marketplace())["id"] for _ in range(5)]
    conn = await asyncpg.connect(api.dsn)
    try:
        # Two rows share a timestamp: the id breaks the tie.
        await conn.execute(
            "UPDATE marketplaces SET created_at = (SELECT created_at FROM marketplaces"
            " WHERE id = $1) WHERE id = $2",
            created[1],
            created[2],
        )
        expected = [
            row["id"]
            for row in await conn.fetch(
                "SELECT id FROM marketplaces ORDER BY created_at DESC, id DESC"
            )
        ]
    finally:
        await conn.close()
    assert set(expected) == set(created)
    for limit in range(1, 7):
        assert await walk(api, "/api/v1/marketplaces", MASTER_KEY, limit) == expected
    default = await api.get("/api/v1/marketplaces", MASTER_KEY)
    assert [item["id"] for item in default.json()["data"]] == expected


async def test_a_cursor_is_valid_only_for_its_endpoint_and_filters(api: Api) -> None:
    _marketplace_id, key = await api.tenant()
    for note in ("a", "b", "c"):
        await api.post("/api/v1/test/effects", key, {"note": note})
    first = await api.get("/api/v1/test/events", key, limit=1, type="test.effect")
    cursor = first.json()["pagination"]["next_cursor"]
    follow = await api.get("/api/v1/test/events", key, limit=1, type="test.effect", cursor=cursor)
    assert follow.status_code == 200
    assert follow.json()["data"][0]["id"] != first.json()["data"][0]["id"]
    assert await walk(api, "/api/v1/test/events", key, 2, type="test.effect") == [
        item["id"] for item in (await api.get("/api/v1/test/events", key)).json()["data"]
    ]
    misuses = [
        await api.get("/api/v1/test/events", key, limit=1, cursor=cursor),
        await api.get("/api/v1/test/events", key, limit=1, type="other.kind", cursor=cursor),
        await api.get("/api/v1/auth/api-keys", key, cursor=cursor),
        await api.get("/api/v1/test/events", key, cursor="c_not-base64!"),
        await api.get("/api/v1/test/events", key, cursor="nonsense"),
        await api.get("/api/v1/test/events", key, cursor="c_" + "A" * 40),
    ]
    for response in misuses:
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert error["details"]["fields"][0]["field"] == "query.cursor"


async def test_limit_is_1_to_100(api: Api) -> None:
    for limit in ("0", "101", "-1"):
        response = await api.get("/api/v1/marketplaces", MASTER_KEY, limit=limit)
        assert response.status_code == 400
        assert response.json()["error"]["details"]["fields"] == [
            {"field": "query.limit", "message": "must be 1..100"}
        ]
    assert (await api.get("/api/v1/marketplaces", MASTER_KEY, limit="100")).status_code == 200
