"""Orders on the whole sandbox: the real escrow steps over HTTP, the real hooks, one ledger.

After each path the ledger must equal the chain: every party's posted balance is the USDC in
its wallet, the escrow account is what the contract holds, the fee accounts what the fee
addresses received.
"""

from typing import Any

import asyncpg
import pytest

from common.ids import new_id
from flows.dispute_resolution import resolve_dispute
from flows.disputes import assign_dispute, open_dispute
from flows.escrow_steps import ESCROW_STEPS
from flows.operation_steps import STEP_REGISTRY
from flows.order_escrow import start_escrow_create, start_escrow_fund
from flows.order_resolution import request_release
from flows.order_settlement import EscrowAddresses
from flows.orders import (
    MilestoneInput,
    complete_milestone,
    create_order,
    get_order,
    order_hooks,
    reserve_order,
)
from flows.queries.wallets import Wallet
from ledger import (
    AccountNotFound,
    Transfer,
    create_transfers,
    get_account_by_code,
    open_account,
    run_in_transaction,
    system_account,
    user_account,
)
from tests.db.sandbox_world import USDC, SandboxWorld, make_world
from tests.db.test_orders_support import ACTOR, ASSET, SUPPORT

pytestmark = pytest.mark.db

AMOUNT = 80 * USDC


class Market:
    """A sandbox world with the escrow steps and the order hooks, and two funded parties."""

    def __init__(self, world: SandboxWorld, buyer: Wallet, seller: Wallet) -> None:
        self.world = world
        self.buyer = buyer
        self.seller = seller

    async def call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        async def work(conn: asyncpg.Connection) -> Any:
            return await function(conn, *args, marketplace_id=self.world.marketplace_id, **kwargs)

        return await run_in_transaction(self.world.pool, work)

    async def settle(self, order_id: str) -> None:
        order = await self.call(get_order, order_id=order_id)
        assert order.operation is not None
        status = await self.world.run_until_settled(order.operation.id)
        assert status == "SUCCEEDED", (await self.world.operation(order.operation.id))["last_error"]

    async def posted(self, code: str) -> int:
        async with self.world.pool.acquire() as conn:
            try:
                account = await get_account_by_code(conn, self.world.marketplace_id, ASSET, code)
            except AccountNotFound:
                return 0  # opened on first use (fee accounts at the first payout)
            return account.balance.posted

    async def assert_ledger_matches_chain(self, order_id: str, contract_id: str) -> None:
        world = self.world
        assert await self.posted(f"user:{self.buyer.user_id}") == world.usdc(self.buyer.public_key)
        assert await self.posted(f"user:{self.seller.user_id}") == world.usdc(
            self.seller.public_key
        )
        assert await self.posted(f"escrow:{order_id}") == world.usdc(contract_id)
        assert await self.posted("fees:platform") == world.usdc(world.sandbox.platform.public_key)
        assert await self.posted("fees:trustless_work") == world.usdc(
            world.settings.trustless_work_fee_address
        )
        async with world.pool.acquire() as conn:
            assert await conn.fetch("SELECT * FROM ledger_zero_sum_violations_v1()") == []


async def _user(world: SandboxWorld, wallet: Wallet, usdc: int) -> None:
    """The users row of an activated wallet, with its on-chain USDC deposited in the ledger."""
    async with world.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO users (marketplace_id, id, external_user_id) VALUES ($1, $2, $2)",
            world.marketplace_id,
            wallet.user_id,
        )
        account = await open_account(
            conn, world.marketplace_id, ASSET, user_account(wallet.user_id)
        )
        if usdc:
            source = await open_account(
                conn, world.marketplace_id, ASSET, system_account("external:stellar")
            )
            await create_transfers(
                conn,
                [
                    Transfer(
                        id=new_id("trf_"),
                        marketplace_id=world.marketplace_id,
                        code="deposit",
                        debit_account_id=source.id,
                        credit_account_id=account.id,
                        amount=usdc,
                        asset=ASSET,
                    )
                ],
            )


async def _market(pool: asyncpg.Pool) -> Market:
    world = await make_world(pool)
    world.registry = {**STEP_REGISTRY, **ESCROW_STEPS}
    world.hooks = order_hooks(
        EscrowAddresses(
            platform=world.sandbox.platform.public_key,
            trustless_work_fee=world.settings.trustless_work_fee_address,
        )
    )
    buyer = await world.activated_wallet(usdc=AMOUNT)
    seller = await world.activated_wallet()
    await _user(world, buyer, AMOUNT)
    await _user(world, seller, 0)
    return Market(world, buyer, seller)


async def _in_progress(market: Market, milestones: list[MilestoneInput] | None) -> str:
    registry = market.world.registry
    order = await market.call(
        create_order,
        actor=ACTOR,
        buyer_id=market.buyer.user_id,
        seller_id=market.seller.user_id,
        amount_minor=AMOUNT,
        title="Logo design",
        description="Three colours",
        milestones=milestones,
    )
    await market.call(reserve_order, actor=ACTOR, order_id=order.id)
    await market.call(start_escrow_create, registry, actor=ACTOR, order_id=order.id)
    await market.settle(order.id)
    await market.call(start_escrow_fund, registry, actor=ACTOR, order_id=order.id)
    await market.settle(order.id)
    return str(order.id)


async def test_release_on_the_sandbox_books_what_the_contract_paid(pool: asyncpg.Pool) -> None:
    market = await _market(pool)
    parts = [
        MilestoneInput(milestone_ref="design", title="Design", amount_minor=30 * USDC),
        MilestoneInput(milestone_ref="final", title="Final files", amount_minor=50 * USDC),
    ]
    order_id = await _in_progress(market, parts)
    order = await market.call(get_order, order_id=order_id)
    assert order.status == "IN_PROGRESS"
    contract_id = order.escrow.contract_id
    contract = market.world.sandbox.trustless_work.escrows[contract_id]
    assert [m.description for m in contract.milestones] == ["Design", "Final files"]
    await market.assert_ledger_matches_chain(order_id, contract_id)
    for ref in ("design", "final"):
        await market.call(complete_milestone, actor=ACTOR, order_id=order_id, milestone_ref=ref)
    await market.call(request_release, market.world.registry, actor=ACTOR, order_id=order_id)
    await market.settle(order_id)
    order = await market.call(get_order, order_id=order_id)
    assert (order.status, order.close_reason) == ("CLOSED", "RELEASED")
    # 80 USDC at 5 % + 0.3 %: the seller's wallet holds 75.76 and so does its ledger account.
    assert market.world.usdc(market.seller.public_key) == 757_600_000
    await market.assert_ledger_matches_chain(order_id, contract_id)


async def test_a_split_on_the_sandbox_books_both_shares(pool: asyncpg.Pool) -> None:
    market = await _market(pool)
    order_id = await _in_progress(market, None)
    dispute = await market.call(
        open_dispute, actor=ACTOR, order_id=order_id, opened_by="SELLER", reason="OTHER"
    )
    await market.call(assign_dispute, actor=SUPPORT, dispute_id=dispute.id, assigned_to="agent")
    await market.call(
        resolve_dispute,
        market.world.registry,
        actor=SUPPORT,
        dispute_id=dispute.id,
        decision="SPLIT",
        release_amount_minor=48 * USDC,
        refund_amount_minor=32 * USDC,
    )
    await market.settle(order_id)
    order = await market.call(get_order, order_id=order_id)
    assert (order.status, order.close_reason) == ("CLOSED", "SPLIT")
    assert market.world.usdc(market.buyer.public_key) > 0
    await market.assert_ledger_matches_chain(order_id, order.escrow.contract_id)
