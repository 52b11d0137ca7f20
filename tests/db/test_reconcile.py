"""Reconciliation on the sandbox: a clean lifecycle matches, injected drift is reported exactly.

The app runs on an in-process sandbox (real clients over HTTP). A buyer deposits, an order is
escrowed, funded and released; then the chain is changed behind the ledger's back through the
sandbox's control routes (5 extra USDC on the buyer's wallet, a platform-wallet fee
mismatch) and its escrow state (a contract emptied and flagged released while the ledger still
holds the escrow): the next run reports exactly those breaks with their amounts, the gauges show
them, and the events say so.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from common.money import format_signed_amount
from tests.api.support import running_api_on_sandbox
from tests.api.test_orders_support import USDC, Market, new_market

pytestmark = pytest.mark.db

RUNS = "/reconciliation/runs"


@asynccontextmanager
async def control(market: Market) -> AsyncIterator[httpx.AsyncClient]:
    """The sandbox's control routes, over HTTP."""
    sandbox = market.sandbox_api.sandbox
    transport = httpx.ASGITransport(app=sandbox.asgi_app())
    base = sandbox.provider_settings("http://sandbox.test").control_url
    async with httpx.AsyncClient(transport=transport, base_url=base) as client:
        yield client


async def run(market: Market) -> dict[str, Any]:
    """POST a run; it finishes within the wait (201)."""
    response = await market.post(RUNS, {})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def breaks(market: Market, run_id: str) -> set[tuple[str, str, str | None, str | None]]:
    """(kind, status, resource_id, difference) of every item that did not match."""
    response = await market.get(f"{RUNS}/{run_id}/items", limit=100)
    assert response.status_code == 200, response.text
    return {
        (item["kind"], item["status"], item["resource_id"], item["difference"])
        for item in response.json()["data"]
    }


def gauge(name: str, market: Market, source: str, account_class: str) -> float | None:
    labels = {
        "marketplace": market.marketplace_id,
        "currency": "USD",
        "source": source,
        "account_class": account_class,
    }
    return REGISTRY.get_sample_value(name, labels)


async def released_order(market: Market) -> tuple[str, str, str]:
    """Buyer with 100 deposited, an order of 40 released to the seller; (buyer, seller, order)."""
    buyer, seller = await market.parties(deposit=("100", 100 * USDC))
    order = await market.in_progress(buyer, seller, "40")
    released = await market.step(f"/orders/{order}/resolution/release", {"reason": "done"})
    assert released["close_reason"] == "RELEASED"
    return buyer, seller, order


async def test_a_clean_lifecycle_has_no_discrepancy(db_dsn: str, pool: asyncpg.Pool) -> None:
    async with running_api_on_sandbox(db_dsn) as api:
        market = await new_market(api, pool)
        buyer, seller, _ = await released_order(market)
        funded = await market.in_progress(buyer, seller, "10")
        reserved = (await market.order(buyer, seller, "5"))["id"]
        await market.step(f"/orders/{reserved}/reserve")
        # A crypto withdrawal of 7 leaves the buyer's wallet on chain and the ledger.
        destination = market.sandbox_api.sandbox.chain.activate().public_key
        paid_out = await market.post(
            "/withdrawals",
            {
                "user_id": buyer,
                "amount": "7",
                "destination_type": "crypto",
                "destination_ref": destination,
            },
        )
        assert paid_out.json()["status"] == "WITHDRAWAL_COMPLETED", paid_out.text
        # A top-up of 25 credited to the seller; the treasury holds nothing yet, so its
        # delivery waits: the ledger is ahead of the wallet by 25, in transit.
        urls = {"return_url": "https://shop.test/back", "cancel_url": "https://shop.test/no"}
        body = {"user_id": seller, "amount": "25", **urls}
        topup = (await market.step("/topups", body, 201))["id"]
        payin = (await market.get(f"/topups/{topup}")).json()["airtm_payin_id"]
        market.sandbox_api.sandbox.airtm.payer_confirms(payin)
        credited = await market.step(f"/topups/{topup}/refresh")
        assert credited["status"] == "TOPUP_SUCCEEDED"
        assert await pool.fetchval("SELECT delivered_at FROM topups WHERE id = $1", topup) is None
        body = await run(market)
        assert body["status"] == "COMPLETED"
        assert body["summary"]["discrepancies"] == 0, await breaks(market, body["id"])
        # Two wallets, the platform wallet, two escrows (balance and state), the books.
        assert body["summary"]["items_checked"] >= 2 + 1 + 4 + 2
        assert body["sources"] == ["ledger", "stellar", "trustless_work", "airtm"]
        assert body["stellar_ledger"] > 0
        assert {d["amount"] for d in body["drift"]} == {"0.00"}
        for source, account_class in [("stellar", "user"), ("trustless_work", "escrow")]:
            assert gauge("offerhub_recon_drift", market, source, account_class) == 0
            assert gauge("offerhub_recon_unmatched_items", market, source, account_class) == 0
        assert funded


