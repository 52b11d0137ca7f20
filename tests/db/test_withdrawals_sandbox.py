"""Withdrawals end to end on the sandbox: the real steps over HTTP, the hooks, the ledger.

The chain and the ledger must agree at the end: what left the user's wallet on chain is what
left ``user:<usr>``, and ``clearing:withdrawals`` is back to zero.
"""

from types import MappingProxyType
from typing import Any

import asyncpg
import pytest
from stellar_sdk import Keypair

from common.ids import new_id
from flows.operation_steps import STEP_REGISTRY
from flows.queries.operations import OperationKind
from flows.withdrawal_steps import AIRTM_PAYOUT_STEPS, WITHDRAWAL_PAYMENT_STEPS
from flows.withdrawals import (
    WithdrawalStarted,
    apply_provider_status,
    create_withdrawal,
    get_withdrawal,
    withdrawal_hooks,
)
from ledger import (
    Transfer,
    TransferResult,
    create_transfers,
    get_account_by_code,
    open_account,
    system_account,
    user_account,
)
from tests.db.sandbox_world import SandboxWorld, make_world
from tests.db.test_withdrawals_support import ACTOR, PROVIDER

pytestmark = pytest.mark.db

USDC = 10_000_000


@pytest.fixture(name="world")
async def world_fixture(pool: asyncpg.Pool) -> SandboxWorld:
    world = await make_world(pool)
    world.registry = MappingProxyType(
        {
            **STEP_REGISTRY,
            OperationKind.WITHDRAWAL_PAYMENT: WITHDRAWAL_PAYMENT_STEPS,
            OperationKind.AIRTM_PAYOUT: AIRTM_PAYOUT_STEPS,
        }
    )
    world.hooks = withdrawal_hooks()
    return world


async def _user(world: SandboxWorld, *, usdc: int, airtm_email: str | None = None) -> str:
    """A user with an activated wallet holding ``usdc``, and the same amount in the ledger."""
    wallet = await world.activated_wallet(usdc=usdc)
    async with world.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO users (marketplace_id, id, external_user_id, airtm_user_id, airtm_email,"
            " airtm_linked_at) VALUES ($1, $2, $2, $3, $4,"
            " CASE WHEN $3::text IS NULL THEN NULL ELSE now() END)",
            world.marketplace_id,
            wallet.user_id,
            None if airtm_email is None else "airtm_" + wallet.user_id,
            airtm_email,
        )
        world_account = await open_account(
            conn, world.marketplace_id, "USD", system_account("external:stellar")
        )
        user = await open_account(conn, world.marketplace_id, "USD", user_account(wallet.user_id))
        deposit = Transfer(
            id=new_id("trf_"),
            marketplace_id=world.marketplace_id,
            code="deposit",
            debit_account_id=world_account.id,
            credit_account_id=user.id,
            amount=usdc,
            asset="USD",
            user_id=wallet.user_id,
        )
        [outcome] = await create_transfers(conn, [deposit])
        assert outcome.result is TransferResult.OK
    return wallet.user_id


async def _create(
    world: SandboxWorld, user_id: str, amount: int, **fields: Any
) -> WithdrawalStarted:
    async with world.pool.acquire() as conn, conn.transaction():
        return await create_withdrawal(
            conn,
            world.registry,
            marketplace_id=world.marketplace_id,
            user_id=user_id,
            amount_minor=amount,
            actor=ACTOR,
            **fields,
        )


async def _status(world: SandboxWorld, withdrawal_id: str) -> str:
    async with world.pool.acquire() as conn:
        row = await get_withdrawal(
            conn, marketplace_id=world.marketplace_id, withdrawal_id=withdrawal_id
        )
    return row.status


async def _posted(world: SandboxWorld, code: str) -> int:
    async with world.pool.acquire() as conn:
        account = await get_account_by_code(conn, world.marketplace_id, "USD", code)
    return account.balance.posted


async def test_crypto_withdrawal_pays_on_chain_and_books_it(world: SandboxWorld) -> None:
    user_id = await _user(world, usdc=50 * USDC)
    destination = await world.activated_wallet()
    started = await _create(
        world,
        user_id,
        20 * USDC,
        destination_type="crypto",
        destination_ref=destination.public_key,
        memo="thanks",
    )
    assert started.operation is not None
    assert await world.run_until_settled(started.operation.id) == "SUCCEEDED"
    assert await _status(world, started.withdrawal.id) == "WITHDRAWAL_COMPLETED"
    assert world.usdc(destination.public_key) == 20 * USDC
    assert await _posted(world, f"user:{user_id}") == 30 * USDC
    assert await _posted(world, "clearing:withdrawals") == 0


async def test_payment_to_a_missing_account_fails_and_returns_the_money(
    world: SandboxWorld,
) -> None:
    user_id = await _user(world, usdc=5 * USDC)
    started = await _create(
        world,
        user_id,
        5 * USDC,
        destination_type="crypto",
        destination_ref=Keypair.random().public_key,
    )
    assert started.operation is not None
    assert await world.run_until_settled(started.operation.id) == "FAILED"
    async with world.pool.acquire() as conn:
        row = await get_withdrawal(
            conn, marketplace_id=world.marketplace_id, withdrawal_id=started.withdrawal.id
        )
        user = await get_account_by_code(conn, world.marketplace_id, "USD", f"user:{user_id}")
    assert (row.status, row.failure_code) == ("WITHDRAWAL_FAILED", "op_no_destination")
    assert (user.balance.available, user.balance.reserved) == (5 * USDC, 0)


async def test_airtm_payout_committed_at_once_completes_when_airtm_pays(
    world: SandboxWorld,
) -> None:
    world.sandbox.airtm.add_user("ana@example.com")
    world.sandbox.airtm.fund(100 * USDC)
    user_id = await _user(world, usdc=30 * USDC, airtm_email="ana@example.com")
    started = await _create(
        world,
        user_id,
        12 * USDC,
        destination_type="airtm_balance",
        destination_ref=None,
        commit=True,
    )
    assert started.operation is not None
    # Committed at Airtm; the operation polls until a final status.
    assert await world.run_until_settled(started.operation.id, rounds=2) == "RUNNING"
    payout_id = (await world.operation(started.operation.id))["payload"]["payout_id"]
    # A refresh reads PROCESSING meanwhile.
    async with world.pool.acquire() as conn, conn.transaction():
        update = await apply_provider_status(
            conn,
            marketplace_id=world.marketplace_id,
            withdrawal_id=started.withdrawal.id,
            airtm_status="PROCESSING",
            airtm_payout_id=payout_id,
            actor=PROVIDER,
        )
    assert update.withdrawal.status == "WITHDRAWAL_PENDING"
    world.sandbox.airtm.payout_completes(payout_id)
    assert await world.run_until_settled(started.operation.id) == "SUCCEEDED"
    assert await _status(world, started.withdrawal.id) == "WITHDRAWAL_COMPLETED"
    assert await _posted(world, f"user:{user_id}") == 18 * USDC
    assert await _posted(world, "clearing:withdrawals") == 0
    assert await _posted(world, "external:airtm") == -12 * USDC
