"""WITHDRAWAL_PAYMENT on the whole sandbox: a wallet's USDC payment lands exactly once.

Happy path, definitive refusals (no trustline, no destination, underfunded, SEP-29 memo), and
faults at every call of the ``pay`` step (lost answers, hangs, 5xx, a worker that dies right
after the submit): fresh workers always end the chain as a clean run does, with one payment.
"""

import contextlib
from typing import Any, cast

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stellar_sdk import Keypair

from common.ids import new_id
from flows.operation_steps import STEP_REGISTRY
from flows.operations import start_operation
from flows.queries.operations import Operation, OperationKind
from flows.queries.wallets import Wallet
from flows.withdrawal_steps import AIRTM_PAYOUT_STEPS, WITHDRAWAL_PAYMENT_STEPS
from providers.stellar.port import SubmitResult, WalletNetwork
from tests.db.sandbox_world import USDC, SandboxWorld, SimulatedCrash, make_world

pytestmark = pytest.mark.db

REGISTRY = {
    **STEP_REGISTRY,
    OperationKind.WITHDRAWAL_PAYMENT: WITHDRAWAL_PAYMENT_STEPS,
    OperationKind.AIRTM_PAYOUT: AIRTM_PAYOUT_STEPS,
}
FUNDED = 100 * USDC
AMOUNT = 25 * USDC


class CrashingNetwork:
    """Delegates to the real client, then dies right after ``submit_transaction``."""

    def __init__(self, inner: WalletNetwork) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def submit_transaction(self, envelope_xdr: str, *, tx_hash: str) -> SubmitResult:
        # Whatever the answer was, the process is gone before it can act on it.
        with contextlib.suppress(Exception):
            await self._inner.submit_transaction(envelope_xdr, tx_hash=tx_hash)
        raise SimulatedCrash("died right after the submit call")


async def _world(pool: asyncpg.Pool) -> SandboxWorld:
    world = await make_world(pool)
    world.registry = REGISTRY
    return world


async def _start(
    world: SandboxWorld,
    wallet: Wallet,
    destination: str,
    amount: int = AMOUNT,
    memo: str | None = None,
) -> Operation:
    withdrawal_id = new_id("wd_")
    async with world.pool.acquire() as conn, conn.transaction():
        return await start_operation(
            cast(asyncpg.Connection, conn),  # the pool's proxy forwards every method
            world.registry,
            marketplace_id=world.marketplace_id,
            kind=OperationKind.WITHDRAWAL_PAYMENT,
            resource_type="withdrawal",
            resource_id=withdrawal_id,
            payload={
                "withdrawal_id": withdrawal_id,
                "wallet_id": wallet.id,
                "destination": destination,
                "amount_minor": amount,
                "memo": memo,
            },
        )


def _txs_from(world: SandboxWorld, source: str) -> tuple[list[str], list[str]]:
    """(successful, failed) hashes of the transactions ``source`` got into a ledger."""
    txs = [tx for tx in world.sandbox.chain.transactions.values() if tx.source_account == source]
    return [tx.hash for tx in txs if tx.successful], [tx.hash for tx in txs if not tx.successful]


def _snapshot(world: SandboxWorld, wallet: Wallet, destination: str) -> dict[str, Any]:
    """What a payment changes on chain, comparable across worlds."""
    account = world.sandbox.chain.account(wallet.public_key)
    assert account is not None
    successful, failed = _txs_from(world, wallet.public_key)
    return {
        "source_usdc": world.usdc(wallet.public_key),
        "destination_usdc": world.usdc(destination),
        "source_xlm": account.xlm,
        "successful_txs": len(successful),
        "failed_txs": len(failed),
    }


async def _clean_snapshot(pool: asyncpg.Pool) -> dict[str, Any]:
    world = await _world(pool)
    wallet = await world.activated_wallet(usdc=FUNDED)
    destination = world.sandbox.chain.activate().public_key
    operation = await _start(world, wallet, destination)
    assert await world.run_until_settled(operation.id) == "SUCCEEDED"
    return _snapshot(world, wallet, destination)


