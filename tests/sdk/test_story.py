"""The marketplace story of ``tests/api/test_story.py``, written again with the SDK, against a
real server on the sandbox over TCP; the blocking and the asyncio client each drive half of it.

A buyer deposits 200 USDC on chain (the sandbox's control API pays the address from
``wallets.deposit_instructions``; the server's deposit monitor credits it). Then: an order of 80
in two milestones is released (blocking client); an order of 20 is disputed and split 12 / 8
and an order of 30 refunded (asyncio client); an order of 10 is cancelled (blocking client).
After every step the balances, the fee accounts and the wallets on chain are read back through
the SDK and checked; at the end the trial balance is balanced and every USDC is accounted for.
"""

import time
from decimal import Decimal
from typing import Any

import pytest
from offerhub_client import AsyncOfferHub, OfferHub, OrderStatus
from offerhub_client.models import MilestoneCreate, Order

from tests.sdk.live import LiveServer, live_server

pytestmark = [pytest.mark.db, pytest.mark.slow]

D = Decimal


class Books:
    """The expected money of the story, read back through the SDK."""

    def __init__(self, client: OfferHub, buyer: str, seller: str) -> None:
        self.client, self.buyer, self.seller = client, buyer, seller
        self.fees = {"fees:platform": D(0), "fees:trustless_work": D(0)}

    def check(self, *, buyer: tuple[str, str], seller: str) -> None:
        """``buyer`` is (available, reserved); wallets hold what the ledger says."""
        client = self.client
        mine = client.balances.get(self.buyer)
        assert (mine.available, mine.reserved) == (D(buyer[0]), D(buyer[1]))
        assert mine.total == mine.available + mine.reserved
        theirs = client.balances.get(self.seller)
        assert (theirs.available, theirs.reserved) == (D(seller), D(0))
        for user_id, held in ((self.buyer, mine.total), (self.seller, theirs.total)):
            wallet = client.wallets.get(user_id)
            assert wallet.balance is not None, wallet.balance_error
            assert wallet.balance.usdc == held
        for code, expected in self.fees.items():
            accounts = client.ledger.accounts(code=code).data
            posted = accounts[0].balance if accounts else D(0)
            assert posted == expected, code


