"""Every documented error of the order actions (api.md 3.5, 3.6), and what each leaves alone."""

from typing import Any

import asyncpg
import pytest

from common.errors import (
    DisputeAlreadyOpen,
    EscrowAlreadyExists,
    EscrowAlreadyFunded,
    EscrowNotFound,
    EscrowNotReady,
    InsufficientFunds,
    InvalidAmount,
    InvalidRequest,
    InvalidTransition,
    MilestoneNotFound,
    OrderAlreadyExists,
    OrderNotFound,
    ReserveMismatchAmount,
    UserNotFound,
    ValidationFailed,
    WalletNotReady,
)
from flows.disputes import open_dispute
from flows.order_escrow import start_escrow_create, start_escrow_fund
from flows.order_resolution import request_refund, request_release
from flows.orders import (
    MilestoneInput,
    cancel_order,
    complete_milestone,
    create_order,
    get_order,
    reserve_order,
)
from tests.db.test_orders_support import (
    ACTOR,
    USDC,
    Shop,
    fund_deal,
    make_deal,
    make_shop,
)

pytestmark = pytest.mark.db


@pytest.fixture(name="shop")
async def shop_fixture(pool: asyncpg.Pool) -> Shop:
    return await make_shop(pool)


async def _create(shop: Shop, **fields: Any) -> Any:
    return await shop.call(create_order, actor=ACTOR, title="Logo", **fields)


async def test_create_order_refuses_contradictions_before_touching_anything(shop: Shop) -> None:
    buyer, seller = await shop.user(), await shop.user()
    with pytest.raises(InvalidRequest):
        await _create(shop, buyer_id=buyer, seller_id=buyer, amount_minor=USDC)
    with pytest.raises(InvalidAmount):
        await _create(shop, buyer_id=buyer, seller_id=seller, amount_minor=0)
    parts = [
        MilestoneInput(milestone_ref="a", title="A", amount_minor=3 * USDC),
        MilestoneInput(milestone_ref="b", title="B", amount_minor=4 * USDC),
    ]
    with pytest.raises(InvalidAmount) as mismatch:
        await _create(
            shop, buyer_id=buyer, seller_id=seller, amount_minor=8 * USDC, milestones=parts
        )
    assert mismatch.value.details == {"amount": "8.00", "milestones_total": "7.00"}
    twice = [parts[0], MilestoneInput(milestone_ref="a", title="B", amount_minor=4 * USDC)]
    with pytest.raises(InvalidRequest):
        await _create(
            shop, buyer_id=buyer, seller_id=seller, amount_minor=7 * USDC, milestones=twice
        )
    many = [MilestoneInput(milestone_ref=str(i), title="x", amount_minor=1) for i in range(51)]
    with pytest.raises(ValidationFailed):
        await _create(shop, buyer_id=buyer, seller_id=seller, amount_minor=51, milestones=many)
    with pytest.raises(ValidationFailed):
        await _create(shop, buyer_id=buyer, seller_id=seller, amount_minor=1, milestones=[])
    assert await shop.events() == []


async def test_create_order_names_the_unknown_party(shop: Shop) -> None:
    user = await shop.user()
    with pytest.raises(UserNotFound) as buyer:
        await _create(shop, buyer_id="usr_" + "x" * 32, seller_id=user, amount_minor=USDC)
    assert buyer.value.details["field"] == "buyer_id"
    with pytest.raises(UserNotFound) as seller:
        await _create(shop, buyer_id=user, seller_id="usr_" + "y" * 32, amount_minor=USDC)
    assert seller.value.details["field"] == "seller_id"
    # A user of another marketplace is unknown here.
    other = await make_shop(shop.pool)
    stranger = await other.user()
    with pytest.raises(UserNotFound):
        await _create(shop, buyer_id=user, seller_id=stranger, amount_minor=USDC)


async def test_a_client_order_ref_is_unique_per_marketplace(shop: Shop) -> None:
    buyer, seller = await shop.user(), await shop.user()
    first = await _create(
        shop, buyer_id=buyer, seller_id=seller, amount_minor=USDC, client_order_ref="ref-1"
    )
    with pytest.raises(OrderAlreadyExists) as again:
        await _create(
            shop, buyer_id=buyer, seller_id=seller, amount_minor=USDC, client_order_ref="ref-1"
        )
    assert again.value.details["order_id"] == first.id
    other = await make_shop(shop.pool)
    b, s = await other.user(), await other.user()
    elsewhere = await other.call(
        create_order,
        actor=ACTOR,
        title="Logo",
        buyer_id=b,
        seller_id=s,
        amount_minor=USDC,
        client_order_ref="ref-1",
    )
    assert elsewhere.client_order_ref == "ref-1"
    # Another marketplace's order id answers like a missing one.
    with pytest.raises(OrderNotFound):
        await shop.call(get_order, order_id=elsewhere.id)


