"""``POST /users/{user_id}/airtm/link`` over HTTP (api.md 3.3).

The real app, database and runtime: the runtime's Airtm client looks accounts up with
``GET /users/{email}`` at the sandbox's Airtm, whose state (``sandbox.airtm``) the tests shape:
unknown, inactive and unverified accounts, and injected faults on ``GET /users/``.
"""

from collections.abc import AsyncIterator

import asyncpg
import msgspec
import pytest

from tests.api.support import SandboxApi, running_api_on_sandbox
from tests.api.test_users import USERS

pytestmark = pytest.mark.db


@pytest.fixture
async def airtm_api(db_dsn: str) -> AsyncIterator[SandboxApi]:
    """The app on a sandbox, reached by the real Airtm client."""
    async with running_api_on_sandbox(db_dsn) as running:
        yield running


async def _linked_events(dsn: str, marketplace_id: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT data::text FROM events"
            " WHERE marketplace_id = $1 AND type = 'user.airtm_linked'",
            marketplace_id,
        )
    finally:
        await conn.close()
    return [row["data"] for row in rows]


async def test_linking_stores_the_account_once_and_refuses_another(
    airtm_api: SandboxApi,
) -> None:
    api = airtm_api
    marketplace_id, key = await api.tenant(["write", "read"])
    user = (await api.post(USERS, key, {"external_user_id": "linker"})).json()
    account = api.sandbox.airtm.add_user("Ana@Example.com")
    path = f"{USERS}/{user['id']}/airtm/link"

    linked = await api.post(path, key, {"email": "ana@example.com"})
    assert linked.status_code == 200, linked.text
    body = linked.json()
    assert body["airtm_user_id"] == account.id
    assert body["airtm_email"] == "Ana@Example.com"
    assert body["airtm_linked_at"].endswith("Z")
    assert body["wallet"] == user["wallet"]
    assert (await api.get(f"{USERS}/{user['id']}", key)).json() == body

    again = await api.post(path, key, {"email": "ANA@example.com"})
    assert again.status_code == 200
    assert again.json() == body
    [event] = await _linked_events(api.dsn, marketplace_id)
    assert msgspec.json.decode(event) == {
        "user_id": user["id"],
        "airtm_user_id": account.id,
        "linked_at": body["airtm_linked_at"],
    }

    api.sandbox.airtm.add_user("bruno@example.com")
    other = await api.post(path, key, {"email": "bruno@example.com"})
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "AIRTM_USER_ALREADY_LINKED"
    assert (await api.get(f"{USERS}/{user['id']}", key)).json() == body


async def test_accounts_that_cannot_be_linked_are_422_and_stored(airtm_api: SandboxApi) -> None:
    api = airtm_api
    _, key = await api.tenant(["write", "read"])
    user = (await api.post(USERS, key, {"external_user_id": "refused"})).json()
    path = f"{USERS}/{user['id']}/airtm/link"
    api.sandbox.airtm.add_user("sleepy@example.com", status="inactive")
    api.sandbox.airtm.add_user("anon@example.com", is_verified=False)
    for email, reason in [
        ("ghost@example.com", "USER_NOT_FOUND"),
        ("sleepy@example.com", "USER_INACTIVE"),
        ("anon@example.com", "USER_NOT_VERIFIED"),
    ]:
        answer = await api.post(path, key, {"email": email}, idempotency_key=f"link-{email}")
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "AIRTM_USER_INVALID"
        assert answer.json()["error"]["details"]["reason"] == reason
    # A 422 is stored (api.md 1.8): the same key replays it even once the account exists.
    api.sandbox.airtm.add_user("ghost@example.com")
    replay = await api.post(
        path, key, {"email": "ghost@example.com"}, idempotency_key="link-ghost@example.com"
    )
    assert replay.status_code == 422
    assert replay.headers["idempotency-replayed"] == "true"
    fresh = await api.post(path, key, {"email": "ghost@example.com"})
    assert fresh.status_code == 200
    assert fresh.json()["airtm_email"] == "ghost@example.com"


async def test_airtm_failures_are_provider_errors_and_not_stored(airtm_api: SandboxApi) -> None:
    api = airtm_api
    _, key = await api.tenant(["write", "read"])
    user = (await api.post(USERS, key, {"external_user_id": "flaky"})).json()
    path = f"{USERS}/{user['id']}/airtm/link"
    api.sandbox.airtm.add_user("carla@example.com")
    body = {"email": "carla@example.com"}

    api.sandbox.faults.add("airtm", "GET", "/users/", "status:503")
    down = await api.post(path, key, body, idempotency_key="carla")
    assert down.status_code == 503
    assert down.json()["error"]["code"] == "PROVIDER_UNAVAILABLE"
    assert down.json()["error"]["details"]["provider"] == "airtm"
    assert down.json()["error"]["details"]["provider_status"] == 503
    assert "retry-after" in down.headers

    api.sandbox.faults.add("airtm", "GET", "/users/", "status:400")
    refused = await api.post(path, key, body, idempotency_key="carla")
    assert refused.status_code == 502
    assert refused.json()["error"]["code"] == "PROVIDER_ERROR"
    assert refused.json()["error"]["details"]["provider_code"] == "415999"  # the injected body

    # Neither answer was stored: the same key now runs and links.
    linked = await api.post(path, key, body, idempotency_key="carla")
    assert linked.status_code == 200
    assert "idempotency-replayed" not in linked.headers
    assert linked.json()["airtm_email"] == "carla@example.com"


async def test_bad_link_bodies_are_400(airtm_api: SandboxApi) -> None:
    api = airtm_api
    marketplace_id, key = await api.tenant(["write", "read"])
    user = (await api.post(USERS, key, {"external_user_id": "typo"})).json()
    path = f"{USERS}/{user['id']}/airtm/link"
    for body, field in [
        ({}, "email"),
        ({"email": "nope"}, "email"),
        ({"email": 42}, "email"),
        ({"email": "a@" + "b" * 250 + ".co"}, "email"),
        ({"email": "a@b.co", "extra": 1}, "extra"),
    ]:
        answer = await api.post(path, key, body)
        assert answer.status_code == 400, body
        assert answer.json()["error"]["code"] == "VALIDATION_ERROR"
        assert answer.json()["error"]["details"]["fields"][0]["field"] == field
    reader = await api.new_key(marketplace_id, ["read"])
    denied = await api.post(path, reader, {"email": "a@b.co"})
    assert denied.status_code == 403


async def test_an_email_needing_url_encoding_links_its_own_account(airtm_api: SandboxApi) -> None:
    api = airtm_api
    _, key = await api.tenant(["write", "read"])
    user = (await api.post(USERS, key, {"external_user_id": "plus"})).json()
    api.sandbox.airtm.add_user("a@example.com")
    account = api.sandbox.airtm.add_user("a+b@example.com")

    linked = await api.post(f"{USERS}/{user['id']}/airtm/link", key, {"email": "a+b@example.com"})

    assert linked.status_code == 200, linked.text
    assert (linked.json()["airtm_user_id"], linked.json()["airtm_email"]) == (
        account.id,
        "a+b@example.com",
    )
