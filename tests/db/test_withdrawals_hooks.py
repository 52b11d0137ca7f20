"""The end of a withdrawal operation, run by a real worker, moves the withdrawal atomically."""

from typing import Any

import asyncpg
import pytest
from stellar_sdk import Keypair

from flows.queries.operations import OperationKind
from flows.withdrawals import (
    WithdrawalStarted,
    apply_provider_status,
    commit_withdrawal,
    create_withdrawal,
    get_withdrawal,
)
from tests.db.test_withdrawals_support import (
    ACTOR,
    PROVIDER,
    TX_HASH,
    USD,
    Shop,
    done,
    failed,
    make_shop,
    payout,
)

pytestmark = pytest.mark.db


@pytest.fixture(name="shop")
async def shop_fixture(pool: asyncpg.Pool) -> Shop:
    return await make_shop(pool)


async def _crypto(shop: Shop, amount: int = 10 * USD) -> tuple[str, WithdrawalStarted]:
    user = await shop.user(funded=amount)
    async with shop.pool.acquire() as conn, conn.transaction():
        started = await create_withdrawal(
            conn,
            shop.steps.registry,
            marketplace_id=shop.marketplace_id,
            user_id=user.id,
            amount_minor=amount,
            destination_type="crypto",
            destination_ref=Keypair.random().public_key,
            actor=ACTOR,
        )
    return user.id, started


async def _airtm(
    shop: Shop, amount: int = 10 * USD, *, commit: bool = False
) -> tuple[str, WithdrawalStarted]:
    user = await shop.user(funded=amount, wallet=False, airtm_email="ana@example.com")
    async with shop.pool.acquire() as conn, conn.transaction():
        started = await create_withdrawal(
            conn,
            shop.steps.registry,
            marketplace_id=shop.marketplace_id,
            user_id=user.id,
            amount_minor=amount,
            destination_type="airtm_balance",
            destination_ref=None,
            commit=commit,
            actor=ACTOR,
        )
    return user.id, started


async def _row(shop: Shop, withdrawal_id: str) -> Any:
    async with shop.pool.acquire() as conn:
        return await get_withdrawal(
            conn, marketplace_id=shop.marketplace_id, withdrawal_id=withdrawal_id
        )


async def test_confirmed_payment_completes_the_withdrawal(shop: Shop) -> None:
    user_id, started = await _crypto(shop)
    assert await shop.run_worker() == 1
    row = await _row(shop, started.withdrawal.id)
    assert (row.status, row.transaction_hash) == ("WITHDRAWAL_COMPLETED", TX_HASH)
    assert await shop.event_types(row.id) == [
        "withdrawal.created",
        "withdrawal.committed",
        "withdrawal.pending",
        "withdrawal.completed",
    ]
    assert [event.type for event in await shop.events(user_id)] == [
        "balance.reserved",
        "balance.released",
    ]
    assert started.operation is not None
    transitions = await shop.transitions(row.id)
    assert [t[2] for t in transitions] == ["commit", "process", "complete"]
    actors = await shop.pool.fetch(
        "SELECT actor_type, actor_id FROM state_transitions WHERE resource_id = $1 ORDER BY id",
        row.id,
    )
    assert [tuple(a) for a in actors[1:]] == [("SYSTEM", started.operation.id)] * 2
    assert (await shop.balance("clearing:withdrawals")).posted == 0
    assert (await shop.balance("external:stellar")).posted == 0
    await shop.assert_books_balance()


async def test_definitive_payment_failure_voids_the_hold(shop: Shop) -> None:
    shop.steps.outcomes[OperationKind.WITHDRAWAL_PAYMENT] = failed(
        error="TransactionRejected", reason="op_no_destination", tx_hash=TX_HASH
    )
    user_id, started = await _crypto(shop)
    await shop.run_worker()
    row = await _row(shop, started.withdrawal.id)
    assert (row.status, row.failure_code, row.transaction_hash) == (
        "WITHDRAWAL_FAILED",
        "op_no_destination",
        TX_HASH,
    )
    assert (await shop.event_types(row.id))[-1] == "withdrawal.failed"
    balance = await shop.balance(f"user:{user_id}")
    assert (balance.available, balance.reserved) == (10 * USD, 0)
    await shop.assert_books_balance()


async def test_failure_without_a_reason_is_not_a_guess(shop: Shop) -> None:
    shop.steps.outcomes[OperationKind.WITHDRAWAL_PAYMENT] = failed(error="UnknownStep", step="x")
    user_id, started = await _crypto(shop)
    assert started.operation is not None
    await shop.run_worker()
    assert (await shop.operation(started.operation.id))["status"] == "FAILED"
    row = await _row(shop, started.withdrawal.id)
    assert row.status == "WITHDRAWAL_COMMITTED"
    assert (await shop.balance(f"user:{user_id}")).reserved == 10 * USD


