"""SSE fan-out: 100 clients on ``GET /events`` while events commit at a steady rate.

Starts a durable PostgreSQL from the embedded binaries (fsync and synchronous_commit on) and
``offerhub serve`` on it (a subprocess, as ``bench/api.py`` does), opens ``--clients`` streams on
the bootstrap marketplace (the per-key stream cap is raised for the run: one key holds them
all), then commits ``--rate`` events per second for ``--seconds`` through
``flows.events.emit``, one event per transaction, from ``--writers`` connections on the same
database. Every client must receive every event exactly once, in sequence order.

Latency is measured from the moment the writer's COMMIT returned to the moment a client read
the event's frame, both on this process's monotonic clock; it therefore includes the commit's
trip back to the writer only partly, and the server's wait for a stable bound fully.

Prints one JSON object on its last line: ``sse_clients``, ``sse_events_per_s`` (deliveries per
second summed over clients), ``sse_latency_p50_ms``, ``sse_latency_p99_ms``, and details.
"""

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flows.events import emit
from ledger.db import create_pool
from ledger.local_postgres import LocalPostgres

_KEY = re.compile(r"API key: (ohk_\S+)")
_ID = re.compile(rb"^id: (\d+)$", re.MULTILINE)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_server(dsn: str, data_dir: Path, port: int, clients: int) -> tuple[Any, str]:
    """``offerhub serve`` on ``dsn``; returns the process and the bootstrap key."""
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "OFFERHUB_RATE_LIMIT_PER_S": "0",
        "OFFERHUB_SSE_MAX_STREAMS_PER_KEY": str(clients),
    }
    command = [sys.executable, "-m", "api", "serve", "--data-dir", str(data_dir)]
    command += ["--port", str(port), "--sandbox-port", str(_free_port())]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert server.stdout is not None
    key = None
    for line in server.stdout:
        found = _KEY.search(line)
        key = found.group(1) if found else key
        if "listening on" in line and key is not None:
            # Drain its output meanwhile: a full pipe would stall the server.
            threading.Thread(target=server.stdout.read, daemon=True).start()
            return server, key
    server.kill()
    raise RuntimeError("offerhub serve did not start")


class Client:
    """One SSE client: the sequences it read and when."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.arrived_at: list[float] = []
        self.connected = asyncio.Event()

    async def run(self, http: httpx.AsyncClient) -> None:
        """Read frames until cancelled; only the ``id`` lines matter here."""
        async with http.stream("GET", "/events") as answer:
            answer.raise_for_status()
            buffer = b""
            async for chunk in answer.aiter_raw():
                self.connected.set()
                now = time.monotonic()
                buffer += chunk
                complete, _, buffer = buffer.rpartition(b"\n\n")
                for found in _ID.finditer(complete):
                    self.received.append(int(found.group(1)))
                    self.arrived_at.append(now)


async def _wait_ready(http: httpx.AsyncClient) -> None:
    for _ in range(600):
        try:
            if (await http.get("/health/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the server never became ready")


async def _produce(
    pool: asyncpg.Pool, marketplace_id: str, rate: float, seconds: float, writers: int
) -> dict[int, float]:
    """Commit events at ``rate`` per second; returns sequence -> monotonic commit time."""
    committed: dict[int, float] = {}
    interval_s = writers / rate
    started = time.monotonic()

    async def writer(offset: int) -> None:
        due = started + offset * interval_s / writers
        while due < started + seconds:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            async with pool.acquire() as conn:
                async with conn.transaction():
                    event = await emit(
                        conn,
                        marketplace_id=marketplace_id,
                        type="order.created",
                        resource_type="order",
                        resource_id="ord_" + "0" * 32,
                        data={"bench": True},
                    )
                committed[event.sequence] = time.monotonic()
            due += interval_s

    await asyncio.gather(*(writer(index) for index in range(writers)))
    return committed


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _figures(clients: list[Client], committed: dict[int, float], elapsed: float) -> dict[str, Any]:
    expected = sorted(committed)
    latencies: list[float] = []
    exact = 0
    for client in clients:
        exact += client.received == expected
        latencies.extend(
            arrived - committed[sequence]
            for sequence, arrived in zip(client.received, client.arrived_at, strict=True)
            if sequence in committed
        )
    latencies.sort()
    deliveries = sum(len(client.received) for client in clients)
    return {
        "sse_clients": len(clients),
        "sse_events_per_s": round(deliveries / elapsed, 1),
        "sse_latency_p50_ms": round(_percentile(latencies, 0.50) * 1000, 1),
        "sse_latency_p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
        "events_committed": len(expected),
        "events_committed_per_s": round(len(expected) / elapsed, 1),
        "deliveries": deliveries,
        "clients_with_every_event_in_order": exact,
        "latency_from": "writer COMMIT returned -> client read the frame",
    }


async def _measure(args: argparse.Namespace, dsn: str, base_url: str, key: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    limits = httpx.Limits(max_connections=args.clients + 8)
    timeout = httpx.Timeout(30, read=None)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=timeout
    ) as http:
        await _wait_ready(http)
        marketplace_id = (await http.get("/auth/me")).json()["marketplace"]["id"]
        clients = [Client() for _ in range(args.clients)]
        tasks = [asyncio.create_task(client.run(http)) for client in clients]
        await asyncio.wait_for(asyncio.gather(*(client.connected.wait() for client in clients)), 60)
        await asyncio.sleep(0.5)  # every stream is live before the first event
        pool = await create_pool(dsn, min_size=args.writers, max_size=args.writers)
        started = time.monotonic()
        try:
            committed = await _produce(pool, marketplace_id, args.rate, args.seconds, args.writers)
        finally:
            await pool.close()
        drain_until = time.monotonic() + 30
        while time.monotonic() < drain_until and any(  # noqa: ASYNC110 - counters, not events
            len(client.received) < len(committed) for client in clients
        ):
            await asyncio.sleep(0.05)
        arrivals = [client.arrived_at[-1] for client in clients if client.arrived_at]
        elapsed = (max(arrivals) if arrivals else time.monotonic()) - started
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return _figures(clients, committed, elapsed)


def main() -> None:
    """Run the benchmark and print its figures as JSON on the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=float, default=500.0, help="events committed per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="a 10-second run")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 10.0
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="offerhub-bench-events-") as folder:
        os.chmod(folder, 0o755)  # the embedded server user must traverse it
        database = LocalPostgres(Path(folder) / "postgres", durable=True)
        dsn = database.start()
        server = None
        try:
            server, key = _start_server(dsn, Path(folder) / "data", port, args.clients)
            figures = asyncio.run(_measure(args, dsn, f"http://127.0.0.1:{port}/api/v1", key))
        finally:
            if server is not None:
                server.terminate()
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    print("offerhub serve ignored SIGTERM for 30 s; killed", file=sys.stderr)
                    server.kill()
                    server.wait()
            database.stop()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
