"""Order lifecycles per second, end to end on the sandbox chain, under concurrent clients.

Each of ``--clients`` clients has its own buyer (USDC on chain, credited in the ledger) and
seller, and loops: ``POST /orders`` -> ``/reserve`` -> ``/escrow`` (the contract is deployed by
a durable operation on the sandbox's Trustless Work and Stellar) -> ``/escrow/fund`` (the buyer's
USDC moves on chain) -> ``/resolution/release`` (the payout). Orders have no milestones, so
none needs completing. An escrow action answers 200/201 when its operation ended within the
service's wait and 202 otherwise; then the client polls ``GET /orders/{id}`` until the order
reaches the state, so a lifecycle counts only once it is fully ``CLOSED``/``RELEASED``.

Prints one JSON object on its last line: ``lifecycles_per_s``, ``lifecycle_p50_ms``,
``lifecycle_p99_ms`` (one lifecycle's wall time) and details.
"""

import argparse
import asyncio
import json
import time
from typing import Any

from _http import Connection, Response, percentile
from _market import Market, open_market
from _server import running_service

AMOUNT = "1.00"
POLL_S = 0.05
STEP_TIMEOUT_S = 120.0


async def _settled(
    market: Market, conn: Connection, order_id: str, answer: Response, status: str
) -> int:
    """Wait until the order is in ``status`` (polling after a 202); the number of polls."""
    polls = 0
    deadline = time.monotonic() + STEP_TIMEOUT_S
    order = answer.json()
    while order["status"] != status:
        failed = (order.get("operation") or {}).get("status") == "FAILED"
        if failed or order["status"] == "CLOSED" or time.monotonic() > deadline:
            raise RuntimeError(f"order {order_id} is {order['status']}, waiting for {status}")
        await asyncio.sleep(POLL_S)
        order = await market.get(conn, f"/orders/{order_id}")
        polls += 1
    return polls


async def lifecycle(market: Market, conn: Connection, index: int, counters: dict[str, int]) -> None:
    """One order from creation to release, for client ``index``'s buyer and seller."""
    body = {
        "buyer_id": market.buyers[index],
        "seller_id": market.sellers[index],
        "amount": AMOUNT,
        "title": "bench lifecycle",
    }
    order_id = (await market.post(conn, "/orders", body, expect=201)).json()["id"]
    path = f"/orders/{order_id}"
    await market.post(conn, f"{path}/reserve", expect=200)
    steps = [
        ("/escrow", (201, 202), "ESCROW_FUNDING"),
        ("/escrow/fund", (200, 202), "IN_PROGRESS"),
        ("/resolution/release", (200, 202), "CLOSED"),
    ]
    for step, expect, status in steps:
        answer = await market.post(conn, path + step, expect=expect)
        counters["accepted_202"] += answer.status == 202
        counters["polls"] += await _settled(market, conn, order_id, answer, status)
    closed = await market.get(conn, path)
    if closed["close_reason"] != "RELEASED" or closed["escrow"]["status"] != "RELEASED":
        raise RuntimeError(f"order {order_id} closed as {closed['close_reason']}")


async def measure(market: Market, seconds: float) -> dict[str, Any]:
    """Every client loops lifecycles, starting new ones for ``seconds``; the rate and latencies.

    A lifecycle lasts seconds, so the last ones end well after ``seconds``, with fewer and
    fewer clients still busy: dividing every lifecycle by the whole wall time would count
    that tail as idle capacity. Each client is busy from the start to the end of its last
    lifecycle, so the rate is the sum over clients of (its lifecycles / its busy time), which
    is also clients / mean latency (Little's law) for a closed loop like this one.
    """
    counters = {"accepted_202": 0, "polls": 0}
    await lifecycle(market, market.connections[0], 0, counters)  # warm-up
    counters = {"accepted_202": 0, "polls": 0}
    latencies: list[float] = []
    rates: list[float] = []
    started = time.perf_counter()

    async def loop(conn: Connection, index: int) -> None:
        done = 0
        while time.perf_counter() < started + seconds:
            begun = time.perf_counter()
            await lifecycle(market, conn, index, counters)
            latencies.append(time.perf_counter() - begun)
            done += 1
        rates.append(done / (time.perf_counter() - started))

    await asyncio.gather(*(loop(conn, i) for i, conn in enumerate(market.connections)))
    latencies.sort()
    return {
        "lifecycles_per_s": round(sum(rates), 2),
        "lifecycle_p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "lifecycle_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "lifecycles": len(latencies),
        "lifecycle_wall_s": round(time.perf_counter() - started, 1),
        "lifecycle_steps_answered_202": counters["accepted_202"],
        "lifecycle_polls": counters["polls"],
        "lifecycle_clients": len(market.connections),
    }


async def _standalone(clients: int, seconds: float) -> dict[str, Any]:
    with running_service() as service:
        market = await open_market(service, clients)
        try:
            return await measure(market, seconds)
        finally:
            await market.close()


def main() -> None:
    """Run the benchmark on its own service and print its figures as JSON on the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="lifecycles start for 5 s")
    args = parser.parse_args()
    seconds = 5.0 if args.quick else args.seconds
    print(json.dumps(asyncio.run(_standalone(args.clients, seconds))))


if __name__ == "__main__":
    main()
