"""Orders under concurrency: separate connections racing on one balance, one ref, one order."""

import asyncio

import asyncpg
import pytest

from common.errors import (
    DisputeAlreadyOpen,
    InsufficientFunds,
    InvalidTransition,
    OrderAlreadyExists,
)
from flows.disputes import open_dispute
from flows.order_resolution import request_refund, request_release
from flows.orders import create_order, reserve_order
from tests.db.test_orders_support import ACTOR, USDC, Shop, fund_deal, make_deal, make_shop

pytestmark = pytest.mark.db


@pytest.fixture(name="shop")
async def shop_fixture(pool: asyncpg.Pool) -> Shop:
    return await make_shop(pool)


async def test_thirty_concurrent_reserves_never_overdraw_the_buyer(shop: Shop) -> None:
    buyer = await shop.user(usdc=155 * USDC)
    seller = await shop.user()
    orders = [
        await shop.call(
            create_order,
            actor=ACTOR,
            buyer_id=buyer,
            seller_id=seller,
            amount_minor=10 * USDC,
            title=f"order {i}",
        )
        for i in range(30)
    ]
    results = await asyncio.gather(
        *(shop.call(reserve_order, actor=ACTOR, order_id=order.id) for order in orders),
        return_exceptions=True,
    )
    reserved = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(reserved) == 15
    assert all(isinstance(error, InsufficientFunds) for error in refused), refused
    balance = await shop.balance(f"user:{buyer}")
    assert (balance.available, balance.reserved) == (5 * USDC, 150 * USDC)
    assert await shop.zero_sum_violations() == []
    # Exactly the winners carry a reservation and its events.
    events = await shop.events()
    assert sum(e.type == "order.funds_reserved" for e in events) == 15
    assert sum(e.type == "balance.reserved" for e in events) == 15


async def test_one_client_order_ref_wins_a_race(shop: Shop) -> None:
    buyer, seller = await shop.user(), await shop.user()
    results = await asyncio.gather(
        *(
            shop.call(
                create_order,
                actor=ACTOR,
                buyer_id=buyer,
                seller_id=seller,
                amount_minor=USDC,
                title="same",
                client_order_ref="race-1",
            )
            for _ in range(8)
        ),
        return_exceptions=True,
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    assert len(created) == 1
    for error in results:
        if isinstance(error, BaseException):
            assert isinstance(error, OrderAlreadyExists)
            assert error.details["order_id"] == created[0].id


async def test_release_refund_and_dispute_race_for_one_order(shop: Shop) -> None:
    deal = await make_deal(shop)
    await fund_deal(deal)
    registry = shop.chain.registry()
    results = await asyncio.gather(
        shop.call(request_release, registry, actor=ACTOR, order_id=deal.order_id),
        shop.call(request_refund, registry, actor=ACTOR, order_id=deal.order_id, reason="r"),
        shop.call(
            open_dispute, actor=ACTOR, order_id=deal.order_id, opened_by="BUYER", reason="OTHER"
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    for error in results:
        if isinstance(error, BaseException):
            assert isinstance(error, InvalidTransition | DisputeAlreadyOpen), error
