"""The audit after the kills: the database, the chain and the API against the load's model.

Each check reads the real state (SQL on the test database, the sandbox chain in this process,
the API over HTTP) and compares it with what the acknowledged requests add up to
(:class:`tests.crash.load.Model`). Ledger amounts are stroops (7 decimals): cents x 100,000.
"""

import asyncio
from collections import Counter
from typing import Any, Final

import asyncpg

from providers.sandbox.app import Sandbox
from tests.crash.client import Journal, ResilientClient
from tests.crash.load import (
    PLATFORM_FEE_BPS,
    STROOPS_PER_CENT,
    TRUSTLESS_WORK_FEE_BPS,
    Lifecycle,
    Model,
    money,
    net,
)

__all__ = [
    "ledger_snapshot",
    "operations_end",
    "reconciliation_is_clean",
    "replays_change_nothing",
    "state_matches_model",
]

_OPERATIONS_END_S: Final = 60.0


async def operations_end(pool: asyncpg.Pool) -> float:
    """Wait until no durable operation is RUNNING; seconds it took. All must have SUCCEEDED."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while await pool.fetchval("SELECT count(*) FROM operations WHERE status = 'RUNNING'"):
        stuck = await pool.fetch(
            "SELECT id, kind, step, attempts, last_error FROM operations WHERE status = 'RUNNING'"
        )
        assert loop.time() - started < _OPERATIONS_END_S, f"operations stuck: {stuck}"
        await asyncio.sleep(0.2)
    ended = await pool.fetch("SELECT status, kind, last_error FROM operations")
    assert ended, "the load started no operation"
    failed = [dict(row) for row in ended if row["status"] != "SUCCEEDED"]
    assert not failed, f"operations did not succeed: {failed}"
    return loop.time() - started


def _expected_transfers(cycle: Lifecycle) -> Counter[tuple[str, str, int]]:
    """``(code, phase, stroops)`` of every transfer the order's ending books, once each."""
    amount = cycle.amount * STROOPS_PER_CENT
    booked = Counter([("order_reserve", "PENDING", amount)])
    if cycle.plan == "cancel":
        booked[("order_cancel", "VOID_PENDING", amount)] += 1
        return booked
    payout = "escrow_refund" if cycle.plan == "refund" else "escrow_release"
    platform = cycle.amount * PLATFORM_FEE_BPS // 10_000 * STROOPS_PER_CENT
    trustless_work = cycle.amount * TRUSTLESS_WORK_FEE_BPS // 10_000 * STROOPS_PER_CENT
    booked[("order_fund", "POST_PENDING", amount)] += 1
    booked[(payout, "SINGLE", net(cycle.amount) * STROOPS_PER_CENT)] += 1
    booked[("escrow_fee_platform", "SINGLE", platform)] += 1
    booked[("escrow_fee_trustless_work", "SINGLE", trustless_work)] += 1
    return booked


async def _users_and_orders_match(pool: asyncpg.Pool, model: Model) -> None:
    """One user per create key, one order per create key, each in its plan's final state."""
    users = {row["id"]: row["external_user_id"] for row in await pool.fetch("SELECT * FROM users")}
    assert users == model.users
    rows = await pool.fetch("SELECT id, amount_minor, status, close_reason FROM orders")
    orders = {row["id"]: row for row in rows}
    assert set(orders) == {cycle.order_id for cycle in model.lifecycles}
    for cycle in model.lifecycles:
        assert cycle.done, f"{cycle.tag} did not finish"
        row = orders[cycle.order_id]
        assert row["amount_minor"] == cycle.amount * STROOPS_PER_CENT, cycle.tag
        assert (row["status"], row["close_reason"]) == model.final_state(cycle), cycle.tag


