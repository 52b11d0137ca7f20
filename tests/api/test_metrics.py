"""``GET /metrics``: the exposition, request metrics by route template, token, scrape-time gauges.

The default registry is shared by every app of the test process, so counters are compared
before and after the requests a test makes.
"""

import re
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from api.metrics_database import database_snapshot
from common.ids import new_id
from ledger import create_pool, create_transfers
from tests.api.support import Api, running_api, running_api_on_sandbox, settings_for_tests
from tests.db.conftest import Books, create_account, create_marketplace, transfer

pytestmark = pytest.mark.db

ORDER_ROUTE = "/api/v1/orders/{order_id}"
# Any of our prefixed ids, a Stellar account or a 64-hex hash: none may be a label value.
ID_LIKE = re.compile(r"[a-z]{2,4}_[0-9A-Za-z]{32}|G[A-Z2-7]{55}|[0-9a-f]{64}")


async def scrape(client: httpx.AsyncClient, **headers: str) -> list[Sample]:
    """Every sample of one scrape (families flattened)."""
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return [
        sample
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    """The value of the one sample named ``name`` with exactly ``labels``, if any."""
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) <= 1
    return found[0] if found else None


def count(samples: list[Sample], name: str, **labels: str) -> float:
    """A counter's value, 0 when the series does not exist yet."""
    return value(samples, name, **labels) or 0.0


def label_values(samples: list[Sample]) -> Iterator[str]:
    """Every label value but ``marketplace``: the reconciliation gauges are per marketplace (the
    issue names that label), a set bounded by the installation's tenants, not by its traffic.
    """
    for sample in samples:
        yield from (value for name, value in sample.labels.items() if name != "marketplace")


async def test_requests_are_counted_by_route_template_and_status(api: Api) -> None:
    marketplace_id, key = await api.tenant()
    order_id = new_id("ord_")
    before = await scrape(api.client)
    missing = await api.get(f"/api/v1/orders/{order_id}", key)
    assert missing.status_code == 404
    listed = await api.get("/api/v1/orders", key)
    assert listed.status_code == 200
    nowhere = await api.client.get(f"/no/such/{order_id}")
    assert nowhere.status_code == 404
    after = await scrape(api.client)

    def delta(name: str, **labels: str) -> float:
        return count(after, name, **labels) - count(before, name, **labels)

    total = "offerhub_http_requests_total"
    assert delta(total, method="GET", route=ORDER_ROUTE, status="404") == 1
    assert delta(total, method="GET", route="/api/v1/orders", status="200") == 1
    assert delta(total, method="GET", route="unmatched", status="404") == 1
    # The scrape before this one was counted too, under its own template.
    assert delta(total, method="GET", route="/metrics", status="200") == 1
    histogram = "offerhub_http_request_duration_seconds_count"
    assert delta(histogram, method="GET", route=ORDER_ROUTE) == 1
    values = set(label_values(after))
    assert not {marketplace_id, order_id, key} & values
    assert not [text for text in values if ID_LIKE.search(text) or "/no/such" in text]


async def test_idempotency_replays_and_conflicts_are_counted(api: Api) -> None:
    _, key = await api.tenant()
    before = await scrape(api.client)
    first = await api.post("/api/v1/test/effects", key, {"note": "a"}, idempotency_key="k-1")
    again = await api.post("/api/v1/test/effects", key, {"note": "a"}, idempotency_key="k-1")
    other = await api.post("/api/v1/test/effects", key, {"note": "b"}, idempotency_key="k-1")
    assert (first.status_code, again.status_code, other.status_code) == (201, 201, 409)
    assert again.headers["Idempotency-Replayed"] == "true"
    after = await scrape(api.client)
    replays = "offerhub_idempotency_replays_total"
    conflicts = "offerhub_idempotency_conflicts_total"
    assert count(after, replays) - count(before, replays) == 1
    assert count(after, conflicts, reason="reused") - count(before, conflicts, reason="reused") == 1
    assert value(after, conflicts, reason="in_progress") is not None


