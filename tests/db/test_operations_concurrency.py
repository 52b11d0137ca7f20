"""Several workers side by side: SKIP LOCKED claims, leases, fencing and the source-account lock."""

import asyncio
from collections import Counter
from types import MappingProxyType

import asyncpg
import pytest

from flows.operations import (
    Step,
    StepDone,
    StepOutcome,
    StepRun,
    WorkerSettings,
    claim_due,
    start_operation,
)
from flows.queries.operations import Operation, OperationKind
from tests.db.test_operations_support import (
    Harness,
    make_harness,
)

pytestmark = pytest.mark.db


@pytest.fixture(name="harness")
async def harness_fixture(pool: asyncpg.Pool) -> Harness:
    return await make_harness(pool)


class Recorder:
    """A one-step kind whose step records who ran it and lingers, to overlap with others."""

    def __init__(self, linger_s: float = 0.02) -> None:
        self.runs: Counter[str] = Counter()
        self.linger_s = linger_s
        self.registry = MappingProxyType({OperationKind.ESCROW_CREATE: (Step("deploy", self.run),)})

    async def run(self, run: StepRun) -> StepOutcome:
        self.runs[run.claim.id] += 1
        await asyncio.sleep(self.linger_s)
        return StepDone()


async def _start(harness: Harness, recorder: Recorder, count: int) -> list[Operation]:
    async with harness.pool.acquire() as conn:
        return [
            await start_operation(
                conn,
                recorder.registry,
                marketplace_id=harness.marketplace_id,
                kind=OperationKind.ESCROW_CREATE,
                resource_type="order",
                resource_id=f"order_{i}",
                payload={},
            )
            for i in range(count)
        ]


async def test_concurrent_claims_are_disjoint(harness: Harness) -> None:
    operations = await _start(harness, Recorder(), 10)
    async with harness.pool.acquire() as first, harness.pool.acquire() as second:
        async with first.transaction(), second.transaction():
            mine = await claim_due(first, 6)
            theirs = await claim_due(second, 10)  # skips the rows the first still locks
        assert len(mine) == 6
        assert len(theirs) == 4
        assert {o.id for o in mine}.isdisjoint({o.id for o in theirs})
        assert {o.id for o in mine} | {o.id for o in theirs} == {o.id for o in operations}
        # Committed claims are leased: nothing is due any more.
        assert await claim_due(first, 10) == []
    assert all(o.attempts == 1 for o in [*mine, *theirs])


async def test_workers_running_together_never_run_an_operation_twice(harness: Harness) -> None:
    recorder = Recorder()
    operations = await _start(harness, recorder, 30)
    async with (
        harness.worker(registry=recorder.registry) as a,
        harness.worker(registry=recorder.registry) as b,
        harness.worker(registry=recorder.registry) as c,
    ):
        while sum(await asyncio.gather(a.run_once(4), b.run_once(4), c.run_once(4))):
            pass
    assert recorder.runs == Counter({o.id: 1 for o in operations})
    for operation in operations:
        assert (await harness.operation(operation.id))["status"] == "SUCCEEDED"


async def test_a_worker_whose_lease_ran_out_changes_nothing(harness: Harness) -> None:
    recorder = Recorder(linger_s=0.3)
    [operation] = await _start(harness, recorder, 1)
    settings = WorkerSettings(lease_s=0.05)
    async with (
        harness.worker(registry=recorder.registry, settings=settings) as slow,
        harness.worker(registry=recorder.registry) as fast,
    ):

        async def steal() -> int:
            await asyncio.sleep(0.1)  # after the slow worker's lease ran out
            return await fast.run_once()

        claimed = await asyncio.gather(slow.run_once(), steal())
    assert list(claimed) == [1, 1]
    row = await harness.operation(operation.id)
    assert row["status"] == "SUCCEEDED"
    # Both ran the step body (a lease is not a lock), but only the current claim recorded it.
    assert recorder.runs[operation.id] == 2
    assert row["attempts"] == 2


async def test_concurrent_activations_share_the_platform_one_tx_at_a_time(
    harness: Harness,
) -> None:
    opened = [await harness.open_wallet() for _ in range(4)]
    settings = WorkerSettings(source_busy_delay_s=0.0)
    async with harness.worker(settings=settings) as a, harness.worker(settings=settings) as b:
        for _ in range(20):
            await harness.make_due()
            await asyncio.gather(a.run_once(2), b.run_once(2))
            statuses = {(await harness.operation(op.id))["status"] for _, op in opened}
            if statuses == {"SUCCEEDED"}:
                break
    for wallet, operation in opened:
        assert (await harness.operation(operation.id))["status"] == "SUCCEEDED"
        assert len(harness.applied_txs(wallet.public_key)) == 1
        assert (await harness.wallet(wallet.id))["is_active"]
    assert harness.failed_txs_from(harness.platform.public_key) == []


async def test_the_source_account_lock_refuses_a_second_in_flight_tx(
    pool: asyncpg.Pool, harness: Harness
) -> None:
    async with pool.acquire() as conn:
        ops = [await _insert_submission(conn, harness, i) for i in range(2)]
    assert ops == ["ok", "operation_submissions_one_pending_per_source"]


async def _insert_submission(conn: asyncpg.Connection, harness: Harness, index: int) -> str:
    _, operation = await harness.open_wallet()
    try:
        await conn.execute(
            "INSERT INTO operation_submissions (marketplace_id, operation_id, step, step_index,"
            " tx_hash, envelope_xdr, max_time, source_account, sequence)"
            " VALUES ($1, $2, 'submit_activation', 0, $3, 'AAAA', now(), $4, 1)",
            harness.marketplace_id,
            operation.id,
            f"{index:064x}",
            harness.platform.public_key,
        )
    except asyncpg.UniqueViolationError as error:
        return str(error.constraint_name)
    return "ok"
