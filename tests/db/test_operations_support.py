"""Shared set-up of the durable-operation tests (no tests here).

A sandbox chain and its Horizon app reached through ``httpx.ASGITransport`` by the real
``HorizonClient``; a platform account; a marketplace; workers built fresh for each "process".
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from stellar_sdk import Keypair

from common.ids import new_id
from flows.operation_steps import STEP_REGISTRY, open_wallet
from flows.operations import OperationDeps, OperationWorker, Registry, WorkerSettings
from flows.queries.operations import Operation
from flows.queries.wallets import Wallet
from providers.sandbox.chain import SandboxChain
from providers.sandbox.clock import SandboxClock
from providers.sandbox.faults import FaultRules
from providers.sandbox.horizon_app import HorizonSandboxSettings, create_horizon_app
from providers.stellar.horizon import HorizonClient
from providers.stellar.port import WalletNetwork
from providers.stellar.wallet_keys import MasterKeyring, SecretSeed

XLM = 10_000_000
MASTER_KEYS = {1: bytes(range(32))}


class SimulatedCrash(BaseException):
    """The worker process dies here (BaseException: no ``except Exception`` catches it)."""


@dataclass
class Harness:
    pool: asyncpg.Pool
    chain: SandboxChain
    faults: FaultRules
    keyring: MasterKeyring
    platform: Keypair
    marketplace_id: str

    async def open_wallet(self, user_id: str | None = None) -> tuple[Wallet, Operation]:
        async with self.pool.acquire() as conn, conn.transaction():
            return await open_wallet(
                conn,
                self.keyring,
                marketplace_id=self.marketplace_id,
                user_id=user_id or new_id("usr_"),
            )

    @asynccontextmanager
    async def worker(
        self,
        *,
        settings: WorkerSettings | None = None,
        registry: Registry = STEP_REGISTRY,
        wrap: Any = None,
        platform: Keypair | None = None,
        hooks: Any = None,
    ) -> AsyncIterator[OperationWorker]:
        """A fresh worker process: its own HTTP client, Horizon client and clock."""
        app: Any = create_horizon_app(
            self.chain,
            faults=self.faults,
            settings=HorizonSandboxSettings(path_prefix="/_sandbox/horizon", hang_s=30),
        )
        transport = httpx.ASGITransport(app=app)
        base_url = "http://sandbox.test/_sandbox/horizon"
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            network: WalletNetwork = HorizonClient(
                http,
                usdc_issuer=self.chain.issuer.public_key,
                get_timeout_s=0.3,
                post_timeout_s=0.3,
            )
            if wrap is not None:
                network = wrap(network)
            clock = self.chain.clock

            async def chain_now_s() -> int:
                return clock.now_s()

            deps = OperationDeps(
                network=network,
                keyring=self.keyring,
                platform_seed=SecretSeed.from_keypair(platform or self.platform),
                chain_now_s=chain_now_s,
                passphrase=self.chain.passphrase,
                usdc_issuer=self.chain.issuer.public_key,
                fee_float=1 * XLM,
            )
            yield OperationWorker(self.pool, deps, registry, settings, hooks)

    async def make_due(self, operation_id: str | None = None) -> None:
        """Let time pass for the database: leases and backoffs run out."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "UPDATE operations SET next_attempt_at = now() "
                "WHERE status = 'RUNNING' AND ($1::text IS NULL OR id = $1)",
                operation_id,
            )

    async def operation(self, operation_id: str) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM operations WHERE id = $1", operation_id)
            assert row is not None
            return dict(row)

    async def submissions(self, operation_id: str) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT * FROM operation_submissions WHERE operation_id = $1 ORDER BY created_at",
                operation_id,
            )
            return [dict(row) for row in rows]

    async def wallet(self, wallet_id: str) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM wallets WHERE id = $1", wallet_id)
            assert row is not None
            return dict(row)

    def applied_txs(self, account: str) -> list[str]:
        """Hashes of the successful transactions that touched ``account``, in order."""
        hashes: list[str] = []
        for record in self.chain.operations:
            fresh = record.tx_hash not in hashes
            if account in record.participants and record.successful and fresh:
                hashes.append(record.tx_hash)
        return hashes

    def failed_txs_from(self, source: str) -> list[str]:
        """Transactions from ``source`` that made it into a ledger and failed."""
        return sorted(
            {tx.hash for tx in self.chain.transactions.values() if tx.source_account == source}
            - {tx.hash for tx in self.chain.transactions.values() if tx.successful}
        )

    def snapshot(self, user: str) -> dict[str, Any]:
        """The chain facts an activation changes, comparable across runs."""
        account = self.chain.account(user)
        platform = self.chain.account(self.platform.public_key)
        assert platform is not None
        if account is None:
            return {"exists": False}
        line = account.trustlines[self.chain.usdc_key]
        return {
            "exists": True,
            "xlm": account.xlm,
            "sponsor": account.sponsor == self.platform.public_key,
            "num_sponsored": account.num_sponsored,
            "usdc": (line.balance, line.sponsor == self.platform.public_key, line.authorized),
            "platform_xlm": platform.xlm,
            "platform_sequence": platform.sequence,
            "platform_sponsoring": platform.num_sponsoring,
        }


async def make_harness(pool: asyncpg.Pool, *, platform_xlm: int | None = None) -> Harness:
    chain = SandboxChain(SandboxClock(1_700_000_000), seed=11)
    platform = chain.new_keypair()
    if platform_xlm is None:
        chain.activate(platform)
    elif platform_xlm > 0:
        chain.friendbot(platform.public_key, xlm=platform_xlm)
    marketplace_id = new_id("mkt_")
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO marketplaces (id, name) VALUES ($1, $2)", marketplace_id, marketplace_id
        )
    return Harness(
        pool=pool,
        chain=chain,
        faults=FaultRules(),
        keyring=MasterKeyring(MASTER_KEYS),
        platform=platform,
        marketplace_id=marketplace_id,
    )


async def run_until_settled(harness: Harness, operation_id: str, rounds: int = 10) -> str:
    """Run fresh workers until the operation ends; returns its final status."""
    for _ in range(rounds):
        await harness.make_due(operation_id)
        async with harness.worker() as worker:
            await worker.run_once()
        status = (await harness.operation(operation_id))["status"]
        if status != "RUNNING":
            return str(status)
    return "RUNNING"
