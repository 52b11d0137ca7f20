"""Outbound webhook delivery on a real database and a real local HTTP receiver.

The fan-out trigger writes deliveries with their events; a :class:`WebhookWorker` claims them
and POSTs them signed to a receiver on 127.0.0.1, which verifies the signature independently.
Backoff times are shrunk to milliseconds; everything else runs as in production.
"""

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.errors import WebhookDeliveryNotFound, WebhookEndpointNotFound
from flows import webhooks
from flows.events import emit
from flows.queries import webhook_deliveries
from flows.queries import webhooks as queries
from flows.queries.webhooks import DeliveryRow
from flows.webhook_delivery import (
    USER_AGENT,
    DeliverySettings,
    WebhookDispatcher,
    WebhookWorker,
    retry_delay_s,
)
from flows.webhooks import WebhookSecret, WebhookSecretError
from providers.stellar.wallet_keys import MasterKeyring
from tests.db.conftest import create_marketplace
from tests.db.webhook_receiver import running_receiver, verify

pytestmark = pytest.mark.db

KEYRING = MasterKeyring({1: bytes(range(32))})
FAST = DeliverySettings(
    allow_insecure_urls=True, backoff_base_s=0.01, backoff_max_s=0.04, lease_s=30.0
)
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw6Mz8rLqK5NE"


# -- helpers --------------------------------------------------------------------------------------


class World:
    """A marketplace on the test database, endpoints in it and a worker with an HTTP client."""

    def __init__(self, pool: asyncpg.Pool, marketplace_id: str, http: httpx.AsyncClient) -> None:
        self.pool = pool
        self.marketplace_id = marketplace_id
        self.http = http

    def worker(self, settings: DeliverySettings = FAST) -> WebhookWorker:
        return WebhookWorker(self.pool, KEYRING, self.http, settings)

    async def endpoint(
        self, url: str, patterns: list[str] | None = None, marketplace_id: str | None = None
    ) -> tuple[str, str]:
        """Create an endpoint; returns (endpoint id, plaintext secret)."""
        async with self.pool.acquire() as conn:
            row, secret = await webhooks.create_endpoint(
                conn,
                KEYRING,
                marketplace_id=marketplace_id or self.marketplace_id,
                url=url,
                description=None,
                event_types=patterns or ["*"],
            )
        return row.id, secret.reveal()

    async def emit(
        self, type_: str = "order.created", resource_id: str = "ord_1", **data: Any
    ) -> int:
        """Commit one event; returns its sequence."""
        async with self.pool.acquire() as conn, conn.transaction():
            event = await emit(
                conn,
                marketplace_id=self.marketplace_id,
                type=type_,
                resource_type=type_.split(".", maxsplit=1)[0],
                resource_id=resource_id,
                data={"resource_id": resource_id, **data},
            )
        return event.sequence

    async def deliveries(self, endpoint_id: str) -> list[DeliveryRow]:
        """The endpoint's deliveries, oldest first."""
        async with self.pool.acquire() as conn:
            rows = await queries.list_deliveries(
                conn,
                self.marketplace_id,
                endpoint_id,
                statuses=None,
                event_type=None,
                event_id=None,
                after=None,
                limit=100,
            )
        return sorted(rows, key=lambda row: (row.event_sequence, row.created_at))

    async def drain(self, worker: WebhookWorker, timeout_s: float = 10.0) -> None:
        """Run the worker until no delivery is pending any more."""
        async with asyncio.timeout(timeout_s):
            while True:
                await worker.run_once()
                async with self.pool.acquire() as conn:
                    pending = await conn.fetchval(
                        "SELECT count(*) FROM webhook_deliveries WHERE status = 'PENDING'"
                    )
                if pending == 0:
                    return
                await asyncio.sleep(0.01)


@pytest.fixture
async def world(pool: asyncpg.Pool) -> AsyncIterator[World]:
    async with pool.acquire() as conn:
        marketplace_id = await create_marketplace(conn)
    async with httpx.AsyncClient() as http:
        yield World(pool, marketplace_id, http)


def _fails(times: int) -> Callable[[int], int]:
    return lambda index: 500 if index < times else 200


# -- signatures, secrets, rules (no database needed, but cheap) ----------------------------------


