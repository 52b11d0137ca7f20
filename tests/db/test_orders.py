"""Orders end to end over a fake chain: every path's states, postings and events.

The escrow steps are fakes that end at once with the payload the chain steps leave; the
worker, the hooks, the state machines, the ledger and the outbox are the real ones.
"""

import asyncpg
import pytest

from flows.events import Event
from flows.order_escrow import start_escrow_create, start_escrow_fund
from flows.order_resolution import request_refund, request_release
from flows.orders import (
    OrderFilters,
    cancel_order,
    complete_milestone,
    get_order,
    list_orders,
    reserve_order,
)
from flows.queries.operations import OperationKind
from tests.db.test_orders_support import (
    ACTOR,
    USDC,
    Shop,
    fund_deal,
    make_deal,
    make_shop,
)

pytestmark = pytest.mark.db

# 80 USDC at 5 % + 0.3 %: platform 4.00, Trustless Work 0.24, net 75.76 (providers.md 1.7).
AMOUNT = 80 * USDC
PLATFORM_FEE = 4 * USDC
TW_FEE = 2_400_000
NET = AMOUNT - PLATFORM_FEE - TW_FEE


@pytest.fixture(name="shop")
async def shop_fixture(pool: asyncpg.Pool) -> Shop:
    return await make_shop(pool)


def types(events: list[Event]) -> list[str]:
    return [event.type for event in events]


