"""Faults at the submit step: the chain ends as in a clean run, with one applied tx per step.

Each case runs a worker into the fault, optionally "crashes" it right after the submit call
(before it records anything), drops it, and lets fresh workers finish the operation.
"""

import contextlib
from typing import Any

import asyncpg
import pytest

from providers.stellar.port import SubmitResult, WalletNetwork
from tests.db.test_operations_support import (
    Harness,
    SimulatedCrash,
    make_harness,
    run_until_settled,
)

pytestmark = pytest.mark.db


@pytest.fixture(name="harness")
async def harness_fixture(pool: asyncpg.Pool) -> Harness:
    return await make_harness(pool)


FAULTS = ["applied_response_lost", "status:503", "fail_before_apply", "hang"]


class CrashingNetwork:
    """Delegates to the real client, then dies around ``submit_transaction``."""

    def __init__(self, inner: WalletNetwork, *, before: bool) -> None:
        self._inner = inner
        self._before = before

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def submit_transaction(self, envelope_xdr: str, *, tx_hash: str) -> SubmitResult:
        if self._before:
            raise SimulatedCrash("died after committing the hash, before submitting")
        # Whatever the answer was, the process is gone before it can act on it.
        with contextlib.suppress(Exception):
            await self._inner.submit_transaction(envelope_xdr, tx_hash=tx_hash)
        raise SimulatedCrash("died right after the submit call")


async def _clean_snapshot(pool: asyncpg.Pool) -> dict[str, Any]:
    clean = await make_harness(pool)
    wallet, operation = await clean.open_wallet()
    assert await run_until_settled(clean, operation.id) == "SUCCEEDED"
    return clean.snapshot(wallet.public_key)


async def _assert_activated_once(harness: Harness, wallet_public_key: str, op_id: str) -> None:
    assert len(harness.applied_txs(wallet_public_key)) == 1
    assert harness.failed_txs_from(harness.platform.public_key) == []
    statuses = [s["status"] for s in await harness.submissions(op_id)]
    assert statuses.count("CONFIRMED") == 1
    assert "PENDING" not in statuses


@pytest.mark.parametrize("crash", [False, True], ids=["worker-handles", "worker-crashes"])
@pytest.mark.parametrize("fault", FAULTS)
async def test_fault_at_submit_then_fresh_worker_ends_as_a_clean_run(
    pool: asyncpg.Pool, harness: Harness, fault: str, crash: bool
) -> None:
    expected = await _clean_snapshot(pool)
    wallet, operation = await harness.open_wallet()
    harness.faults.add("horizon", "POST", "/transactions", fault)
    wrap = (lambda network: CrashingNetwork(network, before=False)) if crash else None
    async with harness.worker(wrap=wrap) as first:
        if crash:
            with pytest.raises(SimulatedCrash):
                await first.run_once()
        else:
            await first.run_once()
    # The first worker is gone; whatever it left, a fresh one settles it.
    assert not harness.faults.pending()
    assert await run_until_settled(harness, operation.id) == "SUCCEEDED"
    assert harness.snapshot(wallet.public_key) == expected
    await _assert_activated_once(harness, wallet.public_key, operation.id)
    assert (await harness.wallet(wallet.id))["is_active"]


async def test_retry_after_an_unknown_outcome_is_scheduled_with_the_hash_kept(
    harness: Harness,
) -> None:
    wallet, operation = await harness.open_wallet()
    harness.faults.add("horizon", "POST", "/transactions", "status:503")
    async with harness.worker() as worker:
        await worker.run_once()
    row = await harness.operation(operation.id)
    assert row["status"] == "RUNNING"
    assert row["last_error"]["reason"] == "outcome_unknown"
    [pending] = await harness.submissions(operation.id)
    assert pending["status"] == "PENDING"
    assert harness.chain.account(wallet.public_key) is None
    # Not due yet: a worker polling right now leaves it alone.
    async with harness.worker() as worker:
        assert await worker.run_once() == 0
    assert await run_until_settled(harness, operation.id) == "SUCCEEDED"
    [confirmed] = await harness.submissions(operation.id)
    assert confirmed["tx_hash"] == pending["tx_hash"]  # the same envelope, never a second build


async def test_crash_after_committing_the_hash_before_submitting(harness: Harness) -> None:
    wallet, operation = await harness.open_wallet()
    async with harness.worker(wrap=lambda n: CrashingNetwork(n, before=True)) as first:
        with pytest.raises(SimulatedCrash):
            await first.run_once()
    [pending] = await harness.submissions(operation.id)
    assert pending["status"] == "PENDING"
    assert await run_until_settled(harness, operation.id) == "SUCCEEDED"
    assert harness.applied_txs(wallet.public_key) == [pending["tx_hash"]]


