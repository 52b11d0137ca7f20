"""Property: whatever the order of deposits, other assets, passes and crashes, every incoming
USDC payment operation is credited exactly once and each wallet holds what its ledger says.

Each example builds its own marketplace, two users and a sandbox; monitors are fresh
"processes" (a crash kills one between two Horizon reads, its leases then run out).
"""

from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.db.deposit_support import (
    USDC,
    expire_leases,
    monitor,
    posted,
    user_with_wallet,
    zero_sum_violations,
)
from tests.db.sandbox_world import SandboxWorld, SimulatedCrash, make_world

WALLETS = 2

deposits = st.tuples(
    st.just("usdc"),
    st.integers(0, WALLETS - 1),
    st.integers(1, 50 * USDC),
    st.integers(1, 3),
)
other_assets = st.tuples(st.just("xlm"), st.integers(0, WALLETS - 1), st.integers(1, 5 * USDC))
passes = st.tuples(st.just("pass"), st.integers(1, 3))
crashes = st.tuples(st.just("crash"), st.integers(1, 3), st.integers(0, 3))
steps = st.lists(st.one_of(deposits, other_assets, passes, crashes), min_size=1, max_size=12)


async def _run(world: SandboxWorld, page_limit: int, crash_after_reads: int | None) -> None:
    """One monitor process's pass; a crash kills it, and time lets its leases run out."""
    try:
        async with monitor(
            world, page_limit=page_limit, crash_after_reads=crash_after_reads
        ) as process:
            await process.run_once()
    except* SimulatedCrash:
        await expire_leases(world.pool)


async def _apply(world: SandboxWorld, wallets: list[Any], step: tuple[Any, ...]) -> int:
    """Apply one step; returns the USDC payment operations it sent."""
    chain = world.sandbox.chain
    kind = step[0]
    if kind == "usdc":
        _, index, amount, ops = step
        assert chain.deposit(wallets[index].public_key, amount, ops=ops).successful
        return int(ops)
    if kind == "xlm":
        _, index, amount = step
        assert chain.deposit(wallets[index].public_key, amount, asset="XLM").successful
        return 0
    if kind == "pass":
        await _run(world, step[1], None)
    else:
        await _run(world, step[1], step[2])
    return 0


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(plan=steps)
async def test_every_usdc_payment_is_credited_exactly_once(
    pool: asyncpg.Pool, plan: list[tuple[Any, ...]]
) -> None:
    world = await make_world(pool)
    wallets = [await user_with_wallet(world) for _ in range(WALLETS)]
    sent = 0
    for step in plan:
        sent += await _apply(world, wallets, step)
    await _run(world, 200, None)  # a clean pass at the end catches up
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT operation_id, amount_minor FROM deposits WHERE marketplace_id = $1",
            world.marketplace_id,
        )
        events = await conn.fetchval(
            "SELECT count(*) FROM events WHERE marketplace_id = $1 AND type = 'balance.credited'",
            world.marketplace_id,
        )
    assert len(rows) == len({row["operation_id"] for row in rows}) == sent == events
    for wallet in wallets:
        assert await posted(world, f"user:{wallet.user_id}") == world.usdc(wallet.public_key)
    assert await posted(world, "external:stellar") == sum(row["amount_minor"] for row in rows)
    assert await zero_sum_violations(pool) == 0
