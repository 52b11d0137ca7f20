"""The API under concurrent clients: postings vs the bare baseline, create+reserve, lifecycles.

Single postings against the bare one-INSERT endpoint, order create + reserve, and full order
lifecycles on the sandbox chain, all on one service in one run, 32 clients by default.

Starts one durable PostgreSQL (fsync and synchronous_commit on), ``offerhub serve`` on it
(sandbox chain, per-key rate limiting off: it would cap the one benchmark key at 100 requests/s;
everything else default) and the bare one-INSERT app (``bench/bare.py``) on the same server.
Sets up a funded buyer and a seller per client through the API, then measures in turn:

1. ``bench/posting.py``: ``POST /users/{id}/balance/adjustments`` requests/s against the bare
   endpoint (``api_posting_ratio_vs_bare``);
2. order create + reserve: each loop is ``POST /orders`` then ``POST /orders/{id}/reserve``
   (``create_reserve_rps`` pairs/s, ``create_reserve_p50_ms``/``p99_ms`` of one pair, and
   ``create_reserve_ratio_vs_bare``: its requests/s over the bare endpoint's);
3. ``bench/lifecycle.py``: create -> reserve -> escrow -> fund -> release end to end
   (``lifecycles_per_s``, ``lifecycle_p50_ms``/``p99_ms``).

Every request goes through one raw HTTP/1.1 keep-alive client (``bench/_http.py``), with a fresh
Idempotency-Key per POST. Prints one JSON object on its last line.
"""

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable
from typing import Any

import lifecycle
import posting
from _http import Connection, drive, percentile
from _market import Market, open_market
from _server import running_service

ORDER_AMOUNT = "1.00"


async def measure_create_reserve(market: Market, seconds: float) -> dict[str, Any]:
    """Client ``i`` loops create + reserve between its buyer and seller for ``seconds``."""

    async def one(conn: Connection, index: int) -> None:
        body = {
            "buyer_id": market.buyers[index],
            "seller_id": market.sellers[index],
            "amount": ORDER_AMOUNT,
            "title": "bench",
        }
        created = (await market.post(conn, "/orders", body, expect=201)).json()
        await market.post(conn, f"/orders/{created['id']}/reserve", expect=200)

    await drive(market.connections, 1.0, one)  # warm-up
    cpu_before = time.process_time()
    latencies, elapsed = await drive(market.connections, seconds, one)
    client_cpu = time.process_time() - cpu_before
    return {
        "create_reserve_rps": round(len(latencies) / elapsed, 1),
        "create_reserve_p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "create_reserve_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "create_reserve_pairs": len(latencies),
        "create_reserve_client_cpu_us_per_request": round(client_cpu / len(latencies) / 2 * 1e6),
    }


async def _timed(name: str, work: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """Await ``work``, printing how long it took and its figures."""
    started = time.monotonic()
    figures = await work
    print(f"{name}: {time.monotonic() - started:.1f} s {figures}", flush=True)
    return figures


async def run(
    clients: int, seconds: float, lifecycle_seconds: float, rounds: int
) -> dict[str, Any]:
    """Start everything, set up the market, run the three measurements; the figures."""
    figures: dict[str, Any] = {"clients": clients}
    with running_service(bare=True) as service:
        started = time.monotonic()
        market = await open_market(service, clients)
        figures["setup_s"] = round(time.monotonic() - started, 1)
        print(f"set-up: {figures['setup_s']} s ({clients} buyers and sellers)", flush=True)
        try:
            figures |= await _timed("posting", posting.measure(market, seconds, rounds))
            figures |= await _timed("create+reserve", measure_create_reserve(market, seconds))
            figures["create_reserve_ratio_vs_bare"] = round(
                2 * figures["create_reserve_rps"] / figures["bare_rps"], 3
            )
            figures |= await _timed("lifecycle", lifecycle.measure(market, lifecycle_seconds))
        finally:
            await market.close()
    return figures


def main() -> None:
    """Run the benchmark and print its figures as JSON on the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0, help="per request measurement")
    parser.add_argument("--lifecycle-seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=2, help="bare/ours alternations")
    parser.add_argument("--quick", action="store_true", help="5 s per measurement, one round")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.lifecycle_seconds, args.rounds = 5.0, 5.0, 1
    figures = asyncio.run(run(args.clients, args.seconds, args.lifecycle_seconds, args.rounds))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