async def test_the_payment_lands_once_and_the_payload_names_its_hash(pool: asyncpg.Pool) -> None:
    world = await _world(pool)
    wallet = await world.activated_wallet(usdc=FUNDED)
    destination = world.sandbox.chain.activate().public_key
    account = world.sandbox.chain.account(wallet.public_key)
    assert account is not None
    sequence = account.sequence  # the entry is live: keep the number
    operation = await _start(world, wallet, destination, memo="payout 42")
    async with world.worker() as worker:
        assert await worker.run_once() == 1
    row = await world.operation(operation.id)
    assert (row["status"], row["step"], row["last_error"]) == ("SUCCEEDED", "pay", None)
    assert world.usdc(destination) == AMOUNT
    assert world.usdc(wallet.public_key) == FUNDED - AMOUNT
    [tx_hash] = _txs_from(world, wallet.public_key)[0]
    assert row["payload"]["tx_hash"] == tx_hash
    tx = world.sandbox.chain.transaction(tx_hash)
    assert tx is not None
    assert (tx.memo, tx.source_sequence) == ("payout 42", sequence + 1)
    [submission] = await world.submissions(operation.id)
    assert (submission["tx_hash"], submission["status"]) == (tx_hash, "CONFIRMED")


@pytest.mark.parametrize(
    ("destination_kind", "amount", "reason"),
    [
        ("no_trustline", AMOUNT, "op_no_trust"),
        ("missing", AMOUNT, "op_no_destination"),
        ("trusting", FUNDED + 1, "op_underfunded"),
    ],
)
async def test_a_payment_failed_on_chain_ends_failed_with_its_op_code(
    pool: asyncpg.Pool, destination_kind: str, amount: int, reason: str
) -> None:
    world = await _world(pool)
    chain = world.sandbox.chain
    wallet = await world.activated_wallet(usdc=FUNDED)
    destination = Keypair.random().public_key
    if destination_kind == "no_trustline":
        chain.friendbot(destination)
    elif destination_kind == "trusting":
        destination = chain.activate().public_key
    operation = await _start(world, wallet, destination, amount=amount)
    assert await world.run_until_settled(operation.id) == "FAILED"
    error = (await world.operation(operation.id))["last_error"]
    assert (error["error"], error["reason"]) == ("TransactionRejected", reason)
    assert error["result_codes"]["transaction"] == "tx_failed"
    # Failed in a ledger: the fee is paid, the USDC did not move, and it was tried once.
    assert _txs_from(world, wallet.public_key) == ([], [error["tx_hash"]])
    assert world.usdc(wallet.public_key) == FUNDED
    assert world.usdc(destination) == 0
    [submission] = await world.submissions(operation.id)
    assert (submission["tx_hash"], submission["status"]) == (error["tx_hash"], "FAILED")


async def test_a_destination_that_requires_a_memo_is_refused_without_one(
    pool: asyncpg.Pool,
) -> None:
    world = await _world(pool)
    wallet = await world.activated_wallet(usdc=FUNDED)
    exchange = world.sandbox.chain.activate().public_key
    world.sandbox.chain.set_memo_required(exchange)
    refused = await _start(world, wallet, exchange)
    assert await world.run_until_settled(refused.id) == "FAILED"
    assert (await world.operation(refused.id))["last_error"]["reason"] == "memo_required"
    assert await world.submissions(refused.id) == []
    paid = await _start(world, wallet, exchange, memo="deposit 7")
    assert await world.run_until_settled(paid.id) == "SUCCEEDED"
    assert world.usdc(exchange) == AMOUNT