def test_signature_matches_a_fixed_vector_and_an_independent_hmac() -> None:
    body = b'{"id":"evt_1","type":"order.created"}'
    independent = hmac.new(
        VECTOR_SECRET.encode("utf-8"), b"1700000000." + body, hashlib.sha256
    ).hexdigest()
    # Computed once with `openssl dgst -sha256 -hmac <secret>` over "1700000000.<body>".
    pinned = "525ed6789327fceb6b14901183ce0b8f739ae566e893776e13cf4177b26ac9f1"
    assert webhooks.sign(VECTOR_SECRET, 1700000000, body) == independent == pinned
    header = webhooks.signature_header([VECTOR_SECRET], 1700000000, body)
    assert header == f"t=1700000000,v1={pinned}"


def test_two_secrets_give_two_v1_with_the_newest_first() -> None:
    old, new = webhooks.generate_secret().reveal(), webhooks.generate_secret().reveal()
    header = webhooks.signature_header([new, old], 1700000000, b"{}")
    assert header.split(",") == [
        "t=1700000000",
        f"v1={webhooks.sign(new, 1700000000, b'{}')}",
        f"v1={webhooks.sign(old, 1700000000, b'{}')}",
    ]


def test_secrets_have_the_documented_form_and_never_show_in_repr() -> None:
    secret = webhooks.generate_secret()
    text = secret.reveal()
    assert text.startswith("whsec_")
    assert len(text) == len("whsec_") + 43
    assert set(text[6:]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert text not in repr(secret)
    assert text not in str(secret)
    with pytest.raises(WebhookSecretError):
        WebhookSecret("whsec_short")


def test_a_sealed_secret_opens_only_for_its_own_endpoint() -> None:
    secret = webhooks.generate_secret()
    ids = {"marketplace_id": "mkt_a", "endpoint_id": "whe_a"}
    sealed = webhooks.seal_endpoint_secret(KEYRING, secret, **ids)
    assert secret.reveal() not in sealed
    assert webhooks.open_endpoint_secret(KEYRING, sealed, **ids).reveal() == secret.reveal()
    with pytest.raises(WebhookSecretError):
        webhooks.open_endpoint_secret(KEYRING, sealed, marketplace_id="mkt_a", endpoint_id="whe_b")
    with pytest.raises(WebhookSecretError):
        webhooks.open_endpoint_secret(KEYRING, sealed, marketplace_id="mkt_b", endpoint_id="whe_a")
    other_keyring = MasterKeyring({1: bytes(32)})
    with pytest.raises(WebhookSecretError):
        webhooks.open_endpoint_secret(other_keyring, sealed, **ids)
    with pytest.raises(WebhookSecretError):
        webhooks.open_endpoint_secret(KEYRING, "v9:" + sealed[3:], **ids)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.com/offerhub", True),
        ("https://93.184.216.34:8443/x", True),
        ("http://hooks.example.com/offerhub", False),
        ("ftp://hooks.example.com/", False),
        ("https:///no-host", False),
        ("https://localhost/x", False),
        ("https://api.localhost/x", False),
        ("https://127.0.0.1/x", False),
        ("https://10.1.2.3/x", False),
        ("https://192.168.0.7/x", False),
        ("https://172.16.0.1/x", False),
        ("https://169.254.169.254/latest/meta-data", False),
        ("https://[::1]/x", False),
        ("https://[fe80::1]/x", False),
        ("https://[::ffff:127.0.0.1]/x", False),
        ("https://0.0.0.0/x", False),
        ("https://example.com:99999/x", False),
        ("https://exa mple.com/x", False),
    ],
)
def test_url_rules(url: str, allowed: bool) -> None:
    assert (webhooks.url_problem(url, allow_insecure=False) is None) is allowed


def test_insecure_setting_accepts_http_and_loopback() -> None:
    assert webhooks.url_problem("http://127.0.0.1:8000/x", allow_insecure=True) is None
    assert webhooks.url_problem("ftp://127.0.0.1/x", allow_insecure=True) is not None


def test_event_type_patterns() -> None:
    good = ["*", "order.*", "order.created", "reconciliation.completed", "balance.*"]
    assert webhooks.event_type_problems(good) == []
    bad = ["order.created", "order.nope", "nope.*", "order", "*.*", "order.**"]
    assert [index for index, _ in webhooks.event_type_problems(bad)] == [1, 2, 3, 4, 5]


@given(attempts=st.integers(min_value=1, max_value=200))
def test_backoff_doubles_from_the_base_up_to_the_cap_with_ten_percent_jitter(
    attempts: int,
) -> None:
    settings = DeliverySettings()
    nominal = min(30.0 * 2 ** (attempts - 1), 6 * 3600.0)
    delay = retry_delay_s(attempts, settings)
    assert nominal * 0.9 <= delay <= nominal * 1.1


