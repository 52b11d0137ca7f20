"""Concurrent withdrawals never overdraw, and concurrent news ends a withdrawal exactly once."""

import asyncio

import asyncpg
import pytest
from stellar_sdk import Keypair

from common.errors import InsufficientFunds
from common.money import parse_amount
from flows.withdrawals import (
    StatusUpdate,
    WithdrawalStarted,
    apply_provider_status,
    create_withdrawal,
)
from ledger import run_in_transaction
from tests.db.test_withdrawals_support import ACTOR, PROVIDER, TX_HASH, USD, Shop, make_shop

pytestmark = pytest.mark.db


@pytest.fixture(name="shop")
async def shop_fixture(pool: asyncpg.Pool) -> Shop:
    return await make_shop(pool)


async def test_twenty_concurrent_withdrawals_never_overdraw(shop: Shop) -> None:
    user = await shop.user(funded=70 * USD)

    async def withdraw(conn: asyncpg.Connection) -> WithdrawalStarted:
        return await create_withdrawal(
            conn,
            shop.steps.registry,
            marketplace_id=shop.marketplace_id,
            user_id=user.id,
            amount_minor=10 * USD,
            destination_type="crypto",
            destination_ref=Keypair.random().public_key,
            actor=ACTOR,
        )

    # Each attempt runs in its own transaction on its own connection.
    results = await asyncio.gather(
        *(run_in_transaction(shop.pool, withdraw) for _ in range(20)), return_exceptions=True
    )
    accepted = [r for r in results if isinstance(r, WithdrawalStarted)]
    refused = [r for r in results if isinstance(r, InsufficientFunds)]
    assert (len(accepted), len(refused)) == (7, 13)
    balance = await shop.balance(f"user:{user.id}")
    assert (balance.posted, balance.available, balance.reserved) == (70 * USD, 0, 70 * USD)
    count = await shop.pool.fetchval("SELECT count(*) FROM withdrawals WHERE user_id = $1", user.id)
    assert count == 7
    reserved = [e for e in await shop.events(user.id) if e.type == "balance.reserved"]
    assert len(reserved) == 7
    # Each event carries the balance right after its own hold.
    available = sorted(parse_amount(e.data["available"]) for e in reserved)
    assert available == [n * 10 * USD for n in range(7)]
    await shop.assert_books_balance()


async def test_racing_completion_news_posts_once(shop: Shop) -> None:
    user = await shop.user(funded=10 * USD)

    async def create(conn: asyncpg.Connection) -> WithdrawalStarted:
        return await create_withdrawal(
            conn,
            shop.steps.registry,
            marketplace_id=shop.marketplace_id,
            user_id=user.id,
            amount_minor=10 * USD,
            destination_type="crypto",
            destination_ref=Keypair.random().public_key,
            actor=ACTOR,
        )

    withdrawal_id = (await run_in_transaction(shop.pool, create)).withdrawal.id

    async def news(conn: asyncpg.Connection, outcome: str) -> StatusUpdate:
        return await apply_provider_status(
            conn,
            marketplace_id=shop.marketplace_id,
            withdrawal_id=withdrawal_id,
            chain_outcome="confirmed" if outcome == "confirmed" else "failed",
            transaction_hash=TX_HASH,
            actor=PROVIDER,
        )

    outcomes = ["confirmed"] * 8 + ["failed"] * 2
    updates = await asyncio.gather(
        *(run_in_transaction(shop.pool, lambda conn, o=o: news(conn, o)) for o in outcomes)
    )
    assert sum(update.outcome == "applied" for update in updates) == 1
    assert {update.outcome for update in updates} == {"applied", "final"}
    transfers = [t["code"] for t in await shop.transfers(user.id)]
    assert transfers in (
        ["withdrawal_hold", "withdrawal_complete", "withdrawal_settle"],
        ["withdrawal_hold", "withdrawal_void"],
    )
    await shop.assert_books_balance()