async def test_the_full_story_pays_the_seller_net_and_books_the_fees(shop: Shop) -> None:
    deal = await make_deal(
        shop, amount=AMOUNT, milestones=[("design", 30 * USDC), ("final", 50 * USDC)]
    )
    registry = shop.chain.registry()
    order = await shop.call(get_order, order_id=deal.order_id)
    assert (order.status, order.amount_minor, [m.status for m in order.milestones]) == (
        "ORDER_CREATED",
        AMOUNT,
        ["OPEN", "OPEN"],
    )

    order = await shop.call(reserve_order, actor=ACTOR, order_id=deal.order_id, amount_minor=AMOUNT)
    assert order.status == "FUNDS_RESERVED"
    buyer = await shop.balance(f"user:{deal.buyer}")
    assert (buyer.available, buyer.reserved) == (20 * USDC, AMOUNT)

    order = await shop.call(start_escrow_create, registry, actor=ACTOR, order_id=deal.order_id)
    assert order.status == "ESCROW_CREATING"
    assert order.escrow is not None
    assert order.escrow.status == "CREATING"
    assert order.operation is not None
    assert order.operation.kind == "ESCROW_CREATE"
    assert await shop.settle() == 1
    order = await shop.call(get_order, order_id=deal.order_id)
    assert order.status == "ESCROW_FUNDING"
    assert order.escrow is not None
    assert order.escrow.status == "CREATED"
    assert order.escrow.contract_id in shop.chain.amounts
    assert (order.escrow.platform_fee_bps, order.escrow.trustless_work_fee_bps) == (500, 30)

    order = await shop.call(start_escrow_fund, registry, actor=ACTOR, order_id=deal.order_id)
    assert order.escrow is not None
    assert order.escrow.status == "FUNDING"
    await shop.settle()
    order = await shop.call(get_order, order_id=deal.order_id)
    assert order.status == "IN_PROGRESS"
    assert order.escrow is not None
    assert order.escrow.status == "FUNDED"
    assert order.escrow.funded_at is not None
    assert order.escrow.funding_transaction_hash
    buyer = await shop.balance(f"user:{deal.buyer}")
    assert (buyer.posted, buyer.available, buyer.reserved) == (20 * USDC, 20 * USDC, 0)
    assert (await shop.balance(f"escrow:{deal.order_id}")).posted == AMOUNT

    for ref in ("design", "final"):
        milestone = await shop.call(
            complete_milestone, actor=ACTOR, order_id=deal.order_id, milestone_ref=ref
        )
        assert milestone.status == "COMPLETED"
        assert milestone.completed_at is not None

    order = await shop.call(request_release, registry, actor=ACTOR, order_id=deal.order_id)
    assert order.status == "RELEASE_REQUESTED"
    assert order.escrow is not None
    assert order.escrow.status == "RELEASING"
    await shop.settle()
    order = await shop.call(get_order, order_id=deal.order_id)
    assert (order.status, order.close_reason) == ("CLOSED", "RELEASED")
    assert order.closed_at is not None
    escrow = order.escrow
    assert escrow is not None
    assert escrow.status == "RELEASED"
    assert escrow.released_at is not None
    [payout] = escrow.payouts
    assert (
        payout.party,
        payout.user_id,
        payout.gross_amount_minor,
        payout.platform_fee_minor,
        payout.trustless_work_fee_minor,
        payout.net_amount_minor,
    ) == ("SELLER", deal.seller, AMOUNT, PLATFORM_FEE, TW_FEE, NET)

    assert (await shop.balance(f"user:{deal.seller}")).available == NET
    assert (await shop.balance("fees:platform")).posted == PLATFORM_FEE
    assert (await shop.balance("fees:trustless_work")).posted == TW_FEE
    assert (await shop.balance(f"escrow:{deal.order_id}")).posted == 0
    assert await shop.zero_sum_violations() == []

    events = await shop.events()
    assert types(events) == [
        "order.created",
        "balance.reserved",
        "order.funds_reserved",
        "order.escrow_creating",
        "escrow.created",
        "order.escrow_funding",
        "escrow.funding_started",
        "escrow.funded",
        "balance.released",
        "order.escrow_funded",
        "order.in_progress",
        "escrow.milestone_completed",
        "escrow.milestone_completed",
        "order.release_requested",
        "escrow.released",
        "order.released",
        "balance.credited",
        "order.closed",
    ]
    by_type = {event.type: event for event in events}
    assert by_type["order.released"].data["net_amount"] == "75.76"
    assert by_type["order.released"].data["platform_fee"] == "4.00"
    assert by_type["order.released"].data["trustless_work_fee"] == "0.24"
    credited = by_type["balance.credited"]
    assert (credited.resource_id, credited.data["source"], credited.data["amount"]) == (
        deal.seller,
        "release",
        "75.76",
    )
    assert credited.data["available"] == "75.76"
    released = by_type["balance.released"].data
    assert (released["reason"], released["returned_to_available"]) == ("escrow_funded", False)
    assert (released["available"], released["reserved"]) == ("20.00", "0.00")
    assert by_type["order.closed"].data["close_reason"] == "RELEASED"
    assert by_type["order.release_requested"].data["requested_by"] == ACTOR.id


async def test_refund_pays_the_buyer_net_of_the_same_fees(shop: Shop) -> None:
    deal = await make_deal(shop, amount=AMOUNT, buyer_usdc=AMOUNT)
    await fund_deal(deal)
    start = await shop.last_sequence()
    order = await shop.call(
        request_refund, shop.chain.registry(), actor=ACTOR, order_id=deal.order_id, reason="late"
    )
    assert order.status == "REFUND_REQUESTED"
    assert order.escrow is not None
    assert order.escrow.status == "REFUNDING"
    await shop.settle()
    order = await shop.call(get_order, order_id=deal.order_id)
    assert (order.status, order.close_reason) == ("CLOSED", "REFUNDED")
    assert order.escrow is not None
    assert order.escrow.status == "REFUNDED"
    assert order.escrow.refunded_at is not None
    [payout] = order.escrow.payouts
    assert (payout.party, payout.net_amount_minor) == ("BUYER", NET)
    assert (await shop.balance(f"user:{deal.buyer}")).available == NET
    assert (await shop.balance(f"escrow:{deal.order_id}")).posted == 0
    assert (await shop.balance("fees:platform")).posted == PLATFORM_FEE
    assert await shop.zero_sum_violations() == []
    events = await shop.events(start)
    assert types(events) == [
        "order.refund_requested",
        "escrow.refunded",
        "order.refunded",
        "balance.credited",
        "order.closed",
    ]
    assert events[0].data["reason"] == "late"
    assert events[3].data["source"] == "refund"