async def test_injected_drift_is_reported_exactly(db_dsn: str, pool: asyncpg.Pool) -> None:
    async with running_api_on_sandbox(db_dsn) as api:
        market = await new_market(api, pool)
        buyer, seller, _ = await released_order(market)
        funded = await market.in_progress(buyer, seller, "10")
        escrow = (await market.get(f"/orders/{funded}")).json()["escrow"]
        contract = escrow["trustless_contract_id"]
        sandbox = market.sandbox_api.sandbox
        async with control(market) as chain:
            # 5 more USDC on the buyer's wallet that the ledger never booked. A tamper, not a
            # payment: a deposit monitor would rightly book a payment as a deposit.
            paid = await chain.post(
                "/tamper", json={"address": market.public_keys[buyer], "usdc_delta": "5"}
            )
            assert paid.status_code == 200, paid.text
            # The platform wallet lost 0.25 USDC it should hold as fees.
            platform = sandbox.platform.public_key
            tampered = await chain.post(
                "/tamper", json={"address": platform, "usdc_delta": "-0.25"}
            )
            assert tampered.status_code == 200, tampered.text
            # The contract paid out and was flagged released; the ledger still holds it.
            emptied = await chain.post("/tamper", json={"address": contract, "usdc_delta": "-10"})
            assert emptied.status_code == 200, emptied.text
        sandbox.trustless_work.escrows[contract].flags.released = True

        body = await run(market)
        assert body["summary"]["discrepancies"] == 4
        assert await breaks(market, body["id"]) == {
            ("WALLET_BALANCE", "MISMATCH", buyer, "-5.00"),
            ("PLATFORM_FEES", "MISMATCH", platform, "0.25"),
            ("ESCROW_BALANCE", "MISMATCH", escrow["id"], "10.00"),
            ("ESCROW_STATE", "MISMATCH", escrow["id"], None),
        }
        drift = {(d["source"], d["account_class"]): d["amount"] for d in body["drift"]}
        assert drift[("stellar", "user")] == "-5.00"
        assert drift[("stellar", "platform")] == "0.25"
        assert drift[("trustless_work", "escrow")] == "10.00"
        assert gauge("offerhub_recon_drift", market, "stellar", "user") == -5 * USDC
        assert gauge("offerhub_recon_drift", market, "stellar", "platform") == USDC // 4
        assert gauge("offerhub_recon_drift", market, "trustless_work", "escrow") == 10 * USDC
        assert gauge("offerhub_recon_unmatched_items", market, "trustless_work", "escrow") == 2
        assert gauge("offerhub_recon_unmatched_items", market, "stellar", "user") == 1
        events = await pool.fetch(
            "SELECT type, data FROM events WHERE marketplace_id = $1 AND resource_id = $2"
            " ORDER BY sequence",
            market.marketplace_id,
            body["id"],
        )
        assert [e["type"] for e in events] == [
            "reconciliation.completed",
            "reconciliation.drift_detected",
        ]
        assert events[0]["data"]["discrepancies"] == 4
        assert format_signed_amount(-5 * USDC) in {d["amount"] for d in events[1]["data"]["drift"]}
