"""WALLET_ACTIVATE end to end: a sealed wallet, one platform-sponsored tx, an active wallet."""

import asyncpg
import pytest

from flows.operation_steps import STEP_REGISTRY
from flows.operations import start_operation
from flows.queries.operations import OperationKind
from providers.stellar.wallet_keys import open_secret
from tests.db.test_operations_support import (
    XLM,
    Harness,
    make_harness,
    run_until_settled,
)

pytestmark = pytest.mark.db


@pytest.fixture(name="harness")
async def harness_fixture(pool: asyncpg.Pool) -> Harness:
    return await make_harness(pool)


async def test_activation_creates_a_sponsored_account_with_a_usdc_trustline(
    harness: Harness,
) -> None:
    wallet, operation = await harness.open_wallet()
    assert (operation.kind, operation.step, operation.status) == (
        OperationKind.WALLET_ACTIVATE,
        "submit_activation",
        "RUNNING",
    )
    async with harness.worker() as worker:
        assert await worker.run_once() == 1
    row = await harness.operation(operation.id)
    assert row["status"] == "SUCCEEDED"
    assert row["step"] == "confirm_wallet"
    assert row["last_error"] is None
    stored = await harness.wallet(wallet.id)
    assert (stored["is_active"], stored["funded"], stored["trustline_ready"]) == (True, True, True)
    account = harness.chain.account(wallet.public_key)
    assert account is not None
    assert account.sponsor == harness.platform.public_key
    assert account.xlm == 1 * XLM  # the fee float only: the reserves are sponsored
    line = account.trustlines[harness.chain.usdc_key]
    assert (line.balance, line.sponsor) == (0, harness.platform.public_key)
    applied = harness.applied_txs(wallet.public_key)
    assert len(applied) == 1
    assert row["payload"] == {"wallet_id": wallet.id, "tx_hash": applied[0]}
    submissions = await harness.submissions(operation.id)
    assert [(s["tx_hash"], s["status"]) for s in submissions] == [(applied[0], "CONFIRMED")]
    tx = harness.chain.transaction(applied[0])
    assert tx is not None
    assert tx.source_account == harness.platform.public_key
    assert submissions[0]["max_time"].timestamp() == tx.max_time


async def test_the_sealed_secret_opens_only_for_its_row(harness: Harness) -> None:
    wallet, _ = await harness.open_wallet()
    stored = await harness.wallet(wallet.id)
    assert stored["sealed_secret"].startswith("v1:")
    assert stored["key_version"] == 1
    seed = open_secret(
        harness.keyring,
        stored["sealed_secret"],
        marketplace_id=harness.marketplace_id,
        wallet_id=wallet.id,
        public_key=wallet.public_key,
    )
    assert seed.keypair().public_key == wallet.public_key


async def test_a_second_start_joins_the_running_operation(harness: Harness) -> None:
    wallet, operation = await harness.open_wallet()
    async with harness.pool.acquire() as conn:
        again = await start_operation(
            conn,
            STEP_REGISTRY,
            marketplace_id=harness.marketplace_id,
            kind=OperationKind.WALLET_ACTIVATE,
            resource_type="wallet",
            resource_id=wallet.id,
            payload={"wallet_id": wallet.id},
        )
    assert again.id == operation.id


async def test_an_account_already_on_chain_counts_as_activated(harness: Harness) -> None:
    wallet, operation = await harness.open_wallet()
    # Someone activated it already (say, a previous run whose records were lost).
    harness.chain.activate(
        open_secret(
            harness.keyring,
            wallet.sealed_secret,
            marketplace_id=harness.marketplace_id,
            wallet_id=wallet.id,
            public_key=wallet.public_key,
        ).keypair()
    )
    assert await run_until_settled(harness, operation.id) == "SUCCEEDED"
    assert await harness.submissions(operation.id) == []
    assert (await harness.wallet(wallet.id))["is_active"]


@pytest.mark.parametrize(
    ("platform_xlm", "reasons"),
    [
        # The platform can pay the fee but not the fee float it gives the user.
        (1 * XLM + 50_000, {"op_underfunded", "op_low_reserve"}),
        # The platform cannot even pay the fee above its own reserve.
        (1 * XLM, {"tx_insufficient_balance"}),
        # The platform account does not exist at all.
        (0, {"tx_no_source_account"}),
    ],
)
async def test_an_underfunded_platform_fails_the_operation_with_the_reason(
    pool: asyncpg.Pool, platform_xlm: int, reasons: set[str]
) -> None:
    harness = await make_harness(pool, platform_xlm=platform_xlm)
    wallet, operation = await harness.open_wallet()
    async with harness.worker() as worker:
        await worker.run_once()
    row = await harness.operation(operation.id)
    assert row["status"] == "FAILED"
    assert row["last_error"]["reason"] in reasons
    assert harness.chain.account(wallet.public_key) is None
    assert not (await harness.wallet(wallet.id))["is_active"]
    # Nothing left in flight: the platform's source lock is free for the next operation.
    assert all(s["status"] != "PENDING" for s in await harness.submissions(operation.id))
    async with harness.worker() as worker:
        await harness.make_due()
        assert await worker.run_once() == 0