async def test_cancel_before_escrow_voids_the_reservation(shop: Shop) -> None:
    deal = await make_deal(shop, amount=AMOUNT)
    await shop.call(reserve_order, actor=ACTOR, order_id=deal.order_id)
    start = await shop.last_sequence()
    order = await shop.call(
        cancel_order, actor=ACTOR, order_id=deal.order_id, reason="changed mind"
    )
    assert (order.status, order.close_reason) == ("CLOSED", "CANCELED")
    buyer = await shop.balance(f"user:{deal.buyer}")
    assert (buyer.available, buyer.reserved) == (100 * USDC, 0)
    events = await shop.events(start)
    assert types(events) == ["balance.released", "order.canceled", "order.closed"]
    assert events[0].data["reason"] == "cancel"
    assert events[0].data["returned_to_available"] is True
    assert events[1].data["funds_released"] is True
    assert events[1].data["canceled_by"] == ACTOR.id
    assert events[2].data["close_reason"] == "CANCELED"
    assert await shop.zero_sum_violations() == []


async def test_cancel_of_an_unreserved_order_releases_nothing(shop: Shop) -> None:
    deal = await make_deal(shop)
    start = await shop.last_sequence()
    order = await shop.call(cancel_order, actor=ACTOR, order_id=deal.order_id)
    assert order.status == "CLOSED"
    events = await shop.events(start)
    assert types(events) == ["order.canceled", "order.closed"]
    assert events[0].data["funds_released"] is False


async def test_a_rejected_deploy_returns_the_order_to_funds_reserved(shop: Shop) -> None:
    deal = await make_deal(shop)
    registry = shop.chain.registry()
    await shop.call(reserve_order, actor=ACTOR, order_id=deal.order_id)
    shop.chain.failures[OperationKind.ESCROW_CREATE] = {
        "error": "ProviderRejected",
        "provider": "trustless_work",
        "reason": "invalid_escrow",
        "message": "platformFee too high",
        "status": 400,
    }
    await shop.call(start_escrow_create, registry, actor=ACTOR, order_id=deal.order_id)
    start = await shop.last_sequence()
    await shop.settle()
    order = await shop.call(get_order, order_id=deal.order_id)
    assert order.status == "FUNDS_RESERVED"
    assert order.escrow is not None
    assert order.escrow.status == "FAILED"
    assert order.operation is not None
    assert order.operation.status == "FAILED"
    assert order.operation.last_error is not None
    assert order.operation.last_error.code == "PROVIDER_ERROR"
    [failed] = await shop.events(start)
    assert failed.type == "order.operation_failed"
    assert failed.data["order_status"] == "FUNDS_RESERVED"
    assert failed.data["kind"] == "ESCROW_CREATE"
    assert failed.data["error"]["code"] == "PROVIDER_ERROR"
    # The reservation is kept, and a new escrow may be created.
    assert (await shop.balance(f"user:{deal.buyer}")).reserved == 80 * USDC
    del shop.chain.failures[OperationKind.ESCROW_CREATE]
    order = await shop.call(start_escrow_create, registry, actor=ACTOR, order_id=deal.order_id)
    assert order.escrow is not None
    assert order.escrow.status == "CREATING"
    await shop.settle()
    order = await shop.call(get_order, order_id=deal.order_id)
    assert order.status == "ESCROW_FUNDING"


