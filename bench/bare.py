"""The bare baseline: a Litestar app whose one endpoint does one durable INSERT per request.

``POST /bare`` decodes a small JSON body (msgspec, as the service does), takes a connection from
an asyncpg pool, inserts one row (the Idempotency-Key header, the amount, the reason) in its own
transaction and answers 201 with a small JSON document. Nothing else: no authentication, no
idempotency lookup, no ledger. It is served exactly as ``offerhub serve`` serves the API
(``uvicorn.Config(app, host, port, log_level="warning")``, one process, one worker), on the same
PostgreSQL server, so its requests per second are the ceiling of a one-transaction-per-request
design on this machine.

Run as ``python bench/bare.py --dsn URL --port N``: it creates database ``bare`` on the server if
needed, checks that commits are durable (fsync and synchronous_commit on), then prints
``bare listening on ...`` and serves until SIGTERM.
"""

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import uvicorn
from litestar import Litestar, Request, Response, get, post

DATABASE = "bare"
POOL_SIZE = 20  # the service's default OFFERHUB_POOL_MAX_SIZE
SCHEMA = """
CREATE TABLE IF NOT EXISTS bare_requests (
    id bigserial PRIMARY KEY,
    idempotency_key text NOT NULL,
    amount text NOT NULL,
    reason text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


class Body(msgspec.Struct):
    """What the benchmark posts: the shape of a balance adjustment."""

    direction: str
    amount: str
    reason: str
    counter_account: str | None = None


_decoder = msgspec.json.Decoder(Body)


def with_database(dsn: str, database: str) -> str:
    """``dsn`` with its database name replaced by ``database``."""
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{database}"


async def prepare(dsn: str) -> str:
    """Create the ``bare`` database and table if needed, check durability; its URL."""
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
        if not exists:
            await conn.execute(f"CREATE DATABASE {DATABASE}")
        settings = {
            name: await conn.fetchval(f"SHOW {name}") for name in ("fsync", "synchronous_commit")
        }
    finally:
        await conn.close()
    if settings != {"fsync": "on", "synchronous_commit": "on"}:
        raise RuntimeError(f"the baseline must commit durably: {settings}")
    url = with_database(dsn, DATABASE)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SCHEMA)
    finally:
        await conn.close()
    return url


def create_bare_app(dsn: str) -> Litestar:
    """The baseline app on database ``dsn`` (which :func:`prepare` returned)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(dsn, min_size=POOL_SIZE, max_size=POOL_SIZE)
        try:
            yield
        finally:
            await app.state.pool.close()

    @post("/bare", status_code=201)
    async def insert_one(request: Request[Any, Any, Any]) -> Response[bytes]:
        body = _decoder.decode(await request.body())
        key = request.headers.get("idempotency-key", "")
        async with request.app.state.pool.acquire() as conn:
            row_id = await conn.fetchval(
                "INSERT INTO bare_requests (idempotency_key, amount, reason)"
                " VALUES ($1, $2, $3) RETURNING id",
                key,
                body.amount,
                body.reason,
            )
        document = {"id": row_id, "amount": body.amount, "direction": body.direction}
        return Response(msgspec.json.encode(document), media_type="application/json")

    @get("/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    return Litestar(route_handlers=[insert_one, ready], lifespan=[lifespan])


def main() -> None:
    """Prepare the database and serve the baseline until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True, help="the PostgreSQL server of the service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    url = asyncio.run(prepare(args.dsn))
    config = uvicorn.Config(
        create_bare_app(url), host=args.host, port=args.port, log_level="warning"
    )
    print(f"bare listening on http://{args.host}:{args.port}", flush=True)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
