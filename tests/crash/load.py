"""The load a crash test runs: clients walking order lifecycles, and the model of their effects.

Each client makes a buyer and a seller, then walks lifecycles until told to stop: fund the buyer
(USDC minted on the sandbox chain, then booked with an admin adjustment), create an order,
reserve, and then one ending: cancel; or escrow, fund (milestones completed if any) and release;
or escrow, fund and refund. Every POST uses a key derived from the client and step, so a retry
after a kill is the same request. The :class:`Model` adds up what the acknowledged requests
must have done, in cents (every amount is a multiple of $10, so every fee is whole cents).
"""

import asyncio
import dataclasses
import random
from collections import Counter
from typing import Any, Final, Literal

from providers.sandbox.app import Sandbox
from tests.crash.client import ResilientClient

__all__ = ["PLATFORM_FEE_BPS", "Lifecycle", "LoadContext", "Model", "money", "net", "run_client"]

PLATFORM_FEE_BPS: Final = 500  # the bootstrap marketplace's (api/schemas/marketplaces.py)
TRUSTLESS_WORK_FEE_BPS: Final = 30
STROOPS_PER_CENT: Final = 100_000
Plan = Literal["release", "milestones", "refund", "cancel"]
# Each client starts at its own place in this cycle, so every ending runs from the first kill.
PLANS: Final[tuple[Plan, ...]] = ("release", "refund", "milestones", "cancel", "release")
_DOLLARS: Final = (10, 20, 30, 50)
_STATUS_WAIT_S: Final = 120.0


def money(cents: int) -> str:
    """``cents`` as the API writes amounts (``"12.50"``, ``"-3.00"``)."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def fees(cents: int) -> int:
    """Platform plus Trustless Work fee of a payout of ``cents`` (floor division, as on chain)."""
    return cents * PLATFORM_FEE_BPS // 10_000 + cents * TRUSTLESS_WORK_FEE_BPS // 10_000


def net(cents: int) -> int:
    """What the recipient of a payout of ``cents`` receives."""
    return cents - fees(cents)


@dataclasses.dataclass
class Lifecycle:
    """One order walked by one client: its plan, amounts and, once created, its id."""

    tag: str
    plan: Plan
    buyer: str
    seller: str
    amount: int
    milestones: tuple[int, ...] = ()
    order_id: str = ""
    done: bool = False


@dataclasses.dataclass
class Model:
    """What the acknowledged requests add up to."""

    users: dict[str, str] = dataclasses.field(default_factory=dict)  # user id -> create key
    lifecycles: list[Lifecycle] = dataclasses.field(default_factory=list)

    def totals(self) -> Counter[str]:
        """Each user's expected total balance in cents (nothing stays reserved at the end)."""
        totals: Counter[str] = Counter(dict.fromkeys(self.users, 0))
        for cycle in self.lifecycles:
            totals[cycle.buyer] += cycle.amount  # its funding
            if cycle.plan in ("release", "milestones"):
                totals[cycle.buyer] -= cycle.amount
                totals[cycle.seller] += net(cycle.amount)
            elif cycle.plan == "refund":
                totals[cycle.buyer] -= fees(cycle.amount)
        return totals

    def platform_fees(self) -> int:
        """Platform fees earned, in cents."""
        return sum(
            cycle.amount * PLATFORM_FEE_BPS // 10_000
            for cycle in self.lifecycles
            if cycle.plan != "cancel"
        )

    def final_state(self, cycle: Lifecycle) -> tuple[str, str]:
        """``(status, close_reason)`` the order must end in."""
        reason = {"release": "RELEASED", "milestones": "RELEASED", "refund": "REFUNDED"}
        return "CLOSED", reason.get(cycle.plan, "CANCELED")


@dataclasses.dataclass
class LoadContext:
    """What every client shares."""

    api: ResilientClient
    sandbox: Sandbox
    model: Model
    stop: asyncio.Event
    seed: int
    min_lifecycles: int = 1


def _expect(answer: Any, *statuses: int) -> dict[str, Any]:
    assert answer.status in statuses, (
        f"{answer.path} ({answer.key}): {answer.status} {answer.json()}"
    )
    body: dict[str, Any] = answer.json()
    return body


async def _user(ctx: LoadContext, key: str) -> tuple[str, str]:
    answer = await ctx.api.post("/users", {"external_user_id": key}, key)
    body = _expect(answer, 201)
    ctx.model.users[body["id"]] = key
    return str(body["id"]), str(body["wallet"]["public_key"])