# -- fan-out --------------------------------------------------------------------------------------


async def test_every_statement_prepares_against_the_schema(pool: asyncpg.Pool) -> None:
    statements = {
        f"{module.__name__}.{name}": value
        for module in (queries, webhook_deliveries)
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, str) and not name.startswith("_")
    }
    assert len(statements) >= 18
    async with pool.acquire() as conn:
        for name, statement in statements.items():
            try:
                await conn.prepare(statement)
            except asyncpg.PostgresError as error:  # pragma: no cover - the failure message
                raise AssertionError(f"{name}: {error}") from error


async def test_fan_out_writes_one_delivery_per_matching_active_endpoint(world: World) -> None:
    everything, _ = await world.endpoint("https://a.example.com/", ["*"])
    orders, _ = await world.endpoint("https://b.example.com/", ["order.*"])
    exact, _ = await world.endpoint("https://c.example.com/", ["order.created", "user.created"])
    users, _ = await world.endpoint("https://d.example.com/", ["user.*"])
    deleted, _ = await world.endpoint("https://e.example.com/", ["*"])
    async with world.pool.acquire() as conn:
        other_marketplace = await create_marketplace(conn)
        await webhooks.delete_endpoint(
            conn, marketplace_id=world.marketplace_id, endpoint_id=deleted
        )
    foreign, _ = await world.endpoint("https://f.example.com/", ["*"], other_marketplace)

    created = await world.emit("order.created")
    funded = await world.emit("order.escrow_funded")

    async def sequences(endpoint_id: str) -> list[int]:
        return [row.event_sequence for row in await world.deliveries(endpoint_id)]

    assert await sequences(everything) == [created, funded]
    assert await sequences(orders) == [created, funded]
    assert await sequences(exact) == [created]
    assert await sequences(users) == []
    assert await sequences(deleted) == []
    async with world.pool.acquire() as conn:
        rows = await queries.list_deliveries(
            conn,
            other_marketplace,
            foreign,
            statuses=None,
            event_type=None,
            event_id=None,
            after=None,
            limit=10,
        )
    assert rows == []
    first = (await world.deliveries(everything))[0]
    assert first.status == "PENDING"
    assert first.attempts == 0
    assert first.event_type == "order.created"
    assert first.resource_id == "ord_1"
    assert first.id.startswith("whd_")
    assert len(first.id) == 36


async def test_an_event_that_rolls_back_leaves_no_delivery(world: World) -> None:
    endpoint_id, _ = await world.endpoint("https://a.example.com/")

    async def failing_change() -> None:
        async with world.pool.acquire() as conn, conn.transaction():
            await emit(
                conn,
                marketplace_id=world.marketplace_id,
                type="order.created",
                resource_type="order",
                resource_id="ord_x",
                data={},
            )
            raise RuntimeError("the change fails")

    with pytest.raises(RuntimeError):
        await failing_change()
    assert await world.deliveries(endpoint_id) == []


# -- delivery -------------------------------------------------------------------------------------


async def test_a_receiver_failing_five_times_gets_the_sixth_attempt(world: World) -> None:
    async with running_receiver(_fails(5)) as receiver:
        endpoint_id, secret = await world.endpoint(receiver.url)
        receiver.secrets = [secret]
        sequence = await world.emit("order.created", "ord_42", amount="80.00")
        await world.drain(world.worker())

    [delivery] = await world.deliveries(endpoint_id)
    assert delivery.status == "SUCCEEDED"
    assert delivery.attempts == 6
    assert delivery.last_response_status == 200
    assert delivery.last_error is None
    assert delivery.completed_at is not None
    async with world.pool.acquire() as conn:
        attempts = await webhook_deliveries.list_attempts(conn, world.marketplace_id, delivery.id)
    assert [a.attempt for a in attempts] == [1, 2, 3, 4, 5, 6]
    assert [a.response_status for a in attempts] == [500] * 5 + [200]
    assert [a.succeeded for a in attempts] == [False] * 5 + [True]
    assert all(a.error == "HTTP 500" for a in attempts[:5])

    assert len(receiver.requests) == 6
    assert all(request.verified_with == [secret] for request in receiver.requests)
    last = receiver.requests[-1]
    assert last.headers["content-type"] == "application/json"
    assert last.headers["user-agent"] == USER_AGENT
    assert last.headers["offerhub-delivery-id"] == delivery.id
    assert last.headers["offerhub-event-id"] == delivery.event_id
    assert last.headers["offerhub-event-type"] == "order.created"
    envelope = msgspec.json.decode(last.body)
    assert envelope == {
        "id": delivery.event_id,
        "sequence": sequence,
        "type": "order.created",
        "occurred_at": envelope["occurred_at"],
        "marketplace_id": world.marketplace_id,
        "resource_type": "order",
        "resource_id": "ord_42",
        "data": {"resource_id": "ord_42", "amount": "80.00"},
    }
    assert envelope["occurred_at"].endswith("Z")
    assert len(envelope["occurred_at"]) == len("2026-01-12T10:00:00.000Z")


