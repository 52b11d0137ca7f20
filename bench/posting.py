"""Single-posting API requests per second against the bare one-INSERT endpoint, same run.

``POST /users/{id}/balance/adjustments`` (one balanced ledger transfer, idempotency stored with
the effect) from ``--clients`` keep-alive connections, each client crediting its own user from
``external:stellar``, every request with a fresh Idempotency-Key; then the same load on the bare
Litestar endpoint (``bench/bare.py``: one durable INSERT per request) served the same way on the
same PostgreSQL. Both are driven by the same raw HTTP/1.1 client (``bench/_http.py``), whose CPU
per request is reported so one can see it is not the bottleneck.

``api_posting_ratio_vs_bare`` = our requests/s / bare requests/s. Rounds alternate bare and ours
(``--rounds``) so a drift of the machine affects both. The last line printed is one JSON object.
"""

import argparse
import asyncio
import json
import time
from typing import Any

from _http import Connection, drive, percentile
from _market import Market, fresh_key, open_market
from _server import running_service

AMOUNT = "1.00"
BODY = {
    "direction": "CREDIT",
    "amount": AMOUNT,
    "reason": "benchmark posting",
    "counter_account": "external:stellar",
}
_PAYLOAD = json.dumps(BODY).encode()


async def _load(
    connections: list[Connection], seconds: float, paths: list[str]
) -> tuple[list[float], float, float]:
    """POST ``paths[i]`` on connection ``i`` for ``seconds``; latencies, elapsed, client CPU."""

    async def one(conn: Connection, index: int) -> None:
        headers = {"Idempotency-Key": fresh_key()}
        await conn.request("POST", paths[index], _PAYLOAD, headers, expect=201)

    cpu_before = time.process_time()
    latencies, elapsed = await drive(connections, seconds, one)
    return latencies, elapsed, time.process_time() - cpu_before


async def measure(market: Market, seconds: float, rounds: int = 1) -> dict[str, Any]:
    """Alternate bare and ours ``rounds`` times; requests/s, latencies, the ratio."""
    bare_port = market.service.bare_port
    if bare_port is None:
        raise RuntimeError("start the service with bare=True")
    bare_connections = [Connection("127.0.0.1", bare_port) for _ in market.connections]
    ours_paths = [f"/api/v1/users/{seller}/balance/adjustments" for seller in market.sellers]
    bare_paths = ["/bare"] * len(bare_connections)
    runs: dict[str, list[tuple[list[float], float, float]]] = {"bare": [], "ours": []}
    try:
        # A short warm-up of each: connections open, statements prepared, caches filled.
        await _load(bare_connections, 1.0, bare_paths)
        await _load(market.connections, 1.0, ours_paths)
        for _ in range(rounds):
            runs["bare"].append(await _load(bare_connections, seconds, bare_paths))
            runs["ours"].append(await _load(market.connections, seconds, ours_paths))
    finally:
        await asyncio.gather(*(conn.close() for conn in bare_connections))
    figures: dict[str, Any] = {}
    for name, prefix in (("ours", "api_posting"), ("bare", "bare")):
        latencies = sorted(value for run in runs[name] for value in run[0])
        elapsed = sum(run[1] for run in runs[name])
        client_cpu = sum(run[2] for run in runs[name])
        figures[f"{prefix}_rps"] = round(len(latencies) / elapsed, 1)
        figures[f"{prefix}_p50_ms"] = round(percentile(latencies, 0.50) * 1000, 1)
        figures[f"{prefix}_p99_ms"] = round(percentile(latencies, 0.99) * 1000, 1)
        figures[f"{prefix}_client_cpu_us_per_request"] = round(client_cpu / len(latencies) * 1e6)
    ratio = figures["api_posting_rps"] / figures["bare_rps"]
    figures["api_posting_ratio_vs_bare"] = round(ratio, 3)
    figures["posting_clients"] = len(market.connections)
    return figures


async def _standalone(clients: int, seconds: float, rounds: int) -> dict[str, Any]:
    with running_service(bare=True) as service:
        market = await open_market(service, clients)
        try:
            return await measure(market, seconds, rounds)
        finally:
            await market.close()


def main() -> None:
    """Run the benchmark on its own service and print its figures as JSON on the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0, help="per round and endpoint")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="one 5-second round")
    args = parser.parse_args()
    seconds, rounds = (5.0, 1) if args.quick else (args.seconds, args.rounds)
    print(json.dumps(asyncio.run(_standalone(args.clients, seconds, rounds))))


if __name__ == "__main__":
    main()
