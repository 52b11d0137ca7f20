"""Waiting for an order to reach a state, for the actions that answer 202 (api.md 1.9).

Escrow deploy, funding, release, refund and dispute resolution may answer 202 with the order in
an intermediate state while a durable operation goes on. ``wait_for_status`` polls the order
until its status is one of the wanted ones. It stops early, with :class:`UnexpectedState`, when
the order closed in another way or its latest operation FAILED (the order then stays where it
is until the action is sent again), and with :class:`WaitTimeout` when time runs out.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Final

from offerhub_client.errors import UnexpectedState, WaitTimeout
from offerhub_client.models.enums import OrderStatus
from offerhub_client.models.orders import Order

__all__ = ["DEFAULT_POLL_S", "order_settled", "wait_for_order", "wait_for_order_async"]

DEFAULT_POLL_S: Final = 0.5


def order_settled(order: Order, statuses: Collection[str]) -> bool:
    """True when ``order`` is in one of ``statuses``; raise when it can no longer get there."""
    if order.status in statuses:
        return True
    if order.status == OrderStatus.CLOSED:
        raise UnexpectedState(
            f"order {order.id} closed ({order.close_reason}) instead of {sorted(statuses)}", order
        )
    operation = order.operation
    if operation is not None and operation.status == "FAILED":
        error = operation.last_error
        reason = f"{error.code}: {error.message}" if error else "no error recorded"
        raise UnexpectedState(
            f"order {order.id}: operation {operation.kind} failed at {operation.step} ({reason})",
            order,
        )
    return False


def wait_for_order(
    fetch: Callable[[], Order], statuses: Collection[str], *, timeout_s: float, poll_s: float
) -> Order:
    """Poll ``fetch`` until the order is in ``statuses`` (blocking)."""
    deadline = time.monotonic() + timeout_s
    while True:
        order = fetch()
        if order_settled(order, statuses):
            return order
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"order {order.id} still {order.status} after {timeout_s} s", order)
        time.sleep(poll_s)


async def wait_for_order_async(
    fetch: Callable[[], Awaitable[Order]],
    statuses: Collection[str],
    *,
    timeout_s: float,
    poll_s: float,
) -> Order:
    """Poll ``fetch`` until the order is in ``statuses`` (asyncio)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        order = await fetch()
        if order_settled(order, statuses):
            return order
        if loop.time() >= deadline:
            raise WaitTimeout(f"order {order.id} still {order.status} after {timeout_s} s", order)
        await asyncio.sleep(poll_s)