async def test_a_redirect_is_not_followed_and_counts_as_a_failure(world: World) -> None:
    async with running_receiver(lambda index: 302 if index == 0 else 204) as receiver:
        endpoint_id, _ = await world.endpoint(receiver.url)
        await world.emit()
        await world.drain(world.worker())
    assert [request.answered for request in receiver.requests] == [302, 204]
    assert all(request.path == "/hooks" for request in receiver.requests)
    [delivery] = await world.deliveries(endpoint_id)
    assert delivery.status == "SUCCEEDED"
    assert delivery.attempts == 2


async def test_an_unreachable_endpoint_ends_failed_after_the_max_age(world: World) -> None:
    async with running_receiver() as receiver:
        url = receiver.url  # the port is closed once the receiver stops
    endpoint_id, _ = await world.endpoint(url)
    await world.emit()
    settings = msgspec.structs.replace(FAST, max_age_s=0.3)
    await world.drain(world.worker(settings))
    [delivery] = await world.deliveries(endpoint_id)
    assert delivery.status == "FAILED"
    assert delivery.attempts >= 2
    assert delivery.next_attempt_at is None
    assert delivery.last_error == "transport error: ConnectError"
    assert delivery.first_attempt_at is not None
    assert delivery.completed_at is not None


async def test_a_receiver_slower_than_the_timeout_counts_as_a_failure(world: World) -> None:
    async with running_receiver() as receiver:
        receiver.delay_s = 1.0
        endpoint_id, _ = await world.endpoint(receiver.url)
        await world.emit()
        settings = msgspec.structs.replace(FAST, timeout_s=0.2, backoff_base_s=3600.0)
        started = time.monotonic()
        assert await world.worker(settings).run_once() == 1
        assert time.monotonic() - started < 0.9
    [row] = await world.deliveries(endpoint_id)
    assert row.status == "PENDING"
    assert row.last_error == "timeout"
    assert row.last_response_status is None
    assert row.next_attempt_at is not None


async def test_per_resource_order_holds_while_other_resources_flow(world: World) -> None:
    # The first request (order A's first event) fails twice; B is never held back by A.
    async with running_receiver(_fails(2)) as receiver:
        endpoint_id, _ = await world.endpoint(receiver.url)
        a1 = await world.emit("order.created", "ord_A")
        a2 = await world.emit("order.funds_reserved", "ord_A")
        b1 = await world.emit("order.created", "ord_B")
        a3 = await world.emit("order.canceled", "ord_A")
        worker = world.worker()
        # The first claim takes A's first event and B's: A's later ones must wait.
        claims = await worker.claim(10)
        assert {claim.event_sequence for claim in claims} == {a1, b1}
        await asyncio.gather(*(worker.deliver(claim) for claim in claims))
        await world.drain(worker)

    sequences = [msgspec.json.decode(request.body)["sequence"] for request in receiver.requests]
    a_order = [sequence for sequence in sequences if sequence in (a1, a2, a3)]
    assert a_order == sorted(a_order)
    assert list(dict.fromkeys(a_order)) == [a1, a2, a3]
    statuses = {row.event_sequence: row.status for row in await world.deliveries(endpoint_id)}
    assert statuses == {a1: "SUCCEEDED", a2: "SUCCEEDED", a3: "SUCCEEDED", b1: "SUCCEEDED"}