async def _wallet_active(ctx: LoadContext, user_id: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _STATUS_WAIT_S
    while not (await ctx.api.get(f"/users/{user_id}/wallet"))["is_active"]:
        assert loop.time() < deadline, f"wallet of {user_id} never activated"
        await asyncio.sleep(0.2)


async def _order_reaches(ctx: LoadContext, order_id: str, status: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _STATUS_WAIT_S
    while True:
        order: dict[str, Any] = await ctx.api.get(f"/orders/{order_id}")
        if order["status"] == status:
            return order
        assert loop.time() < deadline, f"{order_id} stayed {order['status']}: {order}"
        await asyncio.sleep(0.2)


async def _fund(ctx: LoadContext, cycle: Lifecycle, buyer_address: str) -> None:
    """Mint the order's USDC to the buyer's wallet (once), then book it (retried by key)."""
    ctx.sandbox.chain.mint(buyer_address, cycle.amount * STROOPS_PER_CENT)
    body = {
        "direction": "CREDIT",
        "amount": money(cycle.amount),
        "reason": "on-chain deposit",
        "counter_account": "external:stellar",
    }
    _expect(await ctx.api.post(f"/users/{cycle.buyer}/balance/adjustments", body, cycle.tag), 201)


async def _create(ctx: LoadContext, cycle: Lifecycle) -> None:
    body: dict[str, Any] = {
        "buyer_id": cycle.buyer,
        "seller_id": cycle.seller,
        "amount": money(cycle.amount),
        "title": f"crash {cycle.tag}",
    }
    if cycle.milestones:
        body["milestones"] = [
            {"milestone_ref": f"m{index}", "title": f"part {index}", "amount": money(part)}
            for index, part in enumerate(cycle.milestones)
        ]
    created = _expect(await ctx.api.post("/orders", body, f"{cycle.tag}-create"), 201)
    cycle.order_id = str(created["id"])


async def _walk(ctx: LoadContext, cycle: Lifecycle) -> None:
    """Drive the created order to its end, waiting through 202s and kills."""
    path, tag = f"/orders/{cycle.order_id}", cycle.tag
    reserved = _expect(await ctx.api.post(f"{path}/reserve", None, f"{tag}-reserve"), 200)
    assert reserved["status"] == "FUNDS_RESERVED", reserved
    if cycle.plan == "cancel":
        reason = {"reason": "crash test"}
        _expect(await ctx.api.post(f"{path}/cancel", reason, f"{tag}-cancel"), 200)
        return
    _expect(await ctx.api.post(f"{path}/escrow", None, f"{tag}-escrow"), 201, 202)
    await _order_reaches(ctx, cycle.order_id, "ESCROW_FUNDING")
    _expect(await ctx.api.post(f"{path}/escrow/fund", None, f"{tag}-fund"), 200, 202)
    await _order_reaches(ctx, cycle.order_id, "IN_PROGRESS")
    for index in range(len(cycle.milestones)):
        step = f"{path}/milestones/m{index}/complete"
        _expect(await ctx.api.post(step, None, f"{tag}-m{index}"), 200)
    if cycle.plan == "refund":
        body = {"reason": "crash test"}
        _expect(await ctx.api.post(f"{path}/resolution/refund", body, f"{tag}-refund"), 200, 202)
    else:
        _expect(await ctx.api.post(f"{path}/resolution/release", None, f"{tag}-release"), 200, 202)
    await _order_reaches(ctx, cycle.order_id, "CLOSED")


async def run_client(ctx: LoadContext, client: int) -> None:
    """One client: a buyer and a seller, then lifecycles until ``ctx.stop`` (and the minimum)."""
    rng = random.Random(ctx.seed * 1000 + client)  # a reproducible load
    buyer, buyer_address = await _user(ctx, f"c{client}-buyer")
    seller, _ = await _user(ctx, f"c{client}-seller")
    await _wallet_active(ctx, buyer)
    await _wallet_active(ctx, seller)
    count = 0
    while count < ctx.min_lifecycles or not ctx.stop.is_set():
        plan = PLANS[(client + count) % len(PLANS)]
        amount = rng.choice(_DOLLARS) * 100
        parts = (1000, amount - 1000) if plan == "milestones" and amount > 1000 else ()
        cycle = Lifecycle(f"c{client}-o{count}", plan, buyer, seller, amount, parts)
        ctx.model.lifecycles.append(cycle)
        await _fund(ctx, cycle, buyer_address)
        await _create(ctx, cycle)
        await _walk(ctx, cycle)
        cycle.done = True
        count += 1
