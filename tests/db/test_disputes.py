"""Disputes over a fake chain: open, assign, resolve (full release, full refund, split)."""

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import (
    DisputeAlreadyOpen,
    DisputeNotFound,
    InvalidAmount,
    InvalidRequest,
    InvalidTransition,
)
from flows.dispute_resolution import resolve_dispute
from flows.disputes import (
    DisputeFilters,
    assign_dispute,
    get_dispute,
    list_disputes,
    open_dispute,
)
from flows.orders import get_order
from flows.queries.operations import OperationKind
from providers.trustless_work.fees import distribution_split
from tests.db.test_orders_support import (
    ACTOR,
    SUPPORT,
    USDC,
    Deal,
    Shop,
    fund_deal,
    make_deal,
    make_shop,
)

pytestmark = pytest.mark.db


@pytest.fixture(name="shop")
async def shop_fixture(pool: asyncpg.Pool) -> Shop:
    return await make_shop(pool)


async def _disputed(
    shop: Shop, *, amount: int = 20 * USDC, opened_by: str = "BUYER"
) -> tuple[Deal, str]:
    deal = await make_deal(shop, amount=amount, buyer_usdc=amount)
    await fund_deal(deal)
    dispute = await shop.call(
        open_dispute,
        actor=ACTOR,
        order_id=deal.order_id,
        opened_by=opened_by,
        reason="QUALITY_ISSUE",
        description="colours are off",
        evidence=["https://example.test/1.png"],
    )
    await shop.call(assign_dispute, actor=SUPPORT, dispute_id=dispute.id, assigned_to="agent-7")
    return deal, dispute.id


async def test_open_and_assign_freeze_the_order(shop: Shop) -> None:
    deal = await make_deal(shop)
    await fund_deal(deal)
    start = await shop.last_sequence()
    dispute = await shop.call(
        open_dispute, actor=ACTOR, order_id=deal.order_id, opened_by="SELLER", reason="OTHER"
    )
    assert (dispute.status, dispute.opened_by, dispute.evidence) == ("OPEN", "SELLER", [])
    order = await shop.call(get_order, order_id=deal.order_id)
    assert (order.status, order.dispute_id) == ("DISPUTED", dispute.id)
    assert order.escrow is not None
    assert order.escrow.status == "DISPUTED"
    with pytest.raises(DisputeAlreadyOpen):
        await shop.call(
            open_dispute, actor=ACTOR, order_id=deal.order_id, opened_by="BUYER", reason="OTHER"
        )
    # Resolve needs a reviewer first.
    with pytest.raises(InvalidTransition):
        await shop.call(
            resolve_dispute,
            shop.chain.registry(),
            actor=SUPPORT,
            dispute_id=dispute.id,
            decision="FULL_RELEASE",
        )
    assigned = await shop.call(
        assign_dispute, actor=SUPPORT, dispute_id=dispute.id, assigned_to="agent-1"
    )
    again = await shop.call(
        assign_dispute, actor=SUPPORT, dispute_id=dispute.id, assigned_to="agent-2"
    )
    assert (assigned.status, again.status, again.assigned_to) == (
        "UNDER_REVIEW",
        "UNDER_REVIEW",
        "agent-2",
    )
    events = await shop.events(start)
    assert [e.type for e in events] == [
        "dispute.opened",
        "order.disputed",
        "dispute.under_review",
        "dispute.under_review",
    ]
    assert events[1].data["dispute_id"] == dispute.id
    assert events[3].data["reviewed_by"] == "agent-2"


async def test_a_dispute_needs_an_order_in_progress(shop: Shop) -> None:
    deal = await make_deal(shop)
    with pytest.raises(InvalidTransition):
        await shop.call(
            open_dispute, actor=ACTOR, order_id=deal.order_id, opened_by="BUYER", reason="OTHER"
        )
    with pytest.raises(DisputeNotFound):
        await shop.call(get_dispute, dispute_id="dsp_" + "x" * 32)
    with pytest.raises(DisputeNotFound):
        await shop.call(
            assign_dispute, actor=SUPPORT, dispute_id="dsp_" + "x" * 32, assigned_to="a"
        )