async def test_a_claim_waits_for_the_earlier_delivery_of_its_resource(world: World) -> None:
    endpoint_id, _ = await world.endpoint("https://a.example.com/")
    first = await world.emit("order.created", "ord_A")
    second = await world.emit("order.canceled", "ord_A")
    worker = world.worker()
    assert [claim.event_sequence for claim in await worker.claim(10)] == [first]
    # The first one is claimed (still pending): the second stays held back.
    assert await worker.claim(10) == []
    async with world.pool.acquire() as conn:
        await conn.execute(
            "UPDATE webhook_deliveries SET status = 'FAILED', next_attempt_at = NULL,"
            " completed_at = now() WHERE event_sequence = $1",
            first,
        )
    assert [claim.event_sequence for claim in await worker.claim(10)] == [second]
    assert endpoint_id


async def test_rotation_grace_signs_with_both_secrets_new_first(world: World) -> None:
    async with running_receiver() as receiver:
        endpoint_id, old = await world.endpoint(receiver.url)
        async with world.pool.acquire() as conn:
            row, new_secret = await webhooks.rotate_endpoint_secret(
                conn,
                KEYRING,
                marketplace_id=world.marketplace_id,
                endpoint_id=endpoint_id,
                grace_period_s=3600,
            )
        new = new_secret.reveal()
        assert new != old
        assert row.previous_secret_expires_at is not None
        receiver.secrets = [new, old]
        await world.emit()
        await world.drain(world.worker())

        [request] = receiver.requests
        assert request.verified_with == [new, old]
        signatures = request.signatures
        assert len(signatures) == 2
        timestamp = int(request.headers["offerhub-signature"].split(",")[0].removeprefix("t="))
        assert signatures[0] == webhooks.sign(new, timestamp, request.body)
        assert signatures[1] == webhooks.sign(old, timestamp, request.body)

        # Without grace the old secret stops signing at once.
        async with world.pool.acquire() as conn:
            _, newest = await webhooks.rotate_endpoint_secret(
                conn,
                KEYRING,
                marketplace_id=world.marketplace_id,
                endpoint_id=endpoint_id,
                grace_period_s=0,
            )
        receiver.secrets = [newest.reveal(), new, old]
        await world.emit()
        await world.drain(world.worker())
        assert receiver.requests[1].verified_with == [newest.reveal()]
        assert len(receiver.requests[1].signatures) == 1


async def test_an_expired_grace_period_signs_with_the_new_secret_only(world: World) -> None:
    async with running_receiver() as receiver:
        endpoint_id, old = await world.endpoint(receiver.url)
        async with world.pool.acquire() as conn:
            _, new = await webhooks.rotate_endpoint_secret(
                conn,
                KEYRING,
                marketplace_id=world.marketplace_id,
                endpoint_id=endpoint_id,
                grace_period_s=1,
            )
            await conn.execute(
                "UPDATE webhook_endpoints SET previous_secret_expires_at = now() - interval '1 s'"
            )
        receiver.secrets = [new.reveal(), old]
        await world.emit()
        await world.drain(world.worker())
    assert receiver.requests[0].verified_with == [new.reveal()]


async def test_deleting_an_endpoint_cancels_its_pending_deliveries(world: World) -> None:
    async with running_receiver(lambda _: 503) as receiver:
        endpoint_id, _ = await world.endpoint(receiver.url)
        kept_id, _ = await world.endpoint("https://kept.example.com/")
        await world.emit("order.created", "ord_1")
        await world.emit("order.created", "ord_2")
        slow = msgspec.structs.replace(FAST, backoff_base_s=3600.0, backoff_max_s=3600.0)
        worker = world.worker(slow)
        claimed = await worker.claim(1)
        async with world.pool.acquire() as conn:
            await conn.execute(
                "UPDATE webhook_deliveries SET status = 'SUCCEEDED', next_attempt_at = NULL,"
                " completed_at = now() WHERE endpoint_id = $1",
                kept_id,
            )
            await webhooks.delete_endpoint(
                conn, marketplace_id=world.marketplace_id, endpoint_id=endpoint_id
            )
            with pytest.raises(WebhookEndpointNotFound):
                await webhooks.delete_endpoint(
                    conn, marketplace_id=world.marketplace_id, endpoint_id=endpoint_id
                )
            secrets_left = await conn.fetchval(
                "SELECT secret_sealed FROM webhook_endpoints WHERE id = $1", endpoint_id
            )
        # The claim taken before the delete finds its endpoint gone and sends nothing.
        assert [await worker.deliver(claim) for claim in claimed] == [None]
    assert receiver.requests == []
    assert secrets_left is None
    rows = await world.deliveries(endpoint_id)
    assert [row.status for row in rows] == ["CANCELED", "CANCELED"]
    assert all(row.next_attempt_at is None and row.completed_at for row in rows)
    assert [row.status for row in await world.deliveries(kept_id)] == ["SUCCEEDED"] * 2


