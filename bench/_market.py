"""The API benchmarks' marketplace: one connection per client, and a buyer and a seller each.

Set-up goes through the public API like an integration would: ``POST /users`` (each wallet is
activated by the service's operation runner on the sandbox chain), USDC deposited to every
buyer's wallet through the sandbox's control API (the service's deposit monitor books it), and
waits until every wallet is active and every deposit is credited, so that no set-up work runs
in the background of a measurement.
"""

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from _http import Connection, HttpError, Response
from _server import Service

V1 = "/api/v1"
FUNDS = "1000000"  # USDC per buyer, on chain and then in the ledger
SETUP_TIMEOUT_S = 120.0


def fresh_key() -> str:
    """A new Idempotency-Key."""
    return uuid.uuid4().hex


@dataclass
class Market:
    """Connections (one per client) and each client's buyer, seller and buyer wallet."""

    service: Service
    connections: list[Connection]
    buyers: list[str] = field(default_factory=list)
    sellers: list[str] = field(default_factory=list)
    addresses: dict[str, str] = field(default_factory=dict)

    async def post(
        self, conn: Connection, path: str, body: Any = None, expect: Any = (200, 201)
    ) -> Response:
        """POST ``V1 + path`` with a fresh Idempotency-Key; the status must be in ``expect``."""
        payload = b"" if body is None else json.dumps(body).encode()
        headers = {"Idempotency-Key": fresh_key()}
        return await conn.request("POST", V1 + path, payload, headers, expect=expect)

    async def get(self, conn: Connection, path: str) -> Any:
        """GET ``V1 + path`` (200); the decoded body."""
        return (await conn.request("GET", V1 + path, expect=200)).json()

    async def close(self) -> None:
        """Close every connection."""
        await asyncio.gather(*(conn.close() for conn in self.connections))


async def open_market(service: Service, clients: int) -> Market:
    """``clients`` connections, the service ready, and a funded buyer and a seller per client."""
    auth = {"Authorization": f"Bearer {service.key}"}
    connections = [Connection("127.0.0.1", service.port, auth) for _ in range(clients)]
    market = Market(service, connections)
    await _wait_ready(connections[0])
    users = await asyncio.gather(*(_pair(market, conn) for conn in connections))
    for buyer, seller in users:
        market.buyers.append(buyer)
        market.sellers.append(seller)
    everyone = market.buyers + market.sellers
    await _until(market, everyone, _wallet_active, "wallets were not activated")
    await _deposit(service, [market.addresses[buyer] for buyer in market.buyers])
    await _until(market, market.buyers, _credited, "deposits were not credited")
    return market


async def _wait_ready(conn: Connection) -> None:
    # "listening on" is printed before uvicorn binds: refused connections come first.
    deadline = time.monotonic() + SETUP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if (await conn.request("GET", V1 + "/health/ready")).status == 200:
                return
        except (OSError, HttpError):
            await conn.close()
        await asyncio.sleep(0.1)
    raise RuntimeError("the service never became ready")


async def _pair(market: Market, conn: Connection) -> tuple[str, str]:
    ids = []
    for role in ("buyer", "seller"):
        body = {"external_user_id": f"{role}-{uuid.uuid4().hex}"}
        user = (await market.post(conn, "/users", body, expect=201)).json()
        market.addresses[user["id"]] = user["wallet"]["public_key"]
        ids.append(str(user["id"]))
    return ids[0], ids[1]


async def _wallet_active(market: Market, conn: Connection, user_id: str) -> bool:
    wallet = await market.get(conn, f"/users/{user_id}/wallet")
    return bool(wallet["is_active"] and wallet["trustline_ready"])


async def _credited(market: Market, conn: Connection, user_id: str) -> bool:
    balance = await market.get(conn, f"/users/{user_id}/balance")
    return float(balance["available"]) >= float(FUNDS)


async def _until(market: Market, user_ids: list[str], check: Any, message: str) -> None:
    """Poll ``check`` for every user (one connection each) until all pass."""
    deadline = time.monotonic() + SETUP_TIMEOUT_S

    async def one(conn: Connection, user_id: str) -> None:
        while not await check(market, conn, user_id):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{message} within {SETUP_TIMEOUT_S:.0f} s")
            await asyncio.sleep(0.25)

    pending = list(user_ids)
    while pending:
        batch, pending = pending[: len(market.connections)], pending[len(market.connections) :]
        await asyncio.gather(*(one(c, u) for c, u in zip(market.connections, batch, strict=False)))


async def _deposit(service: Service, addresses: list[str]) -> None:
    """USDC from the outside world to each address, through the sandbox control API."""
    url = urlsplit(service.sandbox_url)
    sandbox = Connection(url.hostname or "127.0.0.1", url.port or 80)
    try:
        for address in addresses:
            body = json.dumps({"address": address, "amount": FUNDS}).encode()
            answer = await sandbox.request("POST", f"{url.path}/control/deposits", body, expect=200)
            if not answer.json()["successful"]:
                raise RuntimeError(f"the deposit to {address} failed on chain")
    finally:
        await sandbox.close()
