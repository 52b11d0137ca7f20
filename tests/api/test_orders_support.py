"""Shared set-up of the order, dispute and story API tests (no tests here).

A :class:`Market` is one marketplace on the running app with an all-scope key: it creates users
(``POST /users`` on the sandbox app; ``flows.users.create_user``, what that route calls, on an
app without providers, since the route needs the wallet keyring), waits until the runner has
activated their wallets, deposits USDC (minted on the sandbox chain and credited to the ledger
by ``POST /users/{id}/balance/adjustments`` against ``external:stellar``: there is no deposit
monitor yet), reads balances with ``GET /users/{id}/balance``, and walks orders over HTTP.
"""

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx

from flows.transitions import Actor
from flows.users import create_user
from ledger import run_in_transaction
from providers.stellar.wallet_keys import MasterKeyring
from tests.api.support import Api, SandboxApi

USDC = 10_000_000
# The keyring of running_api_on_sandbox: a user created behind the API must open with it.
KEYRING = MasterKeyring({1: bytes(range(32))})
ACTOR = Actor(type="API_KEY", id="key_" + "t" * 32)
V1 = "/api/v1"


def code(response: httpx.Response) -> str:
    """The error code of an error answer."""
    return str(response.json()["error"]["code"])


class Market:
    """One marketplace with an all-scope key on a running app."""

    def __init__(self, api: Api, pool: asyncpg.Pool, marketplace_id: str, key: str) -> None:
        self.api = api
        self.pool = pool
        self.marketplace_id = marketplace_id
        self.key = key
        self.public_keys: dict[str, str] = {}
        self.users_via_api = True

    @property
    def sandbox_api(self) -> SandboxApi:
        """The API on the sandbox (only for markets made on ``running_api_on_sandbox``)."""
        assert isinstance(self.api, SandboxApi)
        return self.api

    async def post(self, path: str, body: Any = None, key: str | None = None) -> httpx.Response:
        """POST under /api/v1 with a fresh Idempotency-Key."""
        return await self.api.post(V1 + path, key or self.key, body)

    async def get(self, path: str, key: str | None = None, **params: Any) -> httpx.Response:
        """GET under /api/v1."""
        return await self.api.get(V1 + path, key or self.key, **params)

    async def user(self) -> str:
        """A new user (its wallet activates in the background); its id."""
        external_id = f"ext-{uuid.uuid4().hex[:12]}"
        if self.users_via_api:
            response = await self.post("/users", {"external_user_id": external_id})
            assert response.status_code == 201, response.text
            body = response.json()
            self.public_keys[body["id"]] = body["wallet"]["public_key"]
            return str(body["id"])

        async def work(conn: asyncpg.Connection) -> str:
            user, _ = await create_user(
                conn,
                KEYRING,
                marketplace_id=self.marketplace_id,
                external_user_id=external_id,
                actor=ACTOR,
            )
            assert user.wallet is not None
            self.public_keys[user.id] = user.wallet.public_key
            return user.id

        return await run_in_transaction(self.pool, work)

    async def wallets_active(self, user_ids: list[str], timeout_s: float = 20.0) -> None:
        """Wait until the runner has activated every wallet (XLM and USDC trustline)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            active = await self.pool.fetchval(
                "SELECT count(*) FROM wallets WHERE marketplace_id = $1"
                " AND user_id = ANY($2::text[]) AND is_active",
                self.marketplace_id,
                user_ids,
            )
            if active == len(user_ids):
                return
            assert loop.time() < deadline, "wallets were not activated in time"
            await asyncio.sleep(0.1)

    async def deposit(self, user_id: str, amount: str, minor: int) -> None:
        """USDC arrives on the user's wallet and is credited to the ledger (no monitor yet)."""
        self.sandbox_api.sandbox.chain.mint(self.public_keys[user_id], minor)
        await self.credit(user_id, amount)

    async def credit(self, user_id: str, amount: str) -> None:
        """Credit ``user:<usr>`` from ``external:stellar`` (admin balance adjustment)."""
        body = {
            "direction": "CREDIT",
            "amount": amount,
            "reason": "on-chain deposit",
            "counter_account": "external:stellar",
        }
        response = await self.post(f"/users/{user_id}/balance/adjustments", body)
        assert response.status_code == 201, response.text

    async def balance(self, user_id: str) -> dict[str, str]:
        """``{available, reserved, total}`` of the user (GET balance)."""
        response = await self.get(f"/users/{user_id}/balance")
        assert response.status_code == 200, response.text
        body = response.json()
        return {name: body[name] for name in ("available", "reserved", "total")}

    async def posted(self, code_: str) -> int:
        """The posted balance of a ledger account by code (0 when it was never opened)."""
        value = await self.pool.fetchval(
            "SELECT credits_posted - debits_posted FROM ledger_accounts"
            " WHERE marketplace_id = $1 AND code = $2",
            self.marketplace_id,
            code_,
        )
        return int(value or 0)

    async def zero_sum_violations(self) -> int:
        """Rows of ``ledger_zero_sum_violations_v1()`` (must be 0)."""
        return int(await self.pool.fetchval("SELECT count(*) FROM ledger_zero_sum_violations_v1()"))

    def usdc(self, address: str) -> int:
        """USDC stroops held on chain by an account or a contract."""
        chain = self.sandbox_api.sandbox.chain
        if address.startswith("C"):
            return int(chain.contract_balance(address))
        account = chain.account(address)
        if account is None:
            return 0
        line = account.trustlines.get(chain.usdc_key)
        return 0 if line is None else int(line.balance)

    async def parties(self, deposit: tuple[str, int] | None = None) -> tuple[str, str]:
        """A buyer (with ``deposit``) and a seller, both wallets active."""
        buyer, seller = await self.user(), await self.user()
        await self.wallets_active([buyer, seller])
        if deposit is not None:
            await self.deposit(buyer, *deposit)
        return buyer, seller

    async def order(self, buyer: str, seller: str, amount: str, **fields: Any) -> dict[str, Any]:
        """A new order (201)."""
        body = {"buyer_id": buyer, "seller_id": seller, "amount": amount, "title": "Logo"}
        response = await self.post("/orders", {**body, **fields})
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def step(self, path: str, body: Any = None, status: int = 200) -> dict[str, Any]:
        """POST an action that must answer ``status``; its body."""
        response = await self.post(path, body)
        assert response.status_code == status, response.text
        return dict(response.json())

    async def in_progress(self, buyer: str, seller: str, amount: str, **fields: Any) -> str:
        """An order reserved, escrowed and funded (``IN_PROGRESS``); its id."""
        order_id = str((await self.order(buyer, seller, amount, **fields))["id"])
        await self.step(f"/orders/{order_id}/reserve")
        await self.step(f"/orders/{order_id}/escrow", status=201)
        funded = await self.step(f"/orders/{order_id}/escrow/fund")
        assert funded["status"] == "IN_PROGRESS"
        return order_id


async def new_market(api: Api, pool: asyncpg.Pool, *, users_via_api: bool = True) -> Market:
    """A fresh marketplace (5 % platform fee) and an all-scope key in it.

    Without ``users_via_api`` (an app without providers), users are created by the domain
    function ``POST /users`` calls.
    """
    marketplace_id, key = await api.tenant(["*"])
    market = Market(api, pool, marketplace_id, key)
    market.users_via_api = users_via_api
    return market