async def test_a_rejected_funding_keeps_the_reservation_and_can_be_sent_again(shop: Shop) -> None:
    deal = await make_deal(shop)
    registry = shop.chain.registry()
    await shop.call(reserve_order, actor=ACTOR, order_id=deal.order_id)
    await shop.call(start_escrow_create, registry, actor=ACTOR, order_id=deal.order_id)
    await shop.settle()
    shop.chain.failures[OperationKind.ESCROW_FUND] = {
        "error": "ProviderRejected",
        "provider": "trustless_work",
        "reason": "insufficient_funds",
        "message": "insufficient funds to fund",
    }
    await shop.call(start_escrow_fund, registry, actor=ACTOR, order_id=deal.order_id)
    start = await shop.last_sequence()
    await shop.settle()
    order = await shop.call(get_order, order_id=deal.order_id)
    assert order.status == "ESCROW_FUNDING"
    assert order.escrow is not None
    assert order.escrow.status == "CREATED"
    assert order.operation is not None
    assert order.operation.last_error is not None
    assert order.operation.last_error.code == "ESCROW_INSUFFICIENT_FUNDS"
    assert types(await shop.events(start)) == ["order.operation_failed"]
    assert (await shop.balance(f"user:{deal.buyer}")).reserved == 80 * USDC
    del shop.chain.failures[OperationKind.ESCROW_FUND]
    await shop.call(start_escrow_fund, registry, actor=ACTOR, order_id=deal.order_id)
    await shop.settle()
    assert (await shop.call(get_order, order_id=deal.order_id)).status == "IN_PROGRESS"


async def test_a_failed_release_stays_requested_and_resending_resumes(shop: Shop) -> None:
    deal = await make_deal(shop)
    await fund_deal(deal)
    registry = shop.chain.registry()
    shop.chain.failures[OperationKind.RELEASE] = {"error": "TransactionRejected", "reason": "x"}
    await shop.call(request_release, registry, actor=ACTOR, order_id=deal.order_id)
    start = await shop.last_sequence()
    await shop.settle()
    order = await shop.call(get_order, order_id=deal.order_id)
    assert order.status == "RELEASE_REQUESTED"
    assert order.escrow is not None
    assert order.escrow.status == "RELEASING"
    failed_id = order.operation.id if order.operation else None
    [failed] = await shop.events(start)
    assert (failed.type, failed.data["order_status"]) == (
        "order.operation_failed",
        "RELEASE_REQUESTED",
    )
    del shop.chain.failures[OperationKind.RELEASE]
    order = await shop.call(request_release, registry, actor=ACTOR, order_id=deal.order_id)
    assert order.operation is not None
    assert order.operation.id != failed_id
    assert order.operation.kind == "RELEASE"
    assert order.operation.status == "RUNNING"
    await shop.settle()
    order = await shop.call(get_order, order_id=deal.order_id)
    assert (order.status, order.close_reason) == ("CLOSED", "RELEASED")
    assert await shop.zero_sum_violations() == []


async def test_list_orders_filters_and_pages_newest_first(shop: Shop) -> None:
    first = await make_deal(shop)
    second = await make_deal(shop)
    third = await make_deal(shop)
    await shop.call(reserve_order, actor=ACTOR, order_id=second.order_id)
    page = await shop.call(list_orders, filters=OrderFilters(), limit=2)
    assert [o.id for o in page.data] == [third.order_id, second.order_id]
    assert page.has_more
    last = page.data[-1]
    rest = await shop.call(
        list_orders, filters=OrderFilters(), after=(last.created_at, last.id), limit=2
    )
    assert [o.id for o in rest.data] == [first.order_id]
    assert not rest.has_more
    reserved = await shop.call(list_orders, filters=OrderFilters(statuses=["FUNDS_RESERVED"]))
    assert [o.id for o in reserved.data] == [second.order_id]
    as_party = await shop.call(list_orders, filters=OrderFilters(user_id=first.seller))
    assert [o.id for o in as_party.data] == [first.order_id]
    as_buyer = await shop.call(list_orders, filters=OrderFilters(buyer_id=third.buyer))
    assert [o.id for o in as_buyer.data] == [third.order_id]