async def test_failure_with_a_transaction_still_in_flight_is_not_a_guess(shop: Shop) -> None:
    shop.steps.outcomes[OperationKind.WITHDRAWAL_PAYMENT] = failed(
        error="TransactionRejected", reason="tx_bad_auth"
    )
    user_id, started = await _crypto(shop)
    assert started.operation is not None
    # A transaction of this operation whose outcome is not known (it may still land).
    await shop.pool.execute(
        "INSERT INTO operation_submissions (marketplace_id, operation_id, step, step_index,"
        " tx_hash, envelope_xdr, max_time, source_account, sequence)"
        " VALUES ($1, $2, 'pay', 0, $3, 'AAAA', now(), $4, 1)",
        shop.marketplace_id,
        started.operation.id,
        "cd" * 32,
        Keypair.random().public_key,
    )
    await shop.run_worker()
    assert (await _row(shop, started.withdrawal.id)).status == "WITHDRAWAL_COMMITTED"
    assert (await shop.balance(f"user:{user_id}")).reserved == 10 * USD


async def test_payout_created_then_committed_then_completed(shop: Shop) -> None:
    user_id, started = await _airtm(shop)
    await shop.run_worker()
    row = await _row(shop, started.withdrawal.id)
    assert (row.status, row.airtm_payout_id) == ("WITHDRAWAL_CREATED", "po_" + row.id)
    assert await shop.event_types(row.id) == ["withdrawal.created"]

    shop.steps.outcomes[OperationKind.AIRTM_PAYOUT] = payout("COMPLETED")
    async with shop.pool.acquire() as conn, conn.transaction():
        committed = await commit_withdrawal(
            conn,
            shop.steps.registry,
            marketplace_id=shop.marketplace_id,
            withdrawal_id=row.id,
            actor=ACTOR,
        )
    assert committed.operation is not None
    assert started.operation is not None
    assert committed.operation.id != started.operation.id
    await shop.run_worker()
    assert shop.steps.runs[-1]["commit"] is True
    row = await _row(shop, row.id)
    assert row.status == "WITHDRAWAL_COMPLETED"
    assert await shop.event_types(row.id) == [
        "withdrawal.created",
        "withdrawal.committed",
        "withdrawal.completed",
    ]
    assert (await shop.balance("external:airtm")).posted == -10 * USD
    assert (await shop.balance(f"user:{user_id}")).posted == 0
    await shop.assert_books_balance()


async def test_payout_ending_canceled_by_airtm_returns_the_money(shop: Shop) -> None:
    shop.steps.outcomes[OperationKind.AIRTM_PAYOUT] = payout("CANCELED", failure_reason="expired")
    user_id, started = await _airtm(shop, commit=True)
    await shop.run_worker()
    row = await _row(shop, started.withdrawal.id)
    assert (row.status, row.failure_reason) == ("WITHDRAWAL_CANCELED", "expired")
    event = (await shop.events(row.id))[-1]
    assert (event.type, event.data["canceled_by"]) == ("withdrawal.canceled", "provider")
    assert (await shop.balance(f"user:{user_id}")).available == 10 * USD
    await shop.assert_books_balance()


async def test_rejected_payout_creation_fails_the_withdrawal(shop: Shop) -> None:
    shop.steps.outcomes[OperationKind.AIRTM_PAYOUT] = failed(
        error="ProviderRejected", reason="415059", message="recipient not found"
    )
    user_id, started = await _airtm(shop)
    await shop.run_worker()
    row = await _row(shop, started.withdrawal.id)
    assert (row.status, row.failure_code, row.failure_reason) == (
        "WITHDRAWAL_FAILED",
        "415059",
        "recipient not found",
    )
    assert not row.committed
    assert (await shop.event_types(row.id))[-1] == "withdrawal.failed"
    assert (await shop.balance(f"user:{user_id}")).available == 10 * USD
    await shop.assert_books_balance()


async def test_payout_failure_after_airtm_moved_on_is_left_alone(shop: Shop) -> None:
    shop.steps.outcomes[OperationKind.AIRTM_PAYOUT] = failed(error="ProviderRejected", reason="x")
    user_id, started = await _airtm(shop, commit=True)
    # A webhook says the recipient must act before the operation ends.
    async with shop.pool.acquire() as conn, conn.transaction():
        await apply_provider_status(
            conn,
            marketplace_id=shop.marketplace_id,
            withdrawal_id=started.withdrawal.id,
            airtm_status="PENDING",
            actor=PROVIDER,
        )
    await shop.run_worker()
    row = await _row(shop, started.withdrawal.id)
    assert row.status == "WITHDRAWAL_PENDING_USER_ACTION"
    assert (await shop.balance(f"user:{user_id}")).reserved == 10 * USD


async def test_late_operation_news_on_a_canceled_withdrawal_is_ignored(shop: Shop) -> None:
    shop.steps.outcomes[OperationKind.WITHDRAWAL_PAYMENT] = done(tx_hash=TX_HASH)
    user_id, started = await _crypto(shop)
    async with shop.pool.acquire() as conn, conn.transaction():
        await apply_provider_status(
            conn,
            marketplace_id=shop.marketplace_id,
            withdrawal_id=started.withdrawal.id,
            chain_outcome="failed",
            failure_code="op_underfunded",
            actor=PROVIDER,
        )
    before = await shop.footprint()
    await shop.run_worker()
    assert (await _row(shop, started.withdrawal.id)).status == "WITHDRAWAL_FAILED"
    after = await shop.footprint()
    # Only the operation row changed: no event, no transfer.
    assert after[:3] == before[:3]
    assert (await shop.balance(f"user:{user_id}")).available == 10 * USD
