"""``POST /users/{user_id}/airtm/link`` over HTTP (api.md 3.3).

The Airtm port has no user lookup yet (providers.md 4.1 ``GET /users/{email}``), and neither has
the sandbox's Airtm. :class:`AirtmWithUserLookup` stands in for that one missing provider call:
it wraps the real Airtm client of the runtime and answers from the sandbox's Airtm accounts
(``sandbox.airtm.users``), honouring the sandbox's fault rules for ``GET /users/``. Everything
else is the real app, database and runtime.
"""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from api.app import create_app
from api.runtime import AppRuntime, provider_runtime
from api.serve import sandbox_config
from api.users_airtm import AirtmAccount
from flows.runtime import sandbox_endpoints
from providers.errors import ProviderRejected, ProviderUnavailable
from providers.sandbox.app import Sandbox
from providers.stellar.wallet_keys import MasterKeyring, SecretSeed
from tests.api.support import SandboxApi, _lifespan, running_api_on_sandbox, settings_for_tests
from tests.api.test_users import USERS

pytestmark = pytest.mark.db


class AirtmWithUserLookup:
    """The runtime's Airtm client plus the user lookup the port still lacks."""

    def __init__(self, client: Any, sandbox: Sandbox, unverified: set[str]) -> None:
        self._client = client
        self._sandbox = sandbox
        self._unverified = unverified

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def get_user_by_email(self, email: str) -> AirtmAccount:
        """``GET /users/{email}`` against the sandbox's Airtm accounts."""
        fault = self._sandbox.faults.match("airtm", "GET", f"/users/{email}")
        if fault is not None and fault.kind == "status":
            if fault.status_code == 429 or fault.status_code >= 500:
                raise ProviderUnavailable(
                    "Airtm answered", provider="airtm", status_code=fault.status_code
                )
            raise ProviderRejected(
                "bad request format", provider="airtm", status_code=400, reason="415901"
            )
        user = self._sandbox.airtm.users.get(email.casefold())
        if user is None:
            raise ProviderRejected("user not found", provider="airtm", status_code=404)
        return AirtmAccount(
            id=user.id,
            email=user.email,
            status=user.status,
            is_verified=email.casefold() not in self._unverified,
        )


@contextlib.asynccontextmanager
async def running_api_with_airtm_lookup(
    dsn: str, unverified: set[str]
) -> AsyncIterator[SandboxApi]:
    """``running_api_on_sandbox`` whose runtime's Airtm can look users up."""
    sandbox = Sandbox(seed=3, start_s=1_800_000_000)
    providers = sandbox.provider_settings("http://sandbox.test")
    inner = provider_runtime(
        sandbox_endpoints(providers),
        keyring=MasterKeyring({1: bytes(range(32))}),
        platform_seed=SecretSeed.from_keypair(sandbox.platform),
        network_name="sandbox",
        poll_s=0.2,
        transport=httpx.ASGITransport(app=sandbox.asgi_app()),
    )

    @contextlib.asynccontextmanager
    async def factory(pool: asyncpg.Pool) -> AsyncIterator[AppRuntime]:
        async with inner(pool) as runtime:
            fiat = AirtmWithUserLookup(runtime.deps.fiat, sandbox, unverified)
            runtime.deps = msgspec.structs.replace(runtime.deps, fiat=fiat)
            yield runtime

    app = create_app(
        settings_for_tests(), dsn, public_config=sandbox_config(providers), runtime=factory
    )
    async with _lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield SandboxApi(client, dsn, sandbox)


@pytest.fixture
async def unverified() -> set[str]:
    """Emails whose Airtm account is not verified (tests add to it)."""
    return set()


@pytest.fixture
async def airtm_api(db_dsn: str, unverified: set[str]) -> AsyncIterator[SandboxApi]:
    """The app whose Airtm can look users up."""
    async with running_api_with_airtm_lookup(db_dsn, unverified) as running:
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


async def test_accounts_that_cannot_be_linked_are_422_and_stored(
    airtm_api: SandboxApi, unverified: set[str]
) -> None:
    api = airtm_api
    _, key = await api.tenant(["write", "read"])
    user = (await api.post(USERS, key, {"external_user_id": "refused"})).json()
    path = f"{USERS}/{user['id']}/airtm/link"
    api.sandbox.airtm.add_user("sleepy@example.com", status="inactive")
    api.sandbox.airtm.add_user("anon@example.com")
    unverified.add("anon@example.com")
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
    assert refused.json()["error"]["details"]["provider_code"] == "415901"

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


async def test_without_a_lookup_at_the_provider_nothing_is_linked(db_dsn: str) -> None:
    async with running_api_on_sandbox(db_dsn) as api:
        _, key = await api.tenant(["write", "read"])
        user = (await api.post(USERS, key, {"external_user_id": "plain"})).json()
        api.sandbox.airtm.add_user("dan@example.com")
        answer = await api.post(
            f"{USERS}/{user['id']}/airtm/link", key, {"email": "dan@example.com"}
        )
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "PROVIDER_UNAVAILABLE"
        assert (await api.get(f"{USERS}/{user['id']}", key)).json()["airtm_user_id"] is None