async def test_a_hash_missing_after_max_time_expires_and_is_rebuilt(harness: Harness) -> None:
    wallet, operation = await harness.open_wallet()
    harness.faults.add("horizon", "POST", "/transactions", "hang")
    async with harness.worker() as worker:
        await worker.run_once()
    [dead] = await harness.submissions(operation.id)
    assert dead["status"] == "PENDING"
    # The worker is down long enough for the signed tx to pass its max_time (+ grace).
    harness.chain.advance(dead["max_time"].timestamp() - harness.chain.clock.now() + 11)
    assert await run_until_settled(harness, operation.id) == "SUCCEEDED"
    expired, confirmed = await harness.submissions(operation.id)
    assert (expired["tx_hash"], expired["status"]) == (dead["tx_hash"], "EXPIRED")
    assert confirmed["status"] == "CONFIRMED"
    assert confirmed["sequence"] == dead["sequence"]  # the dead tx never consumed its sequence
    assert harness.applied_txs(wallet.public_key) == [confirmed["tx_hash"]]
    assert harness.chain.transaction(dead["tx_hash"]) is None


async def test_a_too_late_answer_to_a_resubmission_waits_for_proof_then_rebuilds(
    harness: Harness,
) -> None:
    wallet, operation = await harness.open_wallet()
    harness.faults.add("horizon", "POST", "/transactions", "fail_before_apply")
    async with harness.worker() as worker:
        await worker.run_once()
    [dead] = await harness.submissions(operation.id)
    # Past max_time but inside the grace: the lookup misses and the re-POST is refused
    # tx_too_late, which does not prove the first POST never landed (ingestion lag): wait.
    harness.chain.advance(dead["max_time"].timestamp() - harness.chain.clock.now() + 2)
    await harness.make_due(operation.id)
    async with harness.worker() as worker:
        await worker.run_once()
    row = await harness.operation(operation.id)
    assert (row["status"], row["last_error"]["reason"]) == ("RUNNING", "tx_too_late")
    assert [s["status"] for s in await harness.submissions(operation.id)] == ["PENDING"]
    # Still unknown after max_time + grace: now it is provably dead, and a fresh tx is built.
    harness.chain.advance(10)
    assert await run_until_settled(harness, operation.id) == "SUCCEEDED"
    statuses = [(s["tx_hash"], s["status"]) for s in await harness.submissions(operation.id)]
    assert statuses[0] == (dead["tx_hash"], "EXPIRED")
    assert statuses[1][1] == "CONFIRMED"
    assert len(harness.applied_txs(wallet.public_key)) == 1


async def test_a_bad_seq_answer_to_a_resubmission_is_not_taken_as_dead(harness: Harness) -> None:
    """A re-POST refused tx_bad_seq may mean "already applied": look the hash up, never rebuild."""
    wallet, operation = await harness.open_wallet()
    harness.faults.add("horizon", "POST", "/transactions", "fail_before_apply")
    async with harness.worker() as worker:
        await worker.run_once()
    [pending] = await harness.submissions(operation.id)
    harness.chain.bump_sequence(harness.platform.public_key)  # someone else used the sequence
    await harness.make_due(operation.id)
    async with harness.worker() as worker:
        await worker.run_once()
    row = await harness.operation(operation.id)
    assert (row["status"], row["last_error"]["reason"]) == ("RUNNING", "tx_bad_seq")
    assert [s["status"] for s in await harness.submissions(operation.id)] == ["PENDING"]
    harness.chain.advance(pending["max_time"].timestamp() - harness.chain.clock.now() + 11)
    assert await run_until_settled(harness, operation.id) == "SUCCEEDED"
    assert [s["status"] for s in await harness.submissions(operation.id)] == [
        "EXPIRED",
        "CONFIRMED",
    ]
    assert len(harness.applied_txs(wallet.public_key)) == 1


async def test_lookup_failure_keeps_the_submission_pending(harness: Harness) -> None:
    wallet, operation = await harness.open_wallet()
    harness.faults.add("horizon", "POST", "/transactions", "applied_response_lost")
    harness.faults.add("horizon", "GET", "/transactions/", "status:503")
    async with harness.worker() as worker:
        await worker.run_once()
    [pending] = await harness.submissions(operation.id)
    assert pending["status"] == "PENDING"  # landed, but nobody could tell yet
    assert len(harness.applied_txs(wallet.public_key)) == 1
    assert await run_until_settled(harness, operation.id) == "SUCCEEDED"
    await _assert_activated_once(harness, wallet.public_key, operation.id)


class SequenceThief:
    """Someone else uses the platform's sequence between our build and our first POST."""

    def __init__(self, inner: WalletNetwork, harness: Harness) -> None:
        self._inner = inner
        self._harness = harness
        self.stolen = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def submit_transaction(self, envelope_xdr: str, *, tx_hash: str) -> SubmitResult:
        if not self.stolen:
            self.stolen = True
            self._harness.chain.bump_sequence(self._harness.platform.public_key)
        return await self._inner.submit_transaction(envelope_xdr, tx_hash=tx_hash)


async def test_a_bad_seq_on_the_first_post_rebuilds_at_once(harness: Harness) -> None:
    wallet, operation = await harness.open_wallet()
    async with harness.worker(wrap=lambda n: SequenceThief(n, harness)) as worker:
        await worker.run_once()
    assert (await harness.operation(operation.id))["status"] == "SUCCEEDED"
    first, second = await harness.submissions(operation.id)
    assert (first["status"], first["result_codes"]["transaction"]) == ("FAILED", "tx_bad_seq")
    assert second["status"] == "CONFIRMED"
    assert second["sequence"] == first["sequence"] + 1
    assert harness.applied_txs(wallet.public_key) == [second["tx_hash"]]