async def test_a_configured_token_is_required_and_scrapes_are_never_rate_limited(
    db_dsn: str,
) -> None:
    token = "scrape-token-0123456789"
    settings = settings_for_tests(metrics_token=token, rate_limit_per_s=1, rate_limit_burst=1)
    async with running_api(db_dsn, settings=settings) as api:
        anonymous = await api.client.get("/metrics")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "UNAUTHORIZED"
        wrong = await api.client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert "offerhub_" not in wrong.text
        for _ in range(5):
            samples = await scrape(api.client, Authorization=f"Bearer {token}")
            assert value(samples, "offerhub_metrics_database_up") == 1
        scraped = await api.client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert "X-RateLimit-Limit" not in scraped.headers


async def _books(conn: asyncpg.Connection) -> Books:
    marketplace_id = await create_marketplace(conn)
    return Books(
        marketplace_id=marketplace_id,
        alice=await create_account(conn, marketplace_id, "user:alice"),
        bob=await create_account(conn, marketplace_id, "user:bob"),
        world=await create_account(conn, marketplace_id, "external:stellar", bounded=False),
        euro=await create_account(conn, marketplace_id, "user:euro", asset="EUR"),
    )


async def test_ledger_transfers_are_counted_and_the_books_show_no_imbalance(api: Api) -> None:
    conn = await asyncpg.connect(api.dsn)
    try:
        books = await _books(conn)
        before = await scrape(api.client)
        async with conn.transaction():
            deposit = transfer(books, books.world, books.alice, 100, code="deposit")
            too_much = transfer(books, books.alice, books.bob, 500, code="deposit")
            await create_transfers(conn, [deposit, too_much])
        after = await scrape(api.client)
        assert value(after, "offerhub_ledger_imbalance", currency="USD") == 0
        transfers = "offerhub_ledger_transfers_total"
        for result in ("ok", "exceeds_credits"):
            labels = {"code": "deposit", "result": result}
            assert count(after, transfers, **labels) - count(before, transfers, **labels) == 1
        batches = "offerhub_ledger_create_transfers_duration_seconds_count"
        assert count(after, batches, code="deposit") - count(before, batches, code="deposit") == 1
        # Books that do not balance (only possible with the schema's triggers off) are reported.
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(
                "UPDATE ledger_accounts SET credits_posted = credits_posted + 7"
                " WHERE marketplace_id = $1 AND id = $2",
                books.marketplace_id,
                books.bob,
            )
        broken = await scrape(api.client)
        assert value(broken, "offerhub_ledger_imbalance", currency="USD") == 7
    finally:
        await conn.close()


async def _insert_operation(
    conn: asyncpg.Connection, marketplace_id: str, kind: str, *, age_s: int, due_s: int
) -> None:
    await conn.execute(
        "INSERT INTO operations (marketplace_id, id, kind, resource_type, resource_id, step,"
        " created_at, next_attempt_at, last_error)"
        " VALUES ($1, $2, $3, 'order', $4, 'build', now() - make_interval(secs => $5),"
        " now() - make_interval(secs => $6), $7::jsonb)",
        marketplace_id,
        new_id("op_"),
        kind,
        new_id("ord_"),
        float(age_s),
        float(due_s),
        '{"error": "timeout"}' if due_s > 0 else None,
    )


async def test_operations_gauges_count_running_operations_by_kind(api: Api) -> None:
    conn = await asyncpg.connect(api.dsn)
    try:
        marketplace_id = await create_marketplace(conn)
        await _insert_operation(conn, marketplace_id, "ESCROW_FUND", age_s=3600, due_s=600)
        await _insert_operation(conn, marketplace_id, "ESCROW_FUND", age_s=60, due_s=0)
        await _insert_operation(conn, marketplace_id, "RELEASE", age_s=10, due_s=-30)
        samples = await scrape(api.client)
    finally:
        await conn.close()
    in_flight = {
        s.labels["kind"]: s.value for s in samples if s.name == "offerhub_operations_in_flight"
    }
    assert in_flight["ESCROW_FUND"] == 2
    assert in_flight["RELEASE"] == 1
    assert {kind for kind, running in in_flight.items() if running == 0} >= {"WALLET_ACTIVATE"}
    oldest = value(samples, "offerhub_operations_oldest_age_seconds", kind="ESCROW_FUND")
    assert oldest is not None
    assert 3600 <= oldest < 3700
    overdue = value(samples, "offerhub_operations_overdue_seconds", kind="ESCROW_FUND")
    assert overdue is not None
    assert 600 <= overdue < 700
    assert value(samples, "offerhub_operations_overdue_seconds", kind="RELEASE") == 0
    assert value(samples, "offerhub_operations_with_errors", kind="ESCROW_FUND") == 1
    assert value(samples, "offerhub_operations_oldest_age_seconds", kind="REFUND") == 0


