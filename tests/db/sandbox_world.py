"""Shared set-up of operation tests that need the whole sandbox (no tests here).

One composed :class:`Sandbox` (chain, Horizon, Trustless Work, Airtm) reached through
``httpx.ASGITransport`` by the real clients; a marketplace; wallets opened and activated by
the real WALLET_ACTIVATE operation; workers built fresh for each simulated "process".
"""

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import msgspec

from common.ids import new_id
from flows.operation_steps import STEP_REGISTRY, open_wallet
from flows.operations import (
    EscrowNetwork,
    OperationDeps,
    OperationHooks,
    OperationWorker,
    Registry,
    WorkerSettings,
)
from flows.queries.operations import OperationKind
from flows.queries.wallets import Wallet
from providers.airtm.client import AirtmClient
from providers.airtm.port import FiatProvider
from providers.sandbox.app import Sandbox, SandboxProviderSettings
from providers.stellar.horizon import HorizonClient
from providers.stellar.port import WalletNetwork
from providers.stellar.wallet_keys import MasterKeyring, SecretSeed
from providers.trustless_work.client import TrustlessWorkClient
from providers.trustless_work.port import EscrowProvider
from providers.trustless_work.settings import TrustlessWorkSettings
from providers.trustless_work.xdr_check import XdrPolicy

USDC = 10_000_000
MASTER_KEYS = {1: bytes(range(32))}
# Short client deadlines: a "hang" fault must look like a timeout without slowing the tests.
CLIENT_TIMEOUT_S = 0.3


class SimulatedCrash(BaseException):
    """The worker process dies here (BaseException: no ``except Exception`` catches it)."""


Wrap = Callable[[Any], Any]


@dataclass
class SandboxWorld:
    """The sandbox, its provider settings, a marketplace and a keyring."""

    pool: asyncpg.Pool
    sandbox: Sandbox
    settings: SandboxProviderSettings
    keyring: MasterKeyring
    marketplace_id: str
    registry: Registry = field(default_factory=lambda: STEP_REGISTRY)
    hooks: Mapping[OperationKind, OperationHooks] = field(default_factory=dict)

    @property
    def escrow_network(self) -> EscrowNetwork:
        """The pinned TW facts of the sandbox deployment."""
        return EscrowNetwork(
            deployer_contract_id=self.settings.deployer_contract_id,
            trustless_work_fee_address=self.settings.trustless_work_fee_address,
            policy=XdrPolicy(
                network_passphrase=self.settings.network_passphrase,
                token_contract_id=self.settings.usdc_contract_id,
            ),
        )

    @asynccontextmanager
    async def worker(
        self,
        *,
        settings: WorkerSettings | None = None,
        wrap_network: Wrap | None = None,
        wrap_escrow: Wrap | None = None,
        wrap_fiat: Wrap | None = None,
    ) -> AsyncIterator[OperationWorker]:
        """A fresh worker "process": its own HTTP client and provider clients."""
        transport = httpx.ASGITransport(app=self.sandbox.asgi_app())
        async with httpx.AsyncClient(transport=transport) as http:
            horizon_http = httpx.AsyncClient(
                transport=transport, base_url=self.settings.horizon_url
            )
            async with horizon_http:
                network: WalletNetwork = HorizonClient(
                    horizon_http,
                    usdc_issuer=self.settings.usdc_issuer,
                    get_timeout_s=CLIENT_TIMEOUT_S,
                    post_timeout_s=CLIENT_TIMEOUT_S,
                )
                tw_settings = TrustlessWorkSettings(
                    base_url=self.settings.trustless_work.base_url,
                    timeout_s=CLIENT_TIMEOUT_S,
                    send_timeout_s=CLIENT_TIMEOUT_S,
                )
                escrow: EscrowProvider = TrustlessWorkClient(
                    http, tw_settings, api_key=self.settings.trustless_work_api_key
                )
                airtm_settings = msgspec.structs.replace(
                    self.settings.airtm, timeout_s=CLIENT_TIMEOUT_S
                )
                fiat: FiatProvider = AirtmClient(http, airtm_settings)
                clock = self.sandbox.clock

                async def chain_now_s() -> int:
                    return clock.now_s()

                deps = OperationDeps(
                    network=wrap_network(network) if wrap_network else network,
                    escrow=wrap_escrow(escrow) if wrap_escrow else escrow,
                    escrow_network=self.escrow_network,
                    fiat=wrap_fiat(fiat) if wrap_fiat else fiat,
                    keyring=self.keyring,
                    platform_seed=SecretSeed.from_keypair(self.sandbox.platform),
                    chain_now_s=chain_now_s,
                    passphrase=self.settings.network_passphrase,
                    usdc_issuer=self.settings.usdc_issuer,
                    fee_float=1 * 10_000_000,
                )
                yield OperationWorker(self.pool, deps, self.registry, settings, self.hooks)

    async def make_due(self, operation_id: str | None = None) -> None:
        """Let time pass for the database: leases and backoffs run out."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "UPDATE operations SET next_attempt_at = now() "
                "WHERE status = 'RUNNING' AND ($1::text IS NULL OR id = $1)",
                operation_id,
            )

    async def run_until_settled(self, operation_id: str, rounds: int = 12) -> str:
        """Run fresh workers until the operation ends; returns its final status."""
        for _ in range(rounds):
            await self.make_due(operation_id)
            async with self.worker() as worker:
                await worker.run_once()
            status = (await self.operation(operation_id))["status"]
            if status != "RUNNING":
                return str(status)
        return "RUNNING"

    async def operation(self, operation_id: str) -> dict[str, Any]:
        """The operations row."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM operations WHERE id = $1", operation_id)
            assert row is not None
            return dict(row)

    async def submissions(self, operation_id: str) -> list[dict[str, Any]]:
        """The operation's submissions, oldest first."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT * FROM operation_submissions WHERE operation_id = $1 ORDER BY created_at",
                operation_id,
            )
            return [dict(row) for row in rows]

    async def activated_wallet(self, *, usdc: int = 0) -> Wallet:
        """A user wallet opened and activated by WALLET_ACTIVATE, holding ``usdc`` stroops."""
        async with self.pool.acquire() as conn, conn.transaction():
            wallet, operation = await open_wallet(
                conn, self.keyring, marketplace_id=self.marketplace_id, user_id=new_id("usr_")
            )
        assert await self.run_until_settled(operation.id) == "SUCCEEDED"
        if usdc:
            self.sandbox.chain.mint(wallet.public_key, usdc)
        return wallet

    def usdc(self, address: str) -> int:
        """USDC stroops held by an account or a contract (0 when it has none)."""
        chain = self.sandbox.chain
        if address.startswith("C"):
            return chain.contract_balance(address)
        account = chain.account(address)
        if account is None:
            return 0
        line = account.trustlines.get(chain.usdc_key)
        return 0 if line is None else line.balance


async def make_world(pool: asyncpg.Pool, *, seed: int = 7) -> SandboxWorld:
    """A fresh sandbox (activated platform) and marketplace on ``pool``'s database."""
    sandbox = Sandbox(seed=seed, start_s=1_800_000_000)
    settings = sandbox.provider_settings("http://sandbox.test")
    marketplace_id = new_id("mkt_")
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO marketplaces (id, name, platform_fee_bps) VALUES ($1, $2, 500)",
            marketplace_id,
            marketplace_id,
        )
    return SandboxWorld(
        pool=pool,
        sandbox=sandbox,
        settings=settings,
        keyring=MasterKeyring(MASTER_KEYS),
        marketplace_id=marketplace_id,
    )
