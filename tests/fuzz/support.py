"""The fuzz targets: the real app on the sandbox behind a real HTTP server, seeded with data.

:func:`serving_on_sandbox` builds the app exactly as ``tests.api.support.running_api_on_sandbox``
does (real provider clients to an in-process sandbox, the operation runner) but serves it with
uvicorn on a free port in the test's event loop, so requests go through real HTTP parsing: what
a fuzzer or a hostile client sends is read by the same server code as in production.
:func:`seed` fills one marketplace with users, balances, orders in several states, a dispute, a
top-up, a withdrawal and a webhook endpoint, and returns their ids by path parameter.
"""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx

from api.api_keys import parse_key
from api.app import create_app
from api.serve import sandbox_config
from providers.sandbox.app import Sandbox
from tests.api.support import MASTER_KEY, SandboxApi, sandbox_runtime, settings_for_tests
from tests.api.test_orders_support import USDC, Market
from tests.serving import serving

__all__ = ["MASTER_KEY", "Seeded", "served_market", "serving_on_sandbox"]


@contextlib.asynccontextmanager
async def serving_on_sandbox(dsn: str, *, wait_s: float = 5.0) -> AsyncIterator[SandboxApi]:
    """The app with its sandbox runtime on a free port; a client on it (base_url set)."""
    sandbox = Sandbox(seed=3, start_s=1_800_000_000)
    providers = sandbox.provider_settings("http://sandbox.test")
    factory = sandbox_runtime(
        sandbox,
        providers,
        wait_s=wait_s,
        deposit_poll_s=None,
        transport=httpx.ASGITransport(app=sandbox.asgi_app()),
    )
    settings = settings_for_tests(
        # Outbound webhooks polled hourly: fuzzed endpoints are never called during the run.
        webhook_poll_interval_s=3600.0,
        # Top-ups may omit their return URLs, as a configured deployment allows.
        topup_return_url="https://shop.example/paid",
        topup_cancel_url="https://shop.example/cancelled",
    )
    app = create_app(settings, dsn, public_config=sandbox_config(providers), runtime=factory)
    async with (
        serving(app) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
    ):
        yield SandboxApi(client, dsn, sandbox)


class Seeded:
    """One seeded marketplace: its keys and the ids of what it holds, by path parameter."""

    def __init__(self, market: Market, spare_key_id: str) -> None:
        self.market = market
        self.key = market.key
        self.base_url = str(market.api.client.base_url)
        # Ids a fuzzed request may name in place of a generated one; the spare key may be
        # revoked by a fuzzed DELETE without locking the fuzzer out.
        self.ids: dict[str, list[str]] = {"key_id": [spare_key_id]}

    def add(self, parameter: str, *values: str) -> None:
        """Record existing ids for ``parameter``."""
        self.ids.setdefault(parameter, []).extend(values)


async def _must(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, response.text
    return dict(response.json())


async def _orders(market: Market, seeded: Seeded, buyer: str, seller: str) -> None:
    """Orders created, reserved, in progress and disputed; the milestone refs."""
    milestones = [
        {"milestone_ref": "draft", "title": "Draft", "amount": "30"},
        {"milestone_ref": "final", "title": "Final", "amount": "50"},
    ]
    created = await market.order(buyer, seller, "80", milestones=milestones)
    reserved = await market.order(buyer, seller, "20")
    await market.step(f"/orders/{reserved['id']}/reserve")
    in_progress = await market.in_progress(buyer, seller, "40")
    disputed = await market.in_progress(buyer, seller, "10")
    dispute = await market.step(
        f"/orders/{disputed}/resolution/dispute",
        {"opened_by": "BUYER", "reason": "QUALITY_ISSUE"},
        status=201,
    )
    seeded.add("order_id", created["id"], reserved["id"], in_progress, disputed)
    seeded.add("milestone_ref", "draft", "final")
    seeded.add("dispute_id", dispute["id"])


async def _money_movements(market: Market, seeded: Seeded, buyer: str) -> None:
    """A top-up awaiting the payer and a crypto withdrawal."""
    topup = await _must(
        await market.post(
            "/topups",
            {
                "user_id": buyer,
                "amount": "25",
                "return_url": "https://shop.example/paid",
                "cancel_url": "https://shop.example/cancelled",
            },
        ),
        201,
    )
    destination = market.sandbox_api.sandbox.chain.activate().public_key
    body = {
        "user_id": buyer,
        "amount": "5",
        "destination_type": "crypto",
        "destination_ref": destination,
    }
    withdrawal = await _must(await market.post("/withdrawals", body), 201, 202)
    seeded.add("topup_id", topup["id"])
    seeded.add("withdrawal_id", withdrawal["id"])
    seeded.add("stellar_address", market.sandbox_api.sandbox.chain.activate().public_key)


async def _books(market: Market, seeded: Seeded, pool: asyncpg.Pool) -> None:
    """Ledger accounts and transfers, and a reconciliation run."""
    run = await _must(await market.post("/reconciliation/runs"), 200, 201, 202)
    seeded.add("run_id", run["id"])
    accounts = await pool.fetch(
        "SELECT id FROM ledger_accounts WHERE marketplace_id = $1 ORDER BY id LIMIT 5",
        market.marketplace_id,
    )
    transfers = await pool.fetch(
        "SELECT id FROM ledger_transfers WHERE marketplace_id = $1 ORDER BY id LIMIT 5",
        market.marketplace_id,
    )
    seeded.add("account_id", *(row["id"] for row in accounts))
    seeded.add("transfer_id", *(row["id"] for row in transfers))


async def seed(market: Market, pool: asyncpg.Pool, spare_key_id: str) -> Seeded:
    """Fill ``market`` with one of everything; the ids by path parameter."""
    seeded = Seeded(market, spare_key_id)
    seeded.add("marketplace_id", market.marketplace_id)
    buyer, seller = await market.parties(deposit=("1000", 1000 * USDC))
    seeded.add("user_id", buyer, seller)
    await _orders(market, seeded, buyer, seller)
    await _money_movements(market, seeded, buyer)
    endpoint = await _must(
        await market.post("/webhook-endpoints", {"url": "https://hooks.example/offerhub"}), 201
    )
    seeded.add("endpoint_id", endpoint["id"])
    delivery = await pool.fetchval(
        "SELECT id FROM webhook_deliveries WHERE endpoint_id = $1 LIMIT 1", endpoint["id"]
    )
    if delivery is not None:
        seeded.add("delivery_id", delivery)
    await _books(market, seeded, pool)
    return seeded


@contextlib.asynccontextmanager
async def served_market(dsn: str) -> AsyncIterator[Seeded]:
    """A served app on ``dsn`` with one seeded marketplace."""
    async with serving_on_sandbox(dsn) as api:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        try:
            marketplace_id, key = await api.tenant(["*"])
            spare = await api.new_key(marketplace_id, ["read"])
            market = Market(api, pool, marketplace_id, key)
            parsed = parse_key(spare)
            assert parsed is not None
            yield await seed(market, pool, parsed.key_id)
        finally:
            await pool.close()