async def test_outbox_lag_shows_events_held_back_by_an_older_open_transaction(api: Api) -> None:
    marketplace_id, _ = await api.tenant()
    holder = await asyncpg.connect(api.dsn)
    writer = await asyncpg.connect(api.dsn)
    emit_sql = (
        "INSERT INTO events (id, marketplace_id, type, resource_type, resource_id, data)"
        " VALUES ($1, $2, 'test.effect', 'test', 'tst_1', '{}')"
    )
    try:
        assert value(await scrape(api.client), "offerhub_outbox_lag_seconds") == 0
        older = holder.transaction()
        await older.start()
        await holder.execute(emit_sql, new_id("evt_"), marketplace_id)  # takes its xid first
        await writer.execute(
            "INSERT INTO events (id, marketplace_id, type, resource_type, resource_id, data,"
            " occurred_at) VALUES ($1, $2, 'test.effect', 'test', 'tst_2', '{}',"
            " now() - interval '90 seconds')",
            new_id("evt_"),
            marketplace_id,
        )
        lag = value(await scrape(api.client), "offerhub_outbox_lag_seconds")
        assert lag is not None
        assert 90 <= lag < 150
        await older.rollback()
        assert value(await scrape(api.client), "offerhub_outbox_lag_seconds") == 0
    finally:
        await holder.close()
        await writer.close()


async def test_webhook_backlog_is_exported_when_the_deliveries_table_exists(api: Api) -> None:
    conn = await asyncpg.connect(api.dsn)
    try:
        exists = await conn.fetchval("SELECT to_regclass('webhook_deliveries') IS NOT NULL")
    finally:
        await conn.close()
    samples = await scrape(api.client)
    backlog = value(samples, "offerhub_webhook_backlog")
    assert (backlog == 0) if exists else (backlog is None)


async def test_provider_requests_are_counted_with_bounded_operations(db_dsn: str) -> None:
    async with running_api_on_sandbox(db_dsn) as api:
        before = await scrape(api.client)
        _, key = await api.tenant()
        created = await api.post("/api/v1/users", key, {"external_user_id": "alice"})
        assert created.status_code == 201, created.text
        user_id = created.json()["id"]
        wallet = await api.get(f"/api/v1/users/{user_id}/wallet", key)
        assert wallet.status_code == 200, wallet.text
        after = await scrape(api.client)
    provider = [s for s in after if s.name == "offerhub_provider_requests_total"]
    grown = [
        s
        for s in provider
        if s.value > count(before, s.name, **s.labels) and s.labels["provider"] == "stellar"
    ]
    assert grown, "reading a wallet calls Horizon"
    assert {s.labels["operation"] for s in grown} >= {"GET /accounts/{id}"}
    assert all(s.labels["outcome"] in {"ok", "client_error"} for s in grown)
    values = set(label_values(after))
    assert user_id not in values
    assert not [text for text in values if ID_LIKE.search(text)]


async def test_a_database_that_does_not_answer_leaves_only_database_up_zero(db_dsn: str) -> None:
    pool = await create_pool(db_dsn, min_size=1, max_size=1)
    async with pool.acquire():  # the one connection is busy: the scrape cannot get one in time
        families = await database_snapshot(pool, 0.2)
    await pool.close()
    samples = {sample.name: sample.value for family in families for sample in family.samples}
    assert samples == {"offerhub_metrics_database_up": 0}
    assert "offerhub_ledger_imbalance" in {family.name for family in families}