async def test_split_12_8_pays_both_parties_their_net_and_closes_split(shop: Shop) -> None:
    deal, dispute_id = await _disputed(shop)
    start = await shop.last_sequence()
    started = await shop.call(
        resolve_dispute,
        shop.chain.registry(),
        actor=SUPPORT,
        dispute_id=dispute_id,
        decision="SPLIT",
        release_amount_minor=12 * USDC,
        refund_amount_minor=8 * USDC,
        note="half done",
    )
    assert started.dispute.status == "UNDER_REVIEW"
    assert started.dispute.resolution_decision == "SPLIT"
    assert started.operation.kind is OperationKind.DISPUTE_RESOLVE
    assert started.operation.payload["opener_wallet_id"] in shop.chain.wallets
    await shop.settle()
    # T = 20 at 5 % + 0.3 %: fees 1.00 + 0.06, shared 12:8 (providers.md 1.7).
    seller_net, buyer_net = 12 * USDC - 6_000_000 - 360_000, 8 * USDC - 4_000_000 - 240_000
    assert (await shop.balance(f"user:{deal.seller}")).available == seller_net
    assert (await shop.balance(f"user:{deal.buyer}")).available == buyer_net
    assert (await shop.balance("fees:platform")).posted == USDC
    assert (await shop.balance("fees:trustless_work")).posted == 600_000
    assert (await shop.balance(f"escrow:{deal.order_id}")).posted == 0
    assert await shop.zero_sum_violations() == []
    order = await shop.call(get_order, order_id=deal.order_id)
    assert (order.status, order.close_reason) == ("CLOSED", "SPLIT")
    assert order.escrow is not None
    assert order.escrow.status == "RELEASED"
    payouts = {(p.party, p.gross_amount_minor, p.net_amount_minor) for p in order.escrow.payouts}
    assert payouts == {("SELLER", 12 * USDC, seller_net), ("BUYER", 8 * USDC, buyer_net)}
    dispute = await shop.call(get_dispute, dispute_id=dispute_id)
    assert (dispute.status, dispute.resolved_by) == ("RESOLVED", SUPPORT.id)
    assert dispute.resolved_at is not None
    events = await shop.events(start)
    assert [e.type for e in events] == [
        "dispute.resolved",
        "escrow.released",
        "balance.credited",
        "balance.credited",
        "order.closed",
    ]
    assert (events[0].data["release_amount"], events[0].data["refund_amount"]) == ("12.00", "8.00")
    assert [e.resource_id for e in events[2:4]] == [deal.seller, deal.buyer]
    assert [e.data["source"] for e in events[2:4]] == ["release", "refund"]


@pytest.mark.parametrize(
    ("decision", "escrow_event", "order_event", "paid"),
    [
        ("FULL_RELEASE", "escrow.released", "order.released", "seller"),
        ("FULL_REFUND", "escrow.refunded", "order.refunded", "buyer"),
    ],
)
async def test_full_decisions_pay_one_party(
    shop: Shop, decision: str, escrow_event: str, order_event: str, paid: str
) -> None:
    deal, dispute_id = await _disputed(shop)
    start = await shop.last_sequence()
    await shop.call(
        resolve_dispute,
        shop.chain.registry(),
        actor=SUPPORT,
        dispute_id=dispute_id,
        decision=decision,
    )
    await shop.settle()
    net = 20 * USDC - USDC - 600_000
    user = deal.seller if paid == "seller" else deal.buyer
    assert (await shop.balance(f"user:{user}")).available == net
    order = await shop.call(get_order, order_id=deal.order_id)
    reason = "RELEASED" if paid == "seller" else "REFUNDED"
    assert (order.status, order.close_reason) == ("CLOSED", reason)
    events = await shop.events(start)
    assert [e.type for e in events] == [
        "dispute.resolved",
        escrow_event,
        order_event,
        "balance.credited",
        "order.closed",
    ]
    assert events[2].data["net_amount"] == "18.94"
    assert await shop.zero_sum_violations() == []


async def test_resolve_refuses_bad_decisions(shop: Shop) -> None:
    _, dispute_id = await _disputed(shop)
    registry = shop.chain.registry()

    async def resolve(decision: str, **amounts: int) -> object:
        return await shop.call(
            resolve_dispute,
            registry,
            actor=SUPPORT,
            dispute_id=dispute_id,
            decision=decision,
            **amounts,
        )

    with pytest.raises(InvalidRequest):
        await resolve("HALF")
    with pytest.raises(InvalidRequest):
        await resolve("FULL_RELEASE", release_amount_minor=20 * USDC)
    with pytest.raises(InvalidAmount) as short:
        await resolve("SPLIT", release_amount_minor=12 * USDC, refund_amount_minor=7 * USDC)
    assert short.value.details == {"escrow_amount": "20.00", "total": "19.00"}
    with pytest.raises(InvalidAmount):
        await resolve("SPLIT", release_amount_minor=20 * USDC, refund_amount_minor=0)
    with pytest.raises(InvalidAmount):
        await resolve("SPLIT", release_amount_minor=20 * USDC)
    with pytest.raises(DisputeNotFound):
        await shop.call(
            resolve_dispute,
            registry,
            actor=SUPPORT,
            dispute_id="dsp_" + "q" * 32,
            decision="FULL_REFUND",
        )
    # Nothing was recorded by the refusals.
    dispute = await shop.call(get_dispute, dispute_id=dispute_id)
    assert dispute.resolution_decision is None


