"""``/audit/logs`` and ``offerhub audit verify`` (api.md 3.11), over HTTP on a real database.

The walk drives every mutating route of the app once (on the sandbox, as the marketplace story
does) with its own ``X-Request-ID``, then finds, for each request, the audit entries it wrote:
actor, action, before/after and the request's idempotency key. A route added later without an
audit entry makes the walk fail (routes owned by the webhook work are listed apart).
"""

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from api.cli import main
from api.routes import ROUTES
from flows.users import create_user
from ledger import run_in_transaction
from tests.api.support import MASTER_KEY, Api, running_api, running_api_on_sandbox
from tests.api.test_orders_support import ACTOR, KEYRING, USDC, V1, Market, code, new_market

pytestmark = pytest.mark.db

AUDIT = "/audit/logs"
PAYEE = "payee@example.com"
# Written alongside this walk by the webhook and reconciliation work (api.md 3.10, 3.13, 3.14);
# the lead wires their audit entries and moves them into the walk.
# Signed by the provider, not called with an API key: tests/api/test_provider_webhooks.py
# checks their WEBHOOK_RECEIVED entries.
NOT_WALKED = frozenset({"airtm_webhook", "trustless_work_webhook"})


def _template(path: str) -> str:
    return path.replace(":str", "")


_HANDLERS = {
    (method, _template(path)): handler.handler_name
    for handler in ROUTES
    for method in handler.http_methods
    if method not in ("GET", "HEAD", "OPTIONS")
    for path in handler.paths
}