async def test_reserve_errors(shop: Shop) -> None:
    deal = await make_deal(shop, amount=80 * USDC, buyer_usdc=50 * USDC)
    with pytest.raises(ReserveMismatchAmount):
        await shop.call(reserve_order, actor=ACTOR, order_id=deal.order_id, amount_minor=79 * USDC)
    with pytest.raises(InsufficientFunds) as short:
        await shop.call(reserve_order, actor=ACTOR, order_id=deal.order_id)
    assert short.value.details == {
        "user_id": deal.buyer,
        "available": "50.00",
        "requested": "80.00",
        "currency": "USD",
    }
    with pytest.raises(OrderNotFound):
        await shop.call(reserve_order, actor=ACTOR, order_id="ord_" + "z" * 32)
    rich = await make_deal(shop)
    await shop.call(reserve_order, actor=ACTOR, order_id=rich.order_id)
    with pytest.raises(InvalidTransition) as twice:
        await shop.call(reserve_order, actor=ACTOR, order_id=rich.order_id)
    assert twice.value.details["current_state"] == "FUNDS_RESERVED"
    assert twice.value.details["allowed_states"] == ["ORDER_CREATED"]


async def test_escrow_create_errors(shop: Shop) -> None:
    registry = shop.chain.registry()
    deal = await make_deal(shop)
    with pytest.raises(InvalidTransition):
        await shop.call(start_escrow_create, registry, actor=ACTOR, order_id=deal.order_id)
    await shop.call(reserve_order, actor=ACTOR, order_id=deal.order_id)
    inactive = await shop.user(active=False)
    walletless = await shop.user(wallet=False)
    for seller in (inactive, walletless):
        order = await shop.call(
            create_order,
            actor=ACTOR,
            title="x",
            buyer_id=deal.buyer,
            seller_id=seller,
            amount_minor=USDC,
        )
        await shop.call(reserve_order, actor=ACTOR, order_id=order.id)
        with pytest.raises(WalletNotReady) as not_ready:
            await shop.call(start_escrow_create, registry, actor=ACTOR, order_id=order.id)
        assert not_ready.value.details["user_id"] == seller
    await shop.call(start_escrow_create, registry, actor=ACTOR, order_id=deal.order_id)
    # A live escrow answers ESCROW_ALREADY_EXISTS before INVALID_STATE, deploying or deployed.
    with pytest.raises(EscrowAlreadyExists):
        await shop.call(start_escrow_create, registry, actor=ACTOR, order_id=deal.order_id)
    await shop.settle()
    with pytest.raises(EscrowAlreadyExists):
        await shop.call(start_escrow_create, registry, actor=ACTOR, order_id=deal.order_id)


async def test_fund_errors(shop: Shop) -> None:
    registry = shop.chain.registry()
    deal = await make_deal(shop)
    await shop.call(reserve_order, actor=ACTOR, order_id=deal.order_id)
    with pytest.raises(EscrowNotFound):
        await shop.call(start_escrow_fund, registry, actor=ACTOR, order_id=deal.order_id)
    await shop.call(start_escrow_create, registry, actor=ACTOR, order_id=deal.order_id)
    # Still deploying: the order is not ESCROW_FUNDING yet.
    with pytest.raises(InvalidTransition):
        await shop.call(start_escrow_fund, registry, actor=ACTOR, order_id=deal.order_id)
    await shop.settle()
    await shop.call(start_escrow_fund, registry, actor=ACTOR, order_id=deal.order_id)
    with pytest.raises(EscrowAlreadyFunded):
        await shop.call(start_escrow_fund, registry, actor=ACTOR, order_id=deal.order_id)
    await shop.settle()
    with pytest.raises(EscrowAlreadyFunded):
        await shop.call(start_escrow_fund, registry, actor=ACTOR, order_id=deal.order_id)
    # Cancel's window closed with the escrow.
    with pytest.raises(InvalidTransition) as late:
        await shop.call(cancel_order, actor=ACTOR, order_id=deal.order_id)
    assert late.value.details["allowed_states"] == ["ORDER_CREATED", "FUNDS_RESERVED"]