async def test_a_failed_resolution_resumes_only_with_the_same_decision(shop: Shop) -> None:
    deal, dispute_id = await _disputed(shop, opened_by="SELLER")
    registry = shop.chain.registry()
    shop.chain.failures[OperationKind.DISPUTE_RESOLVE] = {"error": "X", "reason": "tx_failed"}

    async def resolve(decision: str) -> object:
        return await shop.call(
            resolve_dispute, registry, actor=SUPPORT, dispute_id=dispute_id, decision=decision
        )

    await resolve("FULL_REFUND")
    # While it runs, nothing else may start.
    with pytest.raises(InvalidTransition):
        await resolve("FULL_REFUND")
    start = await shop.last_sequence()
    await shop.settle()
    assert [e.type for e in await shop.events(start)] == ["order.operation_failed"]
    order = await shop.call(get_order, order_id=deal.order_id)
    assert order.status == "DISPUTED"
    dispute = await shop.call(get_dispute, dispute_id=dispute_id)
    assert (dispute.status, dispute.resolution_decision) == ("UNDER_REVIEW", "FULL_REFUND")
    with pytest.raises(InvalidTransition) as other:
        await resolve("FULL_RELEASE")
    assert other.value.details["resolution_decision"] == "FULL_REFUND"
    del shop.chain.failures[OperationKind.DISPUTE_RESOLVE]
    await resolve("FULL_REFUND")
    await shop.settle()
    assert (await shop.call(get_dispute, dispute_id=dispute_id)).status == "RESOLVED"
    with pytest.raises(InvalidTransition):
        await resolve("FULL_REFUND")


async def test_list_disputes_filters(shop: Shop) -> None:
    first, first_id = await _disputed(shop)
    deal = await make_deal(shop)
    await fund_deal(deal)
    second = await shop.call(
        open_dispute, actor=ACTOR, order_id=deal.order_id, opened_by="SELLER", reason="OTHER"
    )
    everything = await shop.call(list_disputes, filters=DisputeFilters())
    assert [d.id for d in everything.data] == [second.id, first_id]
    page = await shop.call(list_disputes, filters=DisputeFilters(), limit=1)
    assert page.has_more
    assert [d.id for d in page.data] == [second.id]
    by_order = await shop.call(list_disputes, filters=DisputeFilters(order_id=first.order_id))
    assert [d.id for d in by_order.data] == [first_id]
    reviewed = await shop.call(
        list_disputes, filters=DisputeFilters(statuses=["UNDER_REVIEW"], assigned_to="agent-7")
    )
    assert [d.id for d in reviewed.data] == [first_id]
    by_seller = await shop.call(list_disputes, filters=DisputeFilters(opened_by="SELLER"))
    assert [d.id for d in by_seller.data] == [second.id]


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    amount=st.integers(2, 10**12),
    per_mille=st.integers(1, 999),
    fee_bps=st.sampled_from([0, 1, 250, 500, 9900]),
)
async def test_any_split_empties_the_escrow_and_keeps_the_books_at_zero(
    pool: asyncpg.Pool, amount: int, per_mille: int, fee_bps: int
) -> None:
    # A new marketplace per example: fixtures are not reset between hypothesis examples.
    shop = await make_shop(pool, fee_bps=fee_bps)
    release = min(max(1, amount * per_mille // 1000), amount - 1)
    deal, dispute_id = await _disputed(shop, amount=amount)
    await shop.call(
        resolve_dispute,
        shop.chain.registry(),
        actor=SUPPORT,
        dispute_id=dispute_id,
        decision="SPLIT",
        release_amount_minor=release,
        refund_amount_minor=amount - release,
    )
    await shop.settle()
    split = distribution_split([release, amount - release], platform_fee_bps=fee_bps)
    seller = await shop.balance(f"user:{deal.seller}")
    buyer = await shop.balance(f"user:{deal.buyer}")
    assert (seller.posted, buyer.posted) == tuple(r.net_minor for r in split.recipients)
    assert (await shop.balance(f"escrow:{deal.order_id}")).posted == 0
    assert await shop.zero_sum_violations() == []
    order = await shop.call(get_order, order_id=deal.order_id)
    assert order.escrow is not None
    for payout in order.escrow.payouts:
        assert (
            payout.net_amount_minor + payout.platform_fee_minor + payout.trustless_work_fee_minor
            == payout.gross_amount_minor
        )
