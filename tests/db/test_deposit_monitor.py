"""The deposit monitor on the sandbox: real Horizon reads over HTTP, the real ledger.

Each incoming USDC payment operation is credited exactly once (external:stellar -> user), with
its ``deposits`` row and one ``balance.credited`` event; other assets and payments our own
operations booked are not; a crash between pages, a restart and a second monitor never miss
or double a credit. At the end of each test the wallets hold what the ledger says.
"""

import asyncio
from types import MappingProxyType

import asyncpg
import pytest

from common.money import format_amount
from flows.deposits import deposit_transfer_id
from flows.operation_steps import STEP_REGISTRY
from flows.queries.deposits import WalletScan, get_deposit_by_operation
from flows.queries.operations import OperationKind
from flows.withdrawal_steps import WITHDRAWAL_PAYMENT_STEPS
from flows.withdrawals import create_withdrawal, withdrawal_hooks
from tests.db.deposit_support import (
    USDC,
    credited_events,
    expire_leases,
    monitor,
    posted,
    user_with_wallet,
    zero_sum_violations,
)
from tests.db.sandbox_world import SandboxWorld, SimulatedCrash, make_world
from tests.db.test_topups_delivery import confirmed_topup, make_delivery
from tests.db.test_withdrawals_support import ACTOR

pytestmark = pytest.mark.db


@pytest.fixture(name="world")
async def world_fixture(pool: asyncpg.Pool) -> SandboxWorld:
    world = await make_world(pool)
    world.registry = MappingProxyType(
        {**STEP_REGISTRY, OperationKind.WITHDRAWAL_PAYMENT: WITHDRAWAL_PAYMENT_STEPS}
    )
    world.hooks = withdrawal_hooks()
    return world


async def _deposit_rows(world: SandboxWorld) -> list[asyncpg.Record]:
    async with world.pool.acquire() as conn:
        return list(await conn.fetch("SELECT * FROM deposits ORDER BY paging_token::numeric"))


