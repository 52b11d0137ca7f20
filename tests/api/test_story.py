"""The marketplace story over HTTP on the sandbox, and the money races.

A buyer deposits 200 USDC: the sandbox's control route sends them from the outside world to
the address ``GET /users/{id}/wallet/deposit`` gives, and the deposit monitor, running in the
app, credits them (``external:stellar -> user``); the test polls the balance until it shows.
The monitor keeps running through the story: escrow payouts reaching the wallets must not be
credited a second time. Then:

1. an order of 80 with two milestones is reserved, escrowed, funded, completed and released;
2. an order of 20 is disputed and resolved as a 12 / 8 split;
3. an order of 30 is refunded;
4. an order of 10 is reserved and cancelled before its escrow.

After every step every balance is checked twice, in the ledger (GET balance, fee accounts)
and on chain (wallet, contract and fee addresses), and the books sum to zero. Platform fee
5 %, Trustless Work fee 0.3 %, both taken by the contract and pro rata in a split.
"""

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from common.money import format_amount, parse_amount
from tests.api.support import running_api, running_api_on_sandbox
from tests.api.test_orders_support import USDC, Market, code, new_market

pytestmark = pytest.mark.db


class Books:
    """The expected money of the story, checked against the ledger and the chain."""

    def __init__(self, market: Market, buyer: str, seller: str) -> None:
        self.market = market
        self.buyer = buyer
        self.seller = seller
        self.contracts: dict[str, str] = {}  # order id -> contract id
        self.deposited = 0
        self.platform = "0"  # fees collected so far, as the API renders amounts
        self.trustless_work = "0"

    async def check(
        self, *, buyer: tuple[str, str], seller: str, escrows: dict[str, str] | None = None
    ) -> None:
        """``buyer`` is (available, reserved); ``escrows`` what each order's escrow holds."""
        market = self.market
        sandbox = market.sandbox_api.sandbox
        available, reserved = buyer
        total = format_amount(parse_amount(available) + parse_amount(reserved))
        assert await market.balance(self.buyer) == {
            "available": available,
            "reserved": reserved,
            "total": total,
        }
        assert await market.balance(self.seller) == {
            "available": seller,
            "reserved": "0.00",
            "total": seller,
        }
        # The wallet holds what the ledger posted (reservations are still on the wallet).
        assert market.usdc(market.public_keys[self.buyer]) == parse_amount(total)
        assert market.usdc(market.public_keys[self.seller]) == parse_amount(seller)
        for code_, address, expected in [
            ("fees:platform", sandbox.platform.public_key, self.platform),
            ("fees:trustless_work", sandbox.trustless_work.tw_fee_address, self.trustless_work),
        ]:
            assert await market.posted(code_) == parse_amount(expected), code_
            assert market.usdc(address) == parse_amount(expected), address
        for order_id, amount in (escrows or {}).items():
            assert await market.posted(f"escrow:{order_id}") == parse_amount(amount)
            contract = self.contracts.get(order_id)
            held = market.usdc(contract) if contract else 0
            assert held == parse_amount(amount), order_id
        # What came in from the chain is all that ever left external:stellar.
        assert await market.posted("external:stellar") == -self.deposited
        assert await market.zero_sum_violations() == 0

    async def escrow(self, order_id: str) -> None:
        """Deploy the order's escrow (201) and remember its contract."""
        created = await self.market.step(f"/orders/{order_id}/escrow", status=201)
        assert (created["status"], created["escrow"]["status"]) == ("ESCROW_FUNDING", "CREATED")
        self.contracts[order_id] = created["escrow"]["trustless_contract_id"]


async def _deposit_on_chain(
    market: Market, user_id: str, amount: str, timeout_s: float = 20.0
) -> None:
    """Send USDC to the user's deposit address on chain; wait for the monitor to credit it."""
    instructions = (await market.get(f"/users/{user_id}/wallet/deposit")).json()
    assert (instructions["method"], instructions["asset"]["code"]) == ("stellar_address", "USDC")
    sandbox = market.sandbox_api.sandbox
    control_url = sandbox.provider_settings("http://sandbox.test").control_url
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.asgi_app())) as http:
        body = {"address": instructions["address"], "amount": amount}
        sent = await http.post(f"{control_url}/deposits", json=body)
    assert sent.status_code == 200, sent.text
    before = parse_amount((await market.balance(user_id))["available"])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while parse_amount((await market.balance(user_id))["available"]) < before + parse_amount(
        amount
    ):
        assert loop.time() < deadline, "the deposit monitor did not credit the deposit in time"
        await asyncio.sleep(0.1)