async def test_milestone_and_release_errors(shop: Shop) -> None:
    registry = shop.chain.registry()
    deal = await make_deal(shop, milestones=[("a", 30 * USDC), ("b", 50 * USDC)])
    with pytest.raises(InvalidTransition):
        await shop.call(complete_milestone, actor=ACTOR, order_id=deal.order_id, milestone_ref="a")
    with pytest.raises(InvalidTransition):
        await shop.call(request_release, registry, actor=ACTOR, order_id=deal.order_id)
    await fund_deal(deal)
    with pytest.raises(MilestoneNotFound):
        await shop.call(complete_milestone, actor=ACTOR, order_id=deal.order_id, milestone_ref="c")
    await shop.call(complete_milestone, actor=ACTOR, order_id=deal.order_id, milestone_ref="a")
    with pytest.raises(InvalidTransition) as twice:
        await shop.call(complete_milestone, actor=ACTOR, order_id=deal.order_id, milestone_ref="a")
    assert twice.value.details["resource_type"] == "milestone"
    with pytest.raises(InvalidTransition) as open_parts:
        await shop.call(request_release, registry, actor=ACTOR, order_id=deal.order_id)
    assert open_parts.value.details["open_milestones"] == ["b"]
    await shop.call(complete_milestone, actor=ACTOR, order_id=deal.order_id, milestone_ref="b")
    await shop.call(request_release, registry, actor=ACTOR, order_id=deal.order_id)
    # One operation per order at a time: a second release or a refund meanwhile is refused.
    with pytest.raises(InvalidTransition):
        await shop.call(request_release, registry, actor=ACTOR, order_id=deal.order_id)
    with pytest.raises(InvalidTransition):
        await shop.call(request_refund, registry, actor=ACTOR, order_id=deal.order_id, reason="x")


async def test_release_and_refund_need_a_funded_escrow_and_no_dispute(shop: Shop) -> None:
    registry = shop.chain.registry()
    deal = await make_deal(shop)
    await fund_deal(deal)
    async with shop.pool.acquire() as conn:
        # As if reconciliation found the contract out of step: never a FUNDED escrow here.
        escrow_status = await conn.fetchval(
            "UPDATE escrows SET status = 'CREATED' WHERE order_id = $1 RETURNING status",
            deal.order_id,
        )
    assert escrow_status == "CREATED"
    for action in (request_release, request_refund):
        with pytest.raises(EscrowNotReady):
            await shop.call(action, registry, actor=ACTOR, order_id=deal.order_id)
    async with shop.pool.acquire() as conn:
        await conn.execute(
            "UPDATE escrows SET status = 'FUNDED' WHERE order_id = $1", deal.order_id
        )
    await shop.call(
        open_dispute, actor=ACTOR, order_id=deal.order_id, opened_by="BUYER", reason="OTHER"
    )
    for action in (request_release, request_refund):
        with pytest.raises(DisputeAlreadyOpen):
            await shop.call(action, registry, actor=ACTOR, order_id=deal.order_id)


async def test_a_payout_that_does_not_match_the_escrow_books_nothing(shop: Shop) -> None:
    registry = shop.chain.registry()
    deal = await make_deal(shop)
    await fund_deal(deal)
    order = await shop.call(get_order, order_id=deal.order_id)
    assert order.escrow is not None
    assert order.escrow.contract_id is not None
    # The fake contract pays one stroop less than it holds.
    shop.chain.amounts[order.escrow.contract_id] -= 1
    await shop.call(request_release, registry, actor=ACTOR, order_id=deal.order_id)
    # The end hook refuses to book it: the operation is parked with the error, nothing posted.
    await shop.settle()
    order = await shop.call(get_order, order_id=deal.order_id)
    assert order.status == "RELEASE_REQUESTED"
    assert order.operation is not None
    assert order.operation.status == "RUNNING"
    assert order.operation.last_error is not None
    assert "does not match the escrow" in order.operation.last_error.message
    assert (await shop.balance(f"escrow:{deal.order_id}")).posted == 80 * USDC
    assert (await shop.balance(f"user:{deal.seller}")).posted == 0