async def test_a_deposit_is_credited_once_with_its_event(world: SandboxWorld) -> None:
    wallet = await user_with_wallet(world)
    submission = world.sandbox.chain.deposit(wallet.public_key, 12 * USDC + USDC // 2)
    assert submission.tx is not None
    [operation_id] = world.sandbox.chain.operation_ids(submission.tx.hash)
    async with monitor(world) as first:
        summary = await first.run_once()
        again = await first.run_once()
        first.wake()  # a pass right away, even with nothing new
        assert (await first.run_once()).credited == 0
    assert (summary.credited, summary.failed, again.credited) == (1, 0, 0)
    amount = 12 * USDC + USDC // 2
    assert await posted(world, f"user:{wallet.user_id}") == amount == world.usdc(wallet.public_key)
    # external:stellar is debit-normal: its posted balance is what came in from the chain.
    assert await posted(world, "external:stellar") == amount
    transfer_id = deposit_transfer_id(world.marketplace_id, operation_id)
    [row] = await _deposit_rows(world)
    assert (row["operation_id"], row["tx_hash"], row["amount_minor"]) == (
        operation_id,
        submission.tx.hash,
        amount,
    )
    assert (row["user_id"], row["wallet_id"], row["transfer_id"], row["source"]) == (
        wallet.user_id,
        wallet.id,
        transfer_id,
        "stellar_deposit",
    )
    assert await credited_events(world, wallet.user_id) == [
        {
            "user_id": wallet.user_id,
            "amount": "12.50",
            "currency": "USD",
            "source": "stellar_deposit",
            "source_id": operation_id,
            "transfer_id": transfer_id,
            "transaction_hash": submission.tx.hash,
            "available": "12.50",
            "reserved": "0.00",
        }
    ]
    async with world.pool.acquire() as conn:
        transfer = await conn.fetchrow("SELECT * FROM ledger_transfers WHERE id = $1", transfer_id)
        deposit = await get_deposit_by_operation(conn, world.marketplace_id, operation_id)
    assert deposit is not None
    assert (deposit.id, deposit.credited_at) == (row["id"], row["credited_at"])
    assert transfer is not None
    assert (transfer["code"], transfer["external_ref"]) == ("deposit", submission.tx.hash)
    assert await zero_sum_violations(world.pool) == 0
    audited = await world.pool.fetch(
        "SELECT actor_type, resource_id, summary->'after'->>'amount' AS amount FROM audit_log"
        " WHERE marketplace_id = $1 AND action = 'DEPOSIT_CREDITED'",
        world.marketplace_id,
    )
    assert [tuple(row) for row in audited] == [("SYSTEM", wallet.user_id, "12.50")]


async def test_each_operation_of_a_multi_payment_transaction_is_credited(
    world: SandboxWorld,
) -> None:
    wallet = await user_with_wallet(world)
    world.sandbox.chain.deposit(wallet.public_key, 2 * USDC, ops=3)
    async with monitor(world) as scanner:
        assert (await scanner.run_once()).credited == 3
    assert await posted(world, f"user:{wallet.user_id}") == 6 * USDC
    events = await credited_events(world, wallet.user_id)
    # The balance after each credit, in order, though all three posted in one batch.
    assert [e["available"] for e in events] == ["2.00", "4.00", "6.00"]
    assert len({e["transfer_id"] for e in events}) == 3
    assert len({e["transaction_hash"] for e in events}) == 1


async def test_other_assets_are_ignored(world: SandboxWorld) -> None:
    wallet = await user_with_wallet(world)
    assert world.sandbox.chain.deposit(wallet.public_key, 50 * USDC, asset="XLM").successful
    async with monitor(world) as scanner:
        summary = await scanner.run_once()
    assert (summary.wallets, summary.pages, summary.credited) == (1, 1, 0)
    assert await posted(world, f"user:{wallet.user_id}") == 0
    assert await _deposit_rows(world) == []
    assert await credited_events(world, wallet.user_id) == []
    # The cursor moved past what was read: the next pass does not read it again.
    async with world.pool.acquire() as conn:
        token = await conn.fetchval("SELECT paging_token FROM deposit_cursors")
    assert token is not None


async def test_a_withdrawal_to_another_users_wallet_is_booked_once_per_side(
    world: SandboxWorld,
) -> None:
    alice, bob = await user_with_wallet(world), await user_with_wallet(world)
    world.sandbox.chain.deposit(alice.public_key, 50 * USDC)
    async with monitor(world) as scanner:
        assert (await scanner.run_once()).credited == 1
        async with world.pool.acquire() as conn, conn.transaction():
            started = await create_withdrawal(
                conn,
                world.registry,
                marketplace_id=world.marketplace_id,
                user_id=alice.user_id,
                amount_minor=20 * USDC,
                destination_type="crypto",
                destination_ref=bob.public_key,
                actor=ACTOR,
            )
        assert started.operation is not None
        assert await world.run_until_settled(started.operation.id) == "SUCCEEDED"
        # Alice's side is the withdrawal's (outgoing for her wallet); Bob's is a deposit.
        assert (await scanner.run_once()).credited == 1
        assert (await scanner.run_once()).credited == 0
    assert await posted(world, f"user:{alice.user_id}") == 30 * USDC
    assert await posted(world, f"user:{bob.user_id}") == 20 * USDC
    assert world.usdc(alice.public_key) == 30 * USDC
    assert world.usdc(bob.public_key) == 20 * USDC
    # 50 came in from the chain, 20 went out to it and came back to Bob.
    assert await posted(world, "external:stellar") == 50 * USDC
    assert await posted(world, "clearing:withdrawals") == 0
    assert [e["source"] for e in await credited_events(world, bob.user_id)] == ["stellar_deposit"]
    assert await zero_sum_violations(world.pool) == 0


async def test_a_topup_delivery_is_not_credited_again(pool: asyncpg.Pool) -> None:
    delivery = await make_delivery(pool)
    world = delivery.world
    _, applied = await confirmed_topup(delivery, 40 * USDC)
    assert applied.delivery_operation_id is not None
    assert await world.run_until_settled(applied.delivery_operation_id) == "SUCCEEDED"
    assert world.usdc(delivery.wallet.public_key) == 40 * USDC
    world.sandbox.chain.deposit(delivery.wallet.public_key, 5 * USDC)  # and a real deposit
    async with monitor(world) as scanner:
        assert (await scanner.run_once()).credited == 1
    user_id = delivery.user_id
    assert (
        await posted(world, f"user:{user_id}")
        == 45 * USDC
        == world.usdc(delivery.wallet.public_key)
    )
    assert [e["source"] for e in await credited_events(world, user_id)] == [
        "topup",
        "stellar_deposit",
    ]
    await delivery.assert_reconciled()


async def test_a_crash_between_pages_and_deposits_while_down_are_credited_once(
    world: SandboxWorld,
) -> None:
    wallets = [await user_with_wallet(world) for _ in range(2)]
    for index in range(5):
        world.sandbox.chain.deposit(wallets[index % 2].public_key, (index + 1) * USDC)
    # Pages of 2 records: the first wallet's history (create_account, trustline, 3 deposits)
    # takes 3 pages; the process dies reading the second.
    crashed = False
    async with monitor(world, page_limit=2, crash_after_reads=1) as doomed:
        try:
            await doomed.run_once()
        except* SimulatedCrash:
            crashed = True  # and every other poll of the pass was cancelled with it
    assert crashed
    credited_before = len(await _deposit_rows(world))
    assert credited_before <= 1
    for index in range(5, 8):  # deposits while no monitor runs
        world.sandbox.chain.deposit(wallets[index % 2].public_key, (index + 1) * USDC)
    async with monitor(world, page_limit=2) as restarted:
        # The dead process's leases still hold its wallets...
        assert (await restarted.run_once()).wallets == 0
        await expire_leases(world.pool)
        summary = await restarted.run_once()
    assert summary.credited == 8 - credited_before
    rows = await _deposit_rows(world)
    assert sorted(row["amount_minor"] for row in rows) == [n * USDC for n in range(1, 9)]
    for wallet in wallets:
        assert await posted(world, f"user:{wallet.user_id}") == world.usdc(wallet.public_key)
    async with world.pool.acquire() as conn:
        events = await conn.fetchval("SELECT count(*) FROM events WHERE type = 'balance.credited'")
    assert events == 8
    assert await zero_sum_violations(world.pool) == 0


async def test_two_monitors_at_once_credit_each_payment_once(world: SandboxWorld) -> None:
    wallets = [await user_with_wallet(world) for _ in range(3)]
    for wallet in wallets:
        world.sandbox.chain.deposit(wallet.public_key, 3 * USDC, ops=2)
    async with monitor(world, page_limit=2) as one, monitor(world, page_limit=2) as two:
        # The same wallet polled by both from the same cursor: the page's compare-and-set
        # lets one credit it; the other reads on from where the first left the cursor.
        scan = WalletScan(
            marketplace_id=world.marketplace_id,
            wallet_id=wallets[0].id,
            user_id=wallets[0].user_id,
            public_key=wallets[0].public_key,
            paging_token=None,
        )
        polls = await asyncio.gather(one.poll_wallet(scan), two.poll_wallet(scan))
        assert sum(poll.credited for poll in polls) == 2
        # Whole passes at once: the claims split the wallets between them.
        passes = await asyncio.gather(one.run_once(), two.run_once())
        assert sum(p.credited for p in passes) == 4
        assert sum(p.failed for p in passes) == 0
    for wallet in wallets:
        assert await posted(world, f"user:{wallet.user_id}") == 6 * USDC
        assert len(await credited_events(world, wallet.user_id)) == 2
    assert len(await _deposit_rows(world)) == 6
    assert await zero_sum_violations(world.pool) == 0


async def test_the_background_loop_credits_after_a_wake(world: SandboxWorld) -> None:
    wallet = await user_with_wallet(world)
    async with monitor(world, poll_s=60.0) as background:
        background.start()
        await asyncio.sleep(0.2)  # the first pass finds nothing
        world.sandbox.chain.deposit(wallet.public_key, 7 * USDC)
        background.wake()
        for _ in range(100):
            if await posted(world, f"user:{wallet.user_id}") == 7 * USDC:
                break
            await asyncio.sleep(0.05)
        await background.stop()
    assert await posted(world, f"user:{wallet.user_id}") == 7 * USDC
    assert format_amount(world.usdc(wallet.public_key)) == "7.00"


async def test_a_horizon_outage_skips_the_wallet_until_the_next_pass(world: SandboxWorld) -> None:
    wallet = await user_with_wallet(world)
    world.sandbox.chain.deposit(wallet.public_key, 4 * USDC)
    world.sandbox.faults.add("horizon", "GET", "/accounts", "status:503")
    async with monitor(world) as scanner:
        # The pass ends (no retry loop on a dead Horizon) and nothing is written.
        assert (await scanner.run_once()).failed == 1
        assert await posted(world, f"user:{wallet.user_id}") == 0
        # Kept off until the retry delay ran out; then the next pass credits it.
        assert (await scanner.run_once()).wallets == 0
        await expire_leases(world.pool)
        summary = await scanner.run_once()
    assert (summary.wallets, summary.credited, summary.failed) == (1, 1, 0)
    assert await posted(world, f"user:{wallet.user_id}") == 4 * USDC
    assert not world.sandbox.faults.pending()