async def _release_in_milestones(market: Market, books: Books) -> None:
    """Order 1: 80 in two milestones, reserved, escrowed, funded, completed, released."""
    milestones = [
        {"milestone_ref": "design", "title": "Design", "amount": "30"},
        {"milestone_ref": "delivery", "title": "Delivery", "amount": "50"},
    ]
    order = (await market.order(books.buyer, books.seller, "80", milestones=milestones))["id"]
    await books.check(buyer=("200.00", "0.00"), seller="0.00")
    reserved = await market.step(f"/orders/{order}/reserve", {"amount": "80"})
    assert reserved["status"] == "FUNDS_RESERVED"
    await books.check(buyer=("120.00", "80.00"), seller="0.00", escrows={order: "0"})
    await books.escrow(order)
    await books.check(buyer=("120.00", "80.00"), seller="0.00", escrows={order: "0"})
    funded = await market.step(f"/orders/{order}/escrow/fund")
    assert (funded["status"], funded["escrow"]["status"]) == ("IN_PROGRESS", "FUNDED")
    await books.check(buyer=("120.00", "0.00"), seller="0.00", escrows={order: "80"})
    for ref in ("design", "delivery"):
        done = await market.step(f"/orders/{order}/milestones/{ref}/complete")
        assert done["status"] == "COMPLETED"
        await books.check(buyer=("120.00", "0.00"), seller="0.00", escrows={order: "80"})
    released = await market.step(f"/orders/{order}/resolution/release", {"reason": "great"})
    assert (released["status"], released["close_reason"]) == ("CLOSED", "RELEASED")
    [payout] = released["escrow"]["payouts"]
    # 80 at 5 % + 0.3 %: the seller nets 75.76.
    assert (payout["net_amount"], payout["platform_fee"], payout["trustless_work_fee"]) == (
        "75.76",
        "4.00",
        "0.24",
    )
    books.platform, books.trustless_work = "4", "0.24"
    await books.check(buyer=("120.00", "0.00"), seller="75.76", escrows={order: "0"})


async def _split_dispute(market: Market, books: Books) -> None:
    """Order 2: 20, disputed by the buyer and split 12 to the seller, 8 back to the buyer."""
    order = (await market.order(books.buyer, books.seller, "20"))["id"]
    await market.step(f"/orders/{order}/reserve")
    await books.check(buyer=("100.00", "20.00"), seller="75.76")
    await books.escrow(order)
    await market.step(f"/orders/{order}/escrow/fund")
    await books.check(buyer=("100.00", "0.00"), seller="75.76", escrows={order: "20"})
    dispute = await market.step(
        f"/orders/{order}/resolution/dispute",
        {"opened_by": "BUYER", "reason": "QUALITY_ISSUE", "evidence": ["screenshots"]},
        status=201,
    )
    await books.check(buyer=("100.00", "0.00"), seller="75.76", escrows={order: "20"})
    assigned = await market.step(f"/disputes/{dispute['id']}/assign", {"assigned_to": "agent-7"})
    assert assigned["status"] == "UNDER_REVIEW"
    await books.check(buyer=("100.00", "0.00"), seller="75.76", escrows={order: "20"})
    resolved = await market.step(
        f"/disputes/{dispute['id']}/resolve",
        {"decision": "SPLIT", "release_amount": "12", "refund_amount": "8", "note": "60/40"},
    )
    assert (resolved["status"], resolved["refund_amount"]) == ("RESOLVED", "8.00")
    split = (await market.get(f"/orders/{order}")).json()
    assert (split["status"], split["close_reason"]) == ("CLOSED", "SPLIT")
    # Seller 12: fees 0.60 + 0.036, net 11.364. Buyer 8: fees 0.40 + 0.024, net 7.576.
    assert [
        (p["party"], p["net_amount"], p["platform_fee"], p["trustless_work_fee"])
        for p in split["escrow"]["payouts"]
    ] == [("SELLER", "11.364", "0.60", "0.036"), ("BUYER", "7.576", "0.40", "0.024")]
    books.platform, books.trustless_work = "5", "0.30"
    await books.check(buyer=("107.576", "0.00"), seller="87.124", escrows={order: "0"})


async def _refund(market: Market, books: Books) -> None:
    """Order 3: 30, refunded; the buyer gets it back net of the same fees (28.41)."""
    order = await market.in_progress(books.buyer, books.seller, "30")
    escrow = (await market.get(f"/orders/{order}")).json()["escrow"]
    books.contracts[order] = escrow["trustless_contract_id"]
    await books.check(buyer=("77.576", "0.00"), seller="87.124", escrows={order: "30"})
    refunded = await market.step(f"/orders/{order}/resolution/refund", {"reason": "late"})
    assert (refunded["status"], refunded["close_reason"]) == ("CLOSED", "REFUNDED")
    assert refunded["escrow"]["payouts"][0]["net_amount"] == "28.41"
    books.platform, books.trustless_work = "6.50", "0.39"
    await books.check(buyer=("105.986", "0.00"), seller="87.124", escrows={order: "0"})