def _wallets_ready(client: OfferHub, *user_ids: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    for user_id in user_ids:
        while not (wallet := client.wallets.get(user_id)).trustline_ready or not wallet.is_active:
            assert time.monotonic() < deadline, "wallets were not activated in time"
            time.sleep(0.1)


def _deposit(server: LiveServer, client: OfferHub, user_id: str, amount: str) -> None:
    instructions = client.wallets.deposit_instructions(user_id)
    assert (instructions.method, instructions.asset.code) == ("stellar_address", "USDC")
    server.control("deposits", {"address": instructions.address, "amount": amount})
    deadline = time.monotonic() + 30
    while client.balances.get(user_id).available < D(amount):
        assert time.monotonic() < deadline, "the deposit was not credited in time"
        time.sleep(0.1)


def _escrow_and_fund(client: OfferHub, order_id: str) -> Order:
    created = client.orders.create_escrow(order_id)
    assert created.status in (OrderStatus.ESCROW_FUNDING, OrderStatus.ESCROW_CREATING)
    client.orders.wait_for_status(order_id, OrderStatus.ESCROW_FUNDING, timeout_s=30)
    client.orders.fund_escrow(order_id)
    return client.orders.wait_for_status(order_id, OrderStatus.IN_PROGRESS, timeout_s=30)


def _release_in_milestones(client: OfferHub, books: Books) -> None:
    milestones: list[MilestoneCreate | dict[str, Any]] = [
        MilestoneCreate(milestone_ref="design", title="Design", amount="30"),
        {"milestone_ref": "delivery", "title": "Delivery", "amount": D("50")},
    ]
    order = client.orders.create(
        buyer_id=books.buyer, seller_id=books.seller, amount="80", title="Logo",
        milestones=milestones, client_order_ref="story-1",
    )  # fmt: skip
    assert [m.amount for m in order.milestones] == [D(30), D(50)]
    reserved = client.orders.reserve(order.id, amount=D("80"))
    assert reserved.status == OrderStatus.FUNDS_RESERVED
    books.check(buyer=("120", "80"), seller="0")
    funded = _escrow_and_fund(client, order.id)
    assert funded.escrow is not None
    assert funded.escrow.status == "FUNDED"
    books.check(buyer=("120", "0"), seller="0")
    for ref in ("design", "delivery"):
        assert client.orders.complete_milestone(order.id, ref).status == "COMPLETED"
    client.orders.release(order.id, reason="great")
    released = client.orders.wait_for_status(order.id, OrderStatus.CLOSED, timeout_s=30)
    assert released.close_reason == "RELEASED"
    assert released.escrow is not None
    [payout] = released.escrow.payouts
    # 80 at 5 % + 0.3 %: the seller nets 75.76.
    assert (payout.net_amount, payout.platform_fee, payout.trustless_work_fee) == (
        D("75.76"),
        D("4"),
        D("0.24"),
    )
    books.fees = {"fees:platform": D("4"), "fees:trustless_work": D("0.24")}
    books.check(buyer=("120", "0"), seller="75.76")


async def _split_and_refund(client: AsyncOfferHub, books: Books) -> None:
    order = await client.orders.create(
        buyer_id=books.buyer, seller_id=books.seller, amount="20", title="Banner"
    )
    await client.orders.reserve(order.id)
    await client.orders.create_escrow(order.id)
    await client.orders.wait_for_status(order.id, "ESCROW_FUNDING", timeout_s=30)
    await client.orders.fund_escrow(order.id)
    await client.orders.wait_for_status(order.id, "IN_PROGRESS", timeout_s=30)
    books.check(buyer=("100", "0"), seller="75.76")
    dispute = await client.orders.open_dispute(
        order.id, opened_by="BUYER", reason="QUALITY_ISSUE", evidence=["screenshots"]
    )
    assigned = await client.disputes.assign(dispute.id, assigned_to="agent-7")
    assert assigned.status == "UNDER_REVIEW"
    await client.disputes.resolve(
        dispute.id, decision="SPLIT", release_amount="12", refund_amount=D("8"), note="60/40"
    )
    split = await client.orders.wait_for_status(order.id, "CLOSED", timeout_s=30)
    resolved = await client.disputes.get(dispute.id)
    assert (resolved.status, resolved.refund_amount) == ("RESOLVED", D(8))
    assert split.escrow is not None
    assert [(p.party, p.net_amount) for p in split.escrow.payouts] == [
        ("SELLER", D("11.364")),
        ("BUYER", D("7.576")),
    ]
    books.fees = {"fees:platform": D("5"), "fees:trustless_work": D("0.30")}
    books.check(buyer=("107.576", "0"), seller="87.124")

    third = await client.orders.create(
        buyer_id=books.buyer, seller_id=books.seller, amount="30", title="Icon"
    )
    await client.orders.reserve(third.id)
    await client.orders.create_escrow(third.id)
    await client.orders.wait_for_status(third.id, "ESCROW_FUNDING", timeout_s=30)
    await client.orders.fund_escrow(third.id)
    await client.orders.wait_for_status(third.id, "IN_PROGRESS", timeout_s=30)
    await client.orders.refund(third.id, reason="late")
    refunded = await client.orders.wait_for_status(third.id, "CLOSED", timeout_s=30)
    assert refunded.close_reason == "REFUNDED"
    assert refunded.escrow is not None
    assert refunded.escrow.payouts[0].net_amount == D("28.41")
    books.fees = {"fees:platform": D("6.5"), "fees:trustless_work": D("0.39")}
    books.check(buyer=("105.986", "0"), seller="87.124")


def _cancel(client: OfferHub, books: Books) -> None:
    order = client.orders.create(
        buyer_id=books.buyer, seller_id=books.seller, amount="10", title="Draft"
    )
    client.orders.reserve(order.id)
    books.check(buyer=("95.986", "10"), seller="87.124")
    canceled = client.orders.cancel(order.id, reason="duplicate")
    assert (canceled.status, canceled.close_reason) == ("CLOSED", "CANCELED")
    books.check(buyer=("105.986", "0"), seller="87.124")


async def test_the_marketplace_story_with_both_clients(db_dsn: str) -> None:
    with live_server(db_dsn) as server, OfferHub(server.base_url, server.tenant("story")) as client:
        buyer = client.users.create(external_user_id="alice", type="BUYER")
        seller = client.users.create(external_user_id="bob", type="SELLER")
        # POST /users is idempotent on external_user_id, even with a new Idempotency-Key.
        assert client.users.create(external_user_id="alice").id == buyer.id
        _wallets_ready(client, buyer.id, seller.id)
        books = Books(client, buyer.id, seller.id)
        books.check(buyer=("0", "0"), seller="0")
        _deposit(server, client, buyer.id, "200")
        books.check(buyer=("200", "0"), seller="0")
        _release_in_milestones(client, books)
        async with AsyncOfferHub(server.base_url, client.auth._transport.api_key) as aclient:
            await _split_and_refund(aclient, books)
        _cancel(client, books)
        closed = list(client.orders.list_all(status="CLOSED", buyer_id=buyer.id, limit=2))
        assert sorted(order.close_reason or "" for order in closed) == [
            "CANCELED",
            "REFUNDED",
            "RELEASED",
            "SPLIT",
        ]
        # 105.986 + 87.124 + 6.50 + 0.39 = 200: every deposited USDC is accounted for.
        trial = client.reports.trial_balance()
        assert trial.balanced
        assert trial.totals.debits_posted == trial.totals.credits_posted
