"""Escrow operations end to end on the sandbox: deploy, fund, release, refund, split.

Every amount is checked against the chain and the fee table of providers.md 1.7 (R1, D1, D2).
"""

import asyncpg
import pytest

from flows.queries.operations import OperationKind
from tests.db.escrow_support import AMOUNT, make_deal

pytestmark = pytest.mark.db


async def test_deploy_fund_and_release_two_milestones_pays_seller_and_fees(
    pool: asyncpg.Pool,
) -> None:
    deal = await make_deal(pool)
    world = deal.world
    contract_id = await deal.deploy(milestones=2)
    escrow = world.sandbox.trustless_work.escrows[contract_id]
    assert (escrow.engagement_id, escrow.amount, escrow.platform_fee_bps) == (
        deal.order_id,
        AMOUNT,
        500,
    )
    await deal.fund()
    assert world.usdc(contract_id) == AMOUNT
    assert world.usdc(deal.buyer.public_key) == 0
    row = await deal.run(OperationKind.RELEASE, milestone_count=2)
    # R1: 100 USDC at 5 % -> TW 0.30, platform 5.00, seller 94.70.
    assert world.usdc(deal.seller.public_key) == 947_000_000
    assert world.usdc(contract_id) == 0
    paid = {t["to"]: t["amount_minor"] for t in row["payload"]["transfers"]}
    assert paid == {
        deal.seller.public_key: 947_000_000,
        world.sandbox.platform.public_key: 50_000_000,
        world.settings.trustless_work_fee_address: 3_000_000,
    }
    assert escrow.milestones[0].approved
    assert escrow.milestones[1].approved
    submissions = await world.submissions(row["id"])
    # Two status changes, two approvals, one release: each sent once and confirmed.
    assert [s["status"] for s in submissions] == ["CONFIRMED"] * 5


async def test_refund_disputes_then_pays_the_buyer_net_of_fees(pool: asyncpg.Pool) -> None:
    deal = await make_deal(pool)
    await deal.deploy()
    await deal.fund()
    row = await deal.run(OperationKind.REFUND)
    world = deal.world
    # D1: the full refund is not free.
    assert world.usdc(deal.buyer.public_key) == 947_000_000
    paid = {t["to"]: t["amount_minor"] for t in row["payload"]["transfers"]}
    assert paid[deal.buyer.public_key] == 947_000_000
    assert sum(paid.values()) == AMOUNT
    escrow = world.sandbox.trustless_work.escrows[deal.contract_id or ""]
    assert escrow.flags.resolved
    assert not escrow.flags.disputed


async def test_split_resolution_pays_both_parties_pro_rata(pool: asyncpg.Pool) -> None:
    deal = await make_deal(pool)
    await deal.deploy()
    await deal.fund()
    await deal.run(
        OperationKind.DISPUTE_RESOLVE,
        opener_wallet_id=deal.seller.id,
        release_amount_minor=600_000_000,
        refund_amount_minor=400_000_000,
    )
    world = deal.world
    # D2: seller 568,200,000 and buyer 378,800,000.
    assert world.usdc(deal.seller.public_key) == 568_200_000
    assert world.usdc(deal.buyer.public_key) == 378_800_000


async def test_funding_without_usdc_fails_with_the_contract_reason(pool: asyncpg.Pool) -> None:
    deal = await make_deal(pool, buyer_usdc=AMOUNT // 2)
    await deal.deploy()
    operation_id = await deal.start(OperationKind.ESCROW_FUND, amount_minor=AMOUNT)
    assert await deal.world.run_until_settled(operation_id) == "FAILED"
    row = await deal.world.operation(operation_id)
    assert row["last_error"]["reason"] == "insufficient_funds"
    assert deal.world.usdc(deal.contract_id or "") == 0


async def test_a_fund_already_on_chain_is_not_sent_again(pool: asyncpg.Pool) -> None:
    deal = await make_deal(pool)
    await deal.deploy()
    await deal.fund()
    before = deal.snapshot()
    row = await deal.run(OperationKind.ESCROW_FUND, amount_minor=AMOUNT)
    assert row["payload"]["fund_tx_hash"] is None
    assert deal.snapshot() == before


async def test_a_split_that_no_longer_matches_the_balance_fails(pool: asyncpg.Pool) -> None:
    deal = await make_deal(pool)
    await deal.deploy()
    await deal.fund()
    operation_id = await deal.start(
        OperationKind.DISPUTE_RESOLVE,
        release_amount_minor=600_000_000,
        refund_amount_minor=300_000_000,
    )
    assert await deal.world.run_until_settled(operation_id) == "FAILED"
    error = (await deal.world.operation(operation_id))["last_error"]
    assert (error["error"], error["balance"]) == ("BalanceMismatch", AMOUNT)