async def test_a_payload_no_transaction_can_carry_fails_before_signing(
    pool: asyncpg.Pool,
) -> None:
    world = await _world(pool)
    wallet = await world.activated_wallet(usdc=FUNDED)
    destination = world.sandbox.chain.activate().public_key
    bad_destination = await _start(world, wallet, "GNOTAKEY")
    long_memo = await _start(world, wallet, destination, memo="x" * 29)
    for operation, reason in (
        (bad_destination, "destination_invalid"),
        (long_memo, "memo_too_long"),
    ):
        assert await world.run_until_settled(operation.id) == "FAILED"
        assert (await world.operation(operation.id))["last_error"]["reason"] == reason
        assert await world.submissions(operation.id) == []
    assert _txs_from(world, wallet.public_key) == ([], [])


# Faults at each call of ``pay``: the submit itself, and the account reads before the build.
FAULTS = [
    ("POST", "/transactions", "applied_response_lost"),
    ("POST", "/transactions", "hang"),
    ("POST", "/transactions", "status:503"),
    ("POST", "/transactions", "fail_before_apply"),
    ("POST", "/transactions", "crash"),
    ("GET", "/accounts/", "hang"),
    ("GET", "/accounts/", "status:503"),
    ("GET", "/transactions/", "status:503"),
]


@pytest.mark.parametrize(("method", "route", "fault"), FAULTS)
async def test_a_fault_in_pay_then_fresh_workers_end_as_a_clean_run(
    pool: asyncpg.Pool, method: str, route: str, fault: str
) -> None:
    expected = await _clean_snapshot(pool)
    world = await _world(pool)
    wallet = await world.activated_wallet(usdc=FUNDED)
    destination = world.sandbox.chain.activate().public_key
    operation = await _start(world, wallet, destination)
    if route == "/transactions/":
        # The lookup only runs after an unknown outcome: lose the submit's answer too.
        world.sandbox.faults.add("horizon", "POST", "/transactions", "applied_response_lost")
    crash = fault == "crash"
    if not crash:
        world.sandbox.faults.add("horizon", method, route, fault)
    async with world.worker(wrap_network=CrashingNetwork if crash else None) as first:
        if crash:
            with pytest.raises(SimulatedCrash):
                await first.run_once()
        else:
            await first.run_once()
    assert not world.sandbox.faults.pending()
    # The first worker is gone; whatever it left, fresh ones settle it.
    assert await world.run_until_settled(operation.id) == "SUCCEEDED"
    assert _snapshot(world, wallet, destination) == expected
    [tx_hash] = _txs_from(world, wallet.public_key)[0]
    row = await world.operation(operation.id)
    assert row["payload"]["tx_hash"] == tx_hash
    statuses = [(s["tx_hash"], s["status"]) for s in await world.submissions(operation.id)]
    assert statuses == [(tx_hash, "CONFIRMED")]  # one build, never a second envelope


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(amounts=st.lists(st.integers(1, 240).map(lambda quarters: quarters * USDC // 4), max_size=4))
async def test_any_series_of_payments_moves_exactly_what_landed(
    pool: asyncpg.Pool, amounts: list[int]
) -> None:
    """Each payment moves its amount or fails underfunded; no stroop appears or vanishes."""
    world = await _world(pool)  # a fresh world per example: fixtures are not reset
    wallet = await world.activated_wallet(usdc=FUNDED)
    destination = world.sandbox.chain.activate().public_key
    balance, landed = FUNDED, 0
    for amount in amounts:
        operation = await _start(world, wallet, destination, amount=amount)
        status = await world.run_until_settled(operation.id)
        if amount <= balance:
            assert status == "SUCCEEDED"
            balance, landed = balance - amount, landed + 1
        else:
            assert status == "FAILED"
            assert (await world.operation(operation.id))["last_error"]["reason"] == "op_underfunded"
        assert world.usdc(wallet.public_key) == balance
        assert world.usdc(wallet.public_key) + world.usdc(destination) == FUNDED
    successful, failed = _txs_from(world, wallet.public_key)
    assert (len(successful), len(failed)) == (landed, len(amounts) - landed)