async def test_a_delivery_raced_by_the_fan_out_of_a_deleted_endpoint_is_canceled(
    world: World,
) -> None:
    endpoint_id, _ = await world.endpoint("https://a.example.com/")
    await world.emit()
    async with world.pool.acquire() as conn:
        # As if the event's transaction had read the endpoint before the delete committed.
        await conn.execute(
            "UPDATE webhook_endpoints SET status = 'DELETED', secret_sealed = NULL,"
            " deleted_at = now() WHERE id = $1",
            endpoint_id,
        )
    await world.drain(world.worker())
    [row] = await world.deliveries(endpoint_id)
    assert row.status == "CANCELED"


async def test_redelivery_sends_the_same_event_again_under_a_new_delivery(world: World) -> None:
    async with running_receiver() as receiver:
        endpoint_id, secret = await world.endpoint(receiver.url)
        receiver.secrets = [secret]
        await world.emit()
        await world.drain(world.worker())
        [original] = await world.deliveries(endpoint_id)
        async with world.pool.acquire() as conn:
            again = await webhooks.redeliver(
                conn,
                marketplace_id=world.marketplace_id,
                endpoint_id=endpoint_id,
                delivery_id=original.id,
            )
            with pytest.raises(WebhookDeliveryNotFound):
                await webhooks.redeliver(
                    conn,
                    marketplace_id=world.marketplace_id,
                    endpoint_id=endpoint_id,
                    delivery_id="whd_" + "0" * 32,
                )
        assert again.status == "PENDING"
        assert again.redelivery_of == original.id
        assert again.event_id == original.event_id
        assert again.id != original.id
        await world.drain(world.worker())

    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["offerhub-event-id"] == second.headers["offerhub-event-id"]
    assert second.headers["offerhub-delivery-id"] == again.id
    assert second.verified_with == [secret]
    statuses = {row.id: row.status for row in await world.deliveries(endpoint_id)}
    assert statuses == {original.id: "SUCCEEDED", again.id: "SUCCEEDED"}


async def test_private_addresses_are_refused_at_delivery_without_the_insecure_setting(
    world: World,
) -> None:
    async with running_receiver() as receiver:
        endpoint_id, _ = await world.endpoint(f"https://127.0.0.1:{receiver.port}/hooks")
        await world.emit()
        strict = msgspec.structs.replace(FAST, allow_insecure_urls=False, max_age_s=0.0)
        await world.drain(world.worker(strict))
    assert receiver.requests == []
    [row] = await world.deliveries(endpoint_id)
    assert row.status == "FAILED"
    assert row.last_error is not None
    assert "loopback" in row.last_error


async def test_a_dead_workers_claim_returns_after_its_lease(world: World) -> None:
    async with running_receiver() as receiver:
        endpoint_id, _ = await world.endpoint(receiver.url)
        await world.emit()
        short = msgspec.structs.replace(FAST, lease_s=0.2)
        assert len(await world.worker(short).claim(10)) == 1  # this worker "dies" here
        assert await world.worker(short).claim(10) == []
        await asyncio.sleep(0.3)
        await world.drain(world.worker(short))
    [row] = await world.deliveries(endpoint_id)
    assert row.status == "SUCCEEDED"
    assert row.attempts == 2
    assert len(receiver.requests) == 1


async def test_the_dispatcher_delivers_in_the_background(world: World) -> None:
    async with running_receiver(_fails(1)) as receiver:
        endpoint_id, secret = await world.endpoint(receiver.url)
        receiver.secrets = [secret]
        settings = msgspec.structs.replace(FAST, poll_interval_s=0.05)
        dispatcher = WebhookDispatcher(world.worker(settings))
        dispatcher.start()
        try:
            started = time.monotonic()
            await world.emit()
            await receiver.wait_for(2)
            assert time.monotonic() - started < 5
            for _ in range(100):
                if (await world.deliveries(endpoint_id))[0].status == "SUCCEEDED":
                    break
                await asyncio.sleep(0.02)
        finally:
            await dispatcher.stop()
    assert receiver.succeeded()[0].verified_with == [secret]
    assert verify(
        receiver.requests[1].headers["offerhub-signature"],
        receiver.requests[1].body,
        secret,
        time.time(),
    )
    [row] = await world.deliveries(endpoint_id)
    assert row.status == "SUCCEEDED"
    assert row.attempts == 2