class Walk:
    """Sends mutations with a fresh request id and remembers which route each one took."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.calls: list[tuple[str, str, str, str]] = []  # handler, request id, key, idem key

    async def call(
        self,
        method: str,
        template: str,
        body: Any = None,
        *,
        status: int = 200,
        key: str | None = None,
        **ids: str,
    ) -> dict[str, Any]:
        """``method`` on ``template`` filled with ``ids``; the answer must be ``status``."""
        handler = _HANDLERS[(method, template)]
        request_id, idempotency_key = f"walk-{uuid.uuid4().hex}", str(uuid.uuid4())
        headers = {
            "Authorization": f"Bearer {key or self.market.key}",
            "Idempotency-Key": idempotency_key,
            "X-Request-ID": request_id,
            "User-Agent": "audit-walk/1",
        }
        url = V1 + template.format(**ids)
        client = self.market.api.client
        response = await client.request(method, url, json=body, headers=headers)
        assert response.status_code == status, (handler, response.text)
        self.calls.append((handler, request_id, key or self.market.key, idempotency_key))
        return dict(response.json()) if response.content else {}


async def _entries(market: Market, **filters: Any) -> list[dict[str, Any]]:
    response = await market.get(AUDIT, **filters, limit=100)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def _users_and_money(walk: Walk, market: Market) -> tuple[str, str]:
    buyer = (await walk.call("POST", "/users", {"external_user_id": "b"}, status=201))["id"]
    seller = (await walk.call("POST", "/users", {"external_user_id": "s"}, status=201))["id"]
    market.public_keys[buyer] = (await market.get(f"/users/{buyer}")).json()["wallet"]["public_key"]
    await market.wallets_active([buyer, seller])
    market.sandbox_api.sandbox.chain.mint(market.public_keys[buyer], 200 * USDC)
    adjustment = {
        "direction": "CREDIT",
        "amount": "200",
        "reason": "on-chain deposit",
        "counter_account": "external:stellar",
    }
    path = "/users/{user_id}/balance/adjustments"
    await walk.call("POST", path, adjustment, status=201, user_id=buyer)
    market.sandbox_api.sandbox.airtm.add_user("buyer@example.com")
    link = {"email": "buyer@example.com"}
    await walk.call("POST", "/users/{user_id}/airtm/link", link, user_id=buyer)
    return buyer, seller


async def _funded_order(walk: Walk, buyer: str, seller: str, amount: str, **extra: Any) -> str:
    body = {"buyer_id": buyer, "seller_id": seller, "amount": amount, "title": "Logo", **extra}
    order = (await walk.call("POST", "/orders", body, status=201))["id"]
    await walk.call("POST", "/orders/{order_id}/reserve", order_id=order)
    await walk.call("POST", "/orders/{order_id}/escrow", status=201, order_id=order)
    await walk.call("POST", "/orders/{order_id}/escrow/fund", order_id=order)
    return str(order)


async def _orders(walk: Walk, buyer: str, seller: str) -> None:
    milestones = [{"milestone_ref": "m1", "title": "All", "amount": "30"}]
    released = await _funded_order(walk, buyer, seller, "30", milestones=milestones)
    path = "/orders/{order_id}/milestones/{milestone_ref}/complete"
    await walk.call("POST", path, order_id=released, milestone_ref="m1")
    await walk.call("POST", "/orders/{order_id}/resolution/release", order_id=released)
    disputed = await _funded_order(walk, buyer, seller, "20")
    body = {"opened_by": "BUYER", "reason": "QUALITY_ISSUE"}
    path = "/orders/{order_id}/resolution/dispute"
    dispute = (await walk.call("POST", path, body, status=201, order_id=disputed))["id"]
    assign = {"assigned_to": "agent-7"}
    await walk.call("POST", "/disputes/{dispute_id}/assign", assign, dispute_id=dispute)
    resolve = {"decision": "FULL_REFUND"}
    await walk.call("POST", "/disputes/{dispute_id}/resolve", resolve, dispute_id=dispute)
    refunded = await _funded_order(walk, buyer, seller, "10")
    path = "/orders/{order_id}/resolution/refund"
    await walk.call("POST", path, {"reason": "late"}, order_id=refunded)
    body = {"buyer_id": buyer, "seller_id": seller, "amount": "5", "title": "Spare"}
    canceled = (await walk.call("POST", "/orders", body, status=201))["id"]
    await walk.call("POST", "/orders/{order_id}/cancel", order_id=canceled)


async def _topups_and_withdrawals(walk: Walk, market: Market, buyer: str) -> None:
    airtm = market.sandbox_api.sandbox.airtm
    body = {
        "user_id": buyer,
        "amount": "25",
        "return_url": "https://shop.example/ok",
        "cancel_url": "https://shop.example/no",
    }
    topup = await walk.call("POST", "/topups", body, status=201)
    airtm.payer_confirms(topup["airtm_payin_id"])
    await walk.call("POST", "/topups/{topup_id}/refresh", topup_id=topup["id"])
    other = await walk.call("POST", "/topups", body, status=201)
    await walk.call("POST", "/topups/{topup_id}/cancel", topup_id=other["id"])
    body = {
        "user_id": buyer,
        "amount": "5",
        "destination_type": "airtm_balance",
        "destination_ref": PAYEE,
    }
    withdrawal = await walk.call("POST", "/withdrawals", body, status=201)
    await walk.call("POST", "/withdrawals/{withdrawal_id}/commit", withdrawal_id=withdrawal["id"])
    airtm.payout_completes(withdrawal["airtm_payout_id"])
    path = "/withdrawals/{withdrawal_id}/refresh"
    await walk.call("POST", path, withdrawal_id=withdrawal["id"])
    spare = await walk.call("POST", "/withdrawals", body, status=201)
    await walk.call("POST", "/withdrawals/{withdrawal_id}/cancel", withdrawal_id=spare["id"])


async def _webhook_endpoint(walk: Walk) -> str:
    """An endpoint for order events; created before the orders so that it gets deliveries."""
    body = {"url": "https://hooks.example.com/offerhub", "event_types": ["order.*"]}
    return str((await walk.call("POST", "/webhook-endpoints", body, status=201))["id"])


async def _manage_webhooks_and_reconcile(walk: Walk, market: Market, endpoint: str) -> None:
    listed = await market.get(f"/webhook-endpoints/{endpoint}/deliveries")
    assert listed.status_code == 200, listed.text
    delivery = listed.json()["data"][0]["id"]
    path = "/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver"
    await walk.call("POST", path, status=202, endpoint_id=endpoint, delivery_id=delivery)
    path = "/webhook-endpoints/{endpoint_id}/rotate-secret"
    await walk.call("POST", path, {"grace_period_seconds": 0}, endpoint_id=endpoint)
    await walk.call("DELETE", "/webhook-endpoints/{endpoint_id}", status=204, endpoint_id=endpoint)
    await walk.call("POST", "/reconciliation/runs", {"sources": ["ledger"]}, status=201)


async def _tenant(walk: Walk, api: Api) -> tuple[str, str]:
    """A marketplace and an all-scope key, made with the master key through the walk."""
    name = {"name": f"mkt-{uuid.uuid4().hex[:12]}"}
    marketplace = await walk.call("POST", "/marketplaces", name, status=201, key=MASTER_KEY)
    body = {"name": "walk", "scopes": ["*"], "marketplace_id": marketplace["id"]}
    created = await walk.call("POST", "/auth/api-keys", body, status=201, key=MASTER_KEY)
    return str(marketplace["id"]), str(created["key"])


async def test_every_mutating_route_writes_audit_entries(db_dsn: str, pool: asyncpg.Pool) -> None:
    async with running_api_on_sandbox(db_dsn, wait_s=10.0) as api:
        api.sandbox.airtm.fund(1_000 * USDC)
        api.sandbox.airtm.add_user(PAYEE)
        walk = Walk(Market(api, pool, "", MASTER_KEY))
        marketplace_id, key = await _tenant(walk, api)
        market = Market(api, pool, marketplace_id, key)
        walk.market = market
        endpoint = await _webhook_endpoint(walk)
        buyer, seller = await _users_and_money(walk, market)
        await _orders(walk, buyer, seller)
        await _topups_and_withdrawals(walk, market, buyer)
        await _manage_webhooks_and_reconcile(walk, market, endpoint)
        spare = await walk.call(
            "POST", "/auth/api-keys", {"name": "spare", "scopes": ["read"]}, status=201
        )
        await walk.call("DELETE", "/auth/api-keys/{key_id}", key_id=spare["id"])

        walked = {handler for handler, *_ in walk.calls}
        assert set(_HANDLERS.values()) - NOT_WALKED - walked == set()
        for handler, request_id, caller_key, idempotency_key in walk.calls:
            entries = await _entries(market, request_id=request_id)
            assert entries, f"{handler} wrote no audit entry"
            for entry in entries:
                assert entry["request_id"] == request_id
                assert entry["idempotency_key"] == idempotency_key, (handler, entry)
                assert entry["user_agent"] == "audit-walk/1"
                assert entry["result"] == "SUCCESS"
                if caller_key == MASTER_KEY:
                    assert entry["actor"] == {"type": "MASTER_KEY", "id": None}
                else:
                    assert entry["actor"]["type"] == "API_KEY"
                    assert caller_key.startswith(f"ohk_test_{entry['actor']['id']}_")
        verified = (await market.get(f"{AUDIT}/verify")).json()
        everything = await pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE marketplace_id = $1", marketplace_id
        )
        assert verified == {
            "valid": True,
            "entries_checked": everything,
            "first_invalid_id": None,
            "head_hash": verified["head_hash"],
        }
        # Provider outcomes (operation hooks) are in the chain too, as PROVIDER.
        providers = await _entries(market, actor_type="PROVIDER", action="ESCROW_FUNDED")
        assert len(providers) == 3
        assert {entry["resource_type"] for entry in providers} == {"escrow"}


async def _story(api: Api, pool: asyncpg.Pool) -> tuple[Market, list[str]]:
    """A marketplace with a few changes: two users, a credit and three orders."""
    market = await new_market(api, pool, users_via_api=False)
    buyer, seller = await market.user(), await market.user()
    await market.credit(buyer, "50")
    orders = [(await market.order(buyer, seller, "5"))["id"] for _ in range(3)]
    return market, orders


async def _all_pages(market: Market, **filters: Any) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**filters, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await market.get(AUDIT, **params)).json()
        entries += page["data"]
        if not page["pagination"]["has_more"]:
            return entries
        cursor = page["pagination"]["next_cursor"]


async def test_filters_pages_and_tenants(db_dsn: str, pool: asyncpg.Pool) -> None:
    async with running_api(db_dsn) as api:
        market, orders = await _story(api, pool)
        other, other_orders = await _story(api, pool)
        everything = await _entries(market)
        assert [entry["chain_index"] for entry in everything] == list(range(8, 0, -1))
        assert {entry["marketplace_id"] for entry in everything} == {market.marketplace_id}
        assert [entry["action"] for entry in everything[::-1]] == [
            "MARKETPLACE_CREATED",
            "API_KEY_CREATED",
            "USER_CREATED",
            "USER_CREATED",
            "BALANCE_ADJUSTED",
            "ORDER_CREATED",
            "ORDER_CREATED",
            "ORDER_CREATED",
        ]
        assert await _all_pages(market) == everything
        created = await _entries(market, action="ORDER_CREATED")
        assert [entry["resource_id"] for entry in created] == orders[::-1]
        [one] = await _entries(market, resource_type="order", resource_id=orders[1])
        assert one["after"]["amount"] == "5.00"
        assert one["before"] is None
        masters = await _entries(market, actor_type="MASTER_KEY")
        assert [entry["action"] for entry in masters] == ["API_KEY_CREATED", "MARKETPLACE_CREATED"]
        [credit] = await _entries(market, action="BALANCE_ADJUSTED")
        assert (credit["before"]["available"], credit["after"]["available"]) == ("0.00", "50.00")
        by_request = await _entries(market, request_id=credit["request_id"])
        assert [entry["id"] for entry in by_request] == [credit["id"]]
        key_id = credit["actor"]["id"]
        assert len(await _entries(market, actor_id=key_id)) == 4  # credit and orders
        since = await _entries(market, **{"from": created[1]["occurred_at"]})
        assert len(since) >= 2
        assert all(entry["occurred_at"] >= created[1]["occurred_at"] for entry in since)
        until = await _entries(market, to=credit["occurred_at"])
        assert all(entry["occurred_at"] < credit["occurred_at"] for entry in until)
        # Another marketplace's entries answer as if they did not exist.
        assert await _entries(other, resource_id=orders[0]) == []
        assert {entry["marketplace_id"] for entry in await _entries(other)} == {
            other.marketplace_id
        }
        assert [e["resource_id"] for e in await _entries(other, action="ORDER_CREATED")] == (
            other_orders[::-1]
        )


async def test_scopes_and_refused_queries(db_dsn: str, pool: asyncpg.Pool) -> None:
    async with running_api(db_dsn) as api:
        market, _ = await _story(api, pool)
        reader = await api.new_key(market.marketplace_id, ["read", "write"])
        support = await api.new_key(market.marketplace_id, ["support"])
        for path in (AUDIT, f"{AUDIT}/verify"):
            refused = await market.get(path, key=reader)
            assert (refused.status_code, code(refused)) == (403, "INSUFFICIENT_SCOPE")
            assert (await market.get(path, key=support)).status_code == 200
            master = await market.get(path, key=MASTER_KEY)
            assert (master.status_code, code(master)) == (403, "INSUFFICIENT_SCOPE")
        for params, field in [
            ({"actor_type": "ROBOT"}, "query.actor_type"),
            ({"from": "2026-01-01"}, "query.from"),
            ({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "query.to"),
            ({"limit": 0}, "query.limit"),
            ({"colour": "red"}, "query.colour"),
        ]:
            bad = await market.get(AUDIT, **params)
            assert (bad.status_code, code(bad)) == (400, "VALIDATION_ERROR"), params
            fields = [item["field"] for item in bad.json()["error"]["details"]["fields"]]
            assert field in fields, (params, fields)
        page = (await market.get(AUDIT, limit=1)).json()
        cursor = page["pagination"]["next_cursor"]
        moved = await market.get(AUDIT, action="ORDER_CREATED", cursor=cursor)
        assert (moved.status_code, code(moved)) == (400, "VALIDATION_ERROR")


async def test_no_secret_reaches_the_log_and_emails_are_masked(
    db_dsn: str, pool: asyncpg.Pool
) -> None:
    async with running_api(db_dsn) as api:
        market, _ = await _story(api, pool)
        created = await market.post("/auth/api-keys", {"name": "ci", "scopes": ["read"]})
        assert created.status_code == 201, created.text
        secret_key = created.json()["key"]
        revoked = await api.client.delete(
            f"{V1}/auth/api-keys/{created.json()['id']}", headers=api.auth(market.key)
        )
        assert revoked.status_code == 200, revoked.text

        async def work(conn: asyncpg.Connection) -> None:
            await create_user(
                conn,
                KEYRING,
                marketplace_id=market.marketplace_id,
                external_user_id="jane",
                email="jane.doe@example.com",
                actor=ACTOR,
            )

        await run_in_transaction(pool, work)
        dump = await pool.fetchval("SELECT string_agg(summary::text, ' ') FROM audit_log")
        for secret in (secret_key, market.key, secret_key.rsplit("_", 1)[1], "jane.doe"):
            assert secret not in dump
        [issued] = await _entries(
            market, action="API_KEY_CREATED", resource_id=created.json()["id"]
        )
        assert issued["after"] == {"name": "ci", "scopes": ["read"], "status": "ACTIVE"}
        [revocation] = await _entries(market, action="API_KEY_REVOKED")
        assert (revocation["before"], revocation["after"]["status"]) == (
            {"status": "ACTIVE"},
            "REVOKED",
        )
        [jane] = [
            e
            for e in await _entries(market, action="USER_CREATED")
            if e["after"]["external_user_id"] == "jane"
        ]
        assert jane["after"]["email"] == "j***@example.com"


async def _tamper_one(dsn: str, marketplace_id: str, chain_index: int) -> str:
    """Alter one entry behind the append-only trigger (as the tables' owner); its id."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
            entry_id = await conn.fetchval(
                "UPDATE audit_log SET action = 'REFUNDED'"
                " WHERE marketplace_id = $1 AND chain_index = $2 RETURNING id",
                marketplace_id,
                chain_index,
            )
            await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
        return str(entry_id)
    finally:
        await conn.close()


async def test_verify_finds_an_altered_entry_of_its_own_marketplace_only(
    db_dsn: str, pool: asyncpg.Pool
) -> None:
    async with running_api(db_dsn) as api:
        market, _ = await _story(api, pool)
        other, _ = await _story(api, pool)
        clean = (await market.get(f"{AUDIT}/verify")).json()
        head = (await _entries(market))[0]
        assert clean == {
            "valid": True,
            "entries_checked": head["chain_index"],
            "first_invalid_id": None,
            "head_hash": head["hash"],
        }
        altered = await _tamper_one(db_dsn, market.marketplace_id, 4)
        broken = (await market.get(f"{AUDIT}/verify")).json()
        assert (broken["valid"], broken["first_invalid_id"], broken["entries_checked"]) == (
            False,
            altered,
            4,
        )
        # A window that ends before the altered entry is still valid; the other tenant too.
        third = (await _entries(market))[-4]
        window = await market.get(f"{AUDIT}/verify", to=third["occurred_at"])
        assert window.json()["valid"] is True
        assert (await other.get(f"{AUDIT}/verify")).json()["valid"] is True


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    return status, capsys.readouterr().out


def test_cli_audit_verify_exit_codes(
    db_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_dsn)
    assert _cli(capsys, "audit", "verify") == (0, "no audit entries\n")
    for name in ("Shop", "Market"):
        status, _ = _cli(capsys, "keys", "create", "--marketplace", name, "--scopes", "read")
        assert status == 0
    status, out = _cli(capsys, "audit", "verify")
    lines = out.splitlines()
    assert status == 0
    assert len(lines) == 2
    assert all("  valid    1 entries  head " in line for line in lines)
    victim = lines[1].split()[0]
    altered = asyncio.run(_tamper_one(db_dsn, victim, 1))
    status, out = _cli(capsys, "audit", "verify")
    assert status == 1
    assert f"{victim}  INVALID  first invalid entry {altered}" in out
    assert _cli(capsys, "audit", "verify", "--marketplace", victim)[0] == 1
    healthy = lines[0].split()[0]
    assert _cli(capsys, "audit", "verify", "--marketplace", healthy)[0] == 0