async def _cancel(market: Market, books: Books) -> None:
    """Order 4: 10, reserved then cancelled before its escrow: the reservation is voided."""
    order = (await market.order(books.buyer, books.seller, "10"))["id"]
    await market.step(f"/orders/{order}/reserve")
    await books.check(buyer=("95.986", "10.00"), seller="87.124")
    canceled = await market.step(f"/orders/{order}/cancel", {"reason": "duplicate"})
    assert (canceled["status"], canceled["close_reason"]) == ("CLOSED", "CANCELED")
    await books.check(buyer=("105.986", "0.00"), seller="87.124", escrows={order: "0"})


async def test_the_marketplace_story(db_dsn: str, pool: asyncpg.Pool) -> None:
    async with running_api_on_sandbox(db_dsn, deposit_poll_s=0.2) as api:
        market = await new_market(api, pool)
        buyer, seller = await market.parties()
        books = Books(market, buyer, seller)
        await books.check(buyer=("0.00", "0.00"), seller="0.00")
        await _deposit_on_chain(market, buyer, "200")
        books.deposited = 200 * USDC
        await books.check(buyer=("200.00", "0.00"), seller="0.00")
        await _release_in_milestones(market, books)
        await _split_dispute(market, books)
        await _refund(market, books)
        await _cancel(market, books)
        # 105.986 + 87.124 + 6.50 + 0.39 = 200: every deposited cent is accounted for.
        closed = await market.get("/orders", status="CLOSED", buyer_id=buyer)
        assert len(closed.json()["data"]) == 4
        # A few more monitor passes over the wallets the escrows paid: still one deposit.
        await asyncio.sleep(0.6)
        await books.check(buyer=("105.986", "0.00"), seller="87.124")
        deposits = await pool.fetch("SELECT user_id, amount_minor FROM deposits")
        assert [tuple(row) for row in deposits] == [(buyer, 200 * USDC)]


async def test_concurrent_reserves_never_overdraw_one_buyer(
    db_dsn: str, pool: asyncpg.Pool
) -> None:
    async with running_api(db_dsn) as api:
        market = await new_market(api, pool, users_via_api=False)
        buyer, seller = await market.user(), await market.user()
        await market.credit(buyer, "100")
        orders = [(await market.order(buyer, seller, "7"))["id"] for _ in range(30)]
        replies = await asyncio.gather(
            *(market.post(f"/orders/{order_id}/reserve") for order_id in orders)
        )
        outcomes = sorted(
            (reply.status_code, code(reply) if reply.status_code != 200 else "")
            for reply in replies
        )
        # 14 x 7 = 98 fits in 100; a 15th would not: every reserve that fits succeeds.
        assert outcomes == [(200, "")] * 14 + [(422, "INSUFFICIENT_FUNDS")] * 16
        assert await market.balance(buyer) == {
            "available": "2.00",
            "reserved": "98.00",
            "total": "100.00",
        }
        reserved = await market.get("/orders", status="FUNDS_RESERVED", limit=100)
        assert len(reserved.json()["data"]) == 14
        assert await market.zero_sum_violations() == 0


async def test_concurrent_identical_reserves_take_effect_once(
    db_dsn: str, pool: asyncpg.Pool
) -> None:
    async with running_api(db_dsn) as api:
        market = await new_market(api, pool, users_via_api=False)
        buyer, seller = await market.user(), await market.user()
        await market.credit(buyer, "50")
        order_id = (await market.order(buyer, seller, "50"))["id"]
        key = str(uuid.uuid4())
        path = f"/api/v1/orders/{order_id}/reserve"

        async def reserve() -> Any:
            # A request that finds the key still executing retries after Retry-After, as told.
            while True:
                reply = await api.post(path, market.key, {"amount": "50"}, key)
                if reply.status_code != 409:
                    return reply
                assert code(reply) == "IDEMPOTENCY_KEY_IN_PROGRESS"
                assert reply.headers["retry-after"] == "1"
                await asyncio.sleep(0.05)

        replies = await asyncio.gather(*(reserve() for _ in range(20)))
        assert {reply.status_code for reply in replies} == {200}
        assert len({reply.content for reply in replies}) == 1
        fresh = [reply for reply in replies if "idempotency-replayed" not in reply.headers]
        assert len(fresh) == 1
        assert await market.balance(buyer) == {
            "available": "0.00",
            "reserved": "50.00",
            "total": "50.00",
        }
        reservations = await pool.fetchval(
            "SELECT count(*) FROM events WHERE marketplace_id = $1 AND type = 'balance.reserved'",
            market.marketplace_id,
        )
        assert reservations == 1
        assert await market.zero_sum_violations() == 0
