"""Order create + reserve over HTTP under concurrent clients, on the embedded defaults.

Starts ``offerhub serve`` in a subprocess on a fresh data folder (embedded PostgreSQL, durable,
sandbox chain), creates a buyer with a large balance (an admin adjustment) and a seller, then
runs ``--clients`` concurrent clients for ``--seconds``: each loop is ``POST /orders`` followed
by ``POST /orders/{id}/reserve``, both with an Idempotency-Key. Per-key rate limiting is turned
off for the run (it would cap one key at 100 requests/s); everything else is the default.

Prints one JSON object on its last line: ``create_reserve_rps`` (pairs per second),
``create_reserve_p50_ms`` and ``create_reserve_p99_ms`` (latency of one pair).
"""

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

_KEY = re.compile(r"API key: (ohk_\S+)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_server(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    """``offerhub serve`` on a fresh folder; returns the process and the bootstrap key."""
    env = {**os.environ, "OFFERHUB_RATE_LIMIT_PER_S": "0", "OFFERHUB_OPERATION_WAIT_S": "1"}
    command = [
        sys.executable,
        "-m",
        "api",
        "serve",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--sandbox-port",
        str(_free_port()),
    ]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert server.stdout is not None
    deadline = time.monotonic() + 120
    key = None
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line:
            break
        found = _KEY.search(line)
        key = found.group(1) if found else key
        if "listening on" in line and key is not None:
            return server, key
    server.kill()
    raise RuntimeError("offerhub serve did not start")


async def _post(client: httpx.AsyncClient, path: str, body: Any = None) -> dict[str, Any]:
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    response = await client.post(path, json=body, headers=headers)
    if response.status_code >= 300:
        raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
    return dict(response.json())


async def _wait_ready(client: httpx.AsyncClient) -> None:
    for _ in range(200):
        try:
            if (await client.get("/health/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the server never became ready")


async def _parties(client: httpx.AsyncClient) -> tuple[str, str]:
    """A funded buyer and a seller: each client gets its own pair, as a marketplace has many."""
    buyer = await _post(client, "/users", {"external_user_id": f"buyer-{uuid.uuid4()}"})
    seller = await _post(client, "/users", {"external_user_id": f"seller-{uuid.uuid4()}"})
    credit = {
        "direction": "CREDIT",
        "amount": "100000000",
        "reason": "benchmark funds",
        "counter_account": "external:stellar",
    }
    await _post(client, f"/users/{buyer['id']}/balance/adjustments", credit)
    return str(buyer["id"]), str(seller["id"])


async def _client_loop(
    client: httpx.AsyncClient, buyer: str, seller: str, until: float, latencies: list[float]
) -> None:
    order = {"buyer_id": buyer, "seller_id": seller, "amount": "1.00", "title": "bench"}
    while time.monotonic() < until:
        started = time.perf_counter()
        created = await _post(client, "/orders", order)
        await _post(client, f"/orders/{created['id']}/reserve")
        latencies.append(time.perf_counter() - started)


async def _measure(base_url: str, key: str, clients: int, seconds: float) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=30
    ) as client:
        await _wait_ready(client)
        pairs = [await _parties(client) for _ in range(clients)]
        warm: list[float] = []
        await _client_loop(client, *pairs[0], time.monotonic() + 1.0, warm)
        latencies: list[float] = []
        started = time.monotonic()
        until = started + seconds
        await asyncio.gather(
            *(_client_loop(client, buyer, seller, until, latencies) for buyer, seller in pairs)
        )
        elapsed = time.monotonic() - started
    ordered = sorted(latencies)
    return {
        "create_reserve_rps": round(len(ordered) / elapsed, 1),
        "create_reserve_p50_ms": round(statistics.median(ordered) * 1000, 1),
        "create_reserve_p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 1),
        "pairs": len(ordered),
        "clients": clients,
    }


def main() -> None:
    """Run the benchmark and print its figures as JSON on the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="a 5-second run")
    args = parser.parse_args()
    seconds = 5.0 if args.quick else args.seconds
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="offerhub-bench-") as folder:
        data_dir = Path(folder)
        os.chmod(data_dir, 0o755)  # the embedded server user must traverse it
        server, key = _start_server(data_dir, port)
        try:
            figures = asyncio.run(
                _measure(f"http://127.0.0.1:{port}/api/v1", key, args.clients, seconds)
            )
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