async def _ledger_matches(pool: asyncpg.Pool, model: Model) -> None:
    """Every transfer the model implies exists exactly once, and there is no other."""
    rows = await pool.fetch(
        "SELECT code, phase::text AS phase, amount, order_id, user_id FROM ledger_transfers"
    )
    per_order: dict[str, Counter[tuple[str, str, int]]] = {}
    adjustments: Counter[tuple[str, int]] = Counter()
    for row in rows:
        if row["order_id"] is None:
            assert row["code"] == "adjustment", dict(row)
            adjustments[(row["user_id"], row["amount"])] += 1
        else:
            booked = per_order.setdefault(row["order_id"], Counter())
            booked[(row["code"], row["phase"], row["amount"])] += 1
    for cycle in model.lifecycles:
        assert per_order.pop(cycle.order_id, None) == _expected_transfers(cycle), cycle.tag
    assert not per_order, f"transfers of unknown orders: {per_order}"
    funded = Counter((cycle.buyer, cycle.amount * STROOPS_PER_CENT) for cycle in model.lifecycles)
    assert adjustments == funded
    violations = await pool.fetchval("SELECT count(*) FROM ledger_zero_sum_violations_v1()")
    assert violations == 0
    sums = await pool.fetchrow(
        "SELECT sum(credits_posted - debits_posted) AS posted,"
        " sum(credits_pending - debits_pending) AS pending FROM ledger_accounts"
    )
    assert sums is not None
    assert (sums["posted"], sums["pending"]) == (0, 0)
    platform = await pool.fetchval(
        "SELECT credits_posted - debits_posted FROM ledger_accounts WHERE code = 'fees:platform'"
    )
    assert platform == model.platform_fees() * STROOPS_PER_CENT


def _chain_matches(sandbox: Sandbox, model: Model, wallets: dict[str, str]) -> None:
    """Each wallet holds on chain exactly its modelled total (no payout sent twice)."""
    chain = sandbox.chain
    totals = model.totals()
    for user_id, address in wallets.items():
        account = chain.account(address)
        assert account is not None, f"wallet of {user_id} is not on chain"
        line = account.trustlines.get(chain.usdc_key)
        held = 0 if line is None else int(line.balance)
        assert held == totals[user_id] * STROOPS_PER_CENT, user_id


async def _balances_match(api: ResilientClient, model: Model) -> None:
    """``GET /users/{id}/balance`` of every user is the model's, nothing left reserved."""
    for user_id, total in model.totals().items():
        balance = await api.get(f"/users/{user_id}/balance")
        shown = (balance["available"], balance["reserved"], balance["total"])
        assert shown == (money(total), "0.00", money(total)), (user_id, balance)


async def state_matches_model(
    pool: asyncpg.Pool, api: ResilientClient, sandbox: Sandbox, model: Model
) -> None:
    """Users, orders, the ledger, balances and the chain are exactly what the model says."""
    await _users_and_orders_match(pool, model)
    await _ledger_matches(pool, model)
    await _balances_match(api, model)
    rows = await pool.fetch("SELECT user_id, public_key FROM wallets")
    _chain_matches(sandbox, model, {row["user_id"]: row["public_key"] for row in rows})


async def ledger_snapshot(pool: asyncpg.Pool) -> tuple[Any, ...]:
    """Counts and sums that any re-applied request would change."""
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM ledger_transfers) AS transfers,"
        " (SELECT count(*) FROM operations) AS operations,"
        " (SELECT count(*) FROM orders) AS orders,"
        " (SELECT count(*) FROM users) AS users,"
        " (SELECT count(*) FROM events) AS events,"
        " (SELECT sum(credits_posted) FROM ledger_accounts) AS credits"
    )
    assert row is not None
    return tuple(row)


async def replays_change_nothing(pool: asyncpg.Pool, api: ResilientClient, journal: Journal) -> int:
    """Send every acknowledged POST again with its key: the same answer, marked replayed."""
    before = await ledger_snapshot(pool)
    for answer in journal.acknowledged:
        again = await api.replay(answer)
        assert again.headers.get("idempotency-replayed") == "true", (answer.key, again.text)
        assert (again.status_code, again.content) == (answer.status, answer.content), answer.key
    assert await ledger_snapshot(pool) == before
    return len(journal.acknowledged)


async def reconciliation_is_clean(api: ResilientClient) -> dict[str, Any]:
    """A reconciliation run over every source completes with no discrepancy; the run."""
    answer = await api.post("/reconciliation/runs", None, "crash-final-reconciliation")
    assert answer.status in (201, 202), answer.json()
    run: dict[str, Any] = answer.json()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60.0
    while run["status"] == "RUNNING":
        assert loop.time() < deadline, f"reconciliation still running: {run}"
        await asyncio.sleep(0.2)
        run = await api.get(f"/reconciliation/runs/{run['id']}")
    assert run["status"] == "COMPLETED", run
    assert run["summary"]["discrepancies"] == 0, run
    assert {drift["amount"] for drift in run["drift"]} <= {"0.00"}, run
    assert run["summary"]["matched"] == run["summary"]["items_checked"] > 0, run
    return run
