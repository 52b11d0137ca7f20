"""The reconciliation routes (api.md 3.13): runs, latest, items, errors, tenancy, one at a time."""

import asyncpg
import pytest

from common.ids import new_id
from tests.api.support import running_api_on_sandbox
from tests.api.test_orders_support import USDC, new_market

pytestmark = pytest.mark.db

RUNS = "/reconciliation/runs"


async def test_runs_latest_items_and_not_found(db_dsn: str, pool: asyncpg.Pool) -> None:
    async with running_api_on_sandbox(db_dsn) as api:
        market = await new_market(api, pool)
        latest = await market.get(f"{RUNS}/latest")
        assert (latest.status_code, latest.json()["error"]["code"]) == (
            404,
            "RECONCILIATION_RUN_NOT_FOUND",
        )
        await market.parties(deposit=("3", 3 * USDC))
        created = await market.post(RUNS, {"sources": ["stellar", "ledger"]})
        assert created.status_code == 201, created.text
        run = created.json()
        assert created.headers["location"].endswith(f"{RUNS}/{run['id']}")
        assert (run["status"], run["trigger"], run["sources"]) == (
            "COMPLETED",
            "MANUAL",
            ["ledger", "stellar"],
        )
        assert run["id"].startswith("rcn_")
        assert run["finished_at"] is not None
        assert (await market.get(f"{RUNS}/latest")).json() == run
        assert (await market.get(f"{RUNS}/{run['id']}")).json() == run
        listed = (await market.get(RUNS, status="COMPLETED", trigger="MANUAL")).json()
        assert [r["id"] for r in listed["data"]] == [run["id"]]
        # By default only breaks are listed; MATCHED on request.
        assert (await market.get(f"{RUNS}/{run['id']}/items")).json()["data"] == []
        matched = await market.get(f"{RUNS}/{run['id']}/items", status="MATCHED", limit=100)
        kinds = sorted(item["kind"] for item in matched.json()["data"])
        assert kinds == sorted(
            ["TRIAL_BALANCE", "ACCOUNT_BOUND", "WALLET_BALANCE", "WALLET_BALANCE", "PLATFORM_FEES"]
        )
        assert len(kinds) == run["summary"]["items_checked"] == run["summary"]["matched"]
        missing = await market.get(f"{RUNS}/{new_id('rcn_')}/items")
        assert missing.json()["error"]["code"] == "RECONCILIATION_RUN_NOT_FOUND"
        bad = await market.post(RUNS, {"sources": ["bank"]})
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "VALIDATION_ERROR"

        other = await new_market(api, pool)
        hidden = await other.get(f"{RUNS}/{run['id']}")
        assert (hidden.status_code, hidden.json()["error"]["code"]) == (
            404,
            "RECONCILIATION_RUN_NOT_FOUND",
        )
        assert (await other.get(RUNS)).json()["data"] == []
        assert (await other.get(f"{RUNS}/{run['id']}/items")).status_code == 404


async def test_one_run_at_a_time_and_scopes(db_dsn: str, pool: asyncpg.Pool) -> None:
    async with running_api_on_sandbox(db_dsn) as api:
        market = await new_market(api, pool)
        running_id = new_id("rcn_")
        await pool.execute(
            "INSERT INTO reconciliation_runs (marketplace_id, id, trigger, sources)"
            " VALUES ($1, $2, 'SCHEDULE', ARRAY['ledger'])",
            market.marketplace_id,
            running_id,
        )
        refused = await market.post(RUNS, {})
        assert refused.status_code == 409
        assert refused.json()["error"] == {
            "code": "RECONCILIATION_ALREADY_RUNNING",
            "message": refused.json()["error"]["message"],
            "details": {"run_id": running_id},
        }
        latest = (await market.get(f"{RUNS}/latest")).json()
        assert (latest["id"], latest["status"], latest["finished_at"]) == (
            running_id,
            "RUNNING",
            None,
        )
        support = await api.new_key(market.marketplace_id, ["support"])
        assert (await market.get(RUNS, key=support)).status_code == 200
        forbidden = await market.post(RUNS, {}, key=support)
        assert forbidden.json()["error"]["code"] == "INSUFFICIENT_SCOPE"
        reader = await api.new_key(market.marketplace_id, ["read"])
        assert (await market.get(RUNS, key=reader)).status_code == 403
