"""Outbound webhooks: the cost of the fan-out trigger, and delivery throughput to a local receiver.

Starts a durable PostgreSQL (fsync on) from the embedded binaries, or uses DATABASE_URL, and
measures:

- events committed per second (one event per transaction, 8 connections) with no endpoint,
  then with 5 matching endpoints (5 deliveries written by the trigger per event);
- deliveries per second: a :class:`WebhookDispatcher` (16 in flight) sends every pending
  delivery, signed, to an HTTP receiver on 127.0.0.1 that answers 204.

The last line of output is one JSON object. ``--quick`` uses 300 events instead of 2,000.
"""

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _postgres import bench_database

from common.ids import new_id
from flows import webhooks
from flows.events import emit
from flows.webhook_delivery import DeliverySettings, WebhookDispatcher, WebhookWorker
from ledger import create_pool, migrate
from providers.stellar.wallet_keys import MasterKeyring

KEYRING = MasterKeyring({1: bytes(range(32))})
CONNECTIONS = 8


class Receiver:
    """A minimal HTTP/1.1 receiver answering 204 to everything, counting requests."""

    def __init__(self) -> None:
        self.count = 0
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read one request, answer 204, close."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            await reader.readexactly(length)
            self.count += 1
            writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            await writer.drain()
        finally:
            writer.close()


async def _emit_many(pool: asyncpg.Pool, marketplace_id: str, count: int) -> float:
    """Commit ``count`` events, one per transaction, over CONNECTIONS workers; events/s."""
    remaining = iter(range(count))

    async def worker() -> None:
        async with pool.acquire() as conn:
            for index in remaining:
                async with conn.transaction():
                    await emit(
                        conn,
                        marketplace_id=marketplace_id,
                        type="order.created",
                        resource_type="order",
                        resource_id=f"ord_{index % 50}",
                        data={"order_id": f"ord_{index % 50}", "amount": "10.00"},
                    )

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return count / (time.perf_counter() - started)


async def _marketplace(pool: asyncpg.Pool) -> str:
    marketplace_id = new_id("mkt_")
    await pool.execute(
        "INSERT INTO marketplaces (id, name) VALUES ($1, $2)", marketplace_id, marketplace_id
    )
    return marketplace_id


async def _deliver_all(pool: asyncpg.Pool, receiver: Receiver, expected: int) -> float:
    """Run a dispatcher until ``expected`` deliveries succeeded; deliveries/s."""
    settings = DeliverySettings(allow_insecure_urls=True, poll_interval_s=0.05)
    async with httpx.AsyncClient(timeout=10.0) as http:
        dispatcher = WebhookDispatcher(WebhookWorker(pool, KEYRING, http, settings))
        started = time.perf_counter()
        dispatcher.start()
        try:
            while True:
                done = await pool.fetchval(
                    "SELECT count(*) FROM webhook_deliveries WHERE status = 'SUCCEEDED'"
                )
                if done >= expected:
                    break
                await asyncio.sleep(0.05)
        finally:
            await dispatcher.stop()
    return expected / (time.perf_counter() - started)


async def run(dsn: str, events: int) -> dict[str, float | int]:
    """Every measurement on a fresh schema."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    pool = await create_pool(dsn, min_size=CONNECTIONS, max_size=CONNECTIONS + 4)
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        bare = await _emit_many(pool, await _marketplace(pool), events)
        marketplace_id = await _marketplace(pool)
        async with pool.acquire() as conn:
            for pattern in ("*", "order.*", "order.created", "*", "order.*"):
                await webhooks.create_endpoint(
                    conn,
                    KEYRING,
                    marketplace_id=marketplace_id,
                    url=f"http://127.0.0.1:{receiver.port}/hooks",
                    description=None,
                    event_types=[pattern],
                )
        fanned = await _emit_many(pool, marketplace_id, events)
        delivered = await _deliver_all(pool, receiver, events * 5)
    finally:
        server.close()
        await pool.close()
    return {
        "events": events,
        "events_per_s_no_endpoint": round(bare, 1),
        "events_per_s_5_endpoints": round(fanned, 1),
        "deliveries_per_s": round(delivered, 1),
        "receiver_requests": receiver.count,
    }


def main() -> None:
    """Parse arguments, start a durable server unless DATABASE_URL is set, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 events instead of 2,000")
    args = parser.parse_args()
    with bench_database(durable=True) as dsn:
        figures = asyncio.run(run(dsn, 300 if args.quick else 2000))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
