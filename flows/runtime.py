"""Running durable operations in a server process: clients, the registry, a background runner.

The API process owns one :class:`OperationRunner`. It runs workers in a loop (claiming with
``SKIP LOCKED``, so several processes can share the queue), wakes at once when a request has
just started an operation, and otherwise polls. :func:`wait_for_operation` lets a request wait
a bounded time for its operation before answering 200/201 or 202 (api.md 1.9).
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from types import MappingProxyType
from typing import Final, cast

import asyncpg
import httpx
import msgspec

from flows.background import BackgroundLoop
from flows.escrow_steps import ESCROW_STEPS
from flows.operation_steps import STEP_REGISTRY
from flows.operation_submit import ledger_clock
from flows.operations import (
    EscrowNetwork,
    OperationDeps,
    OperationHooks,
    OperationWorker,
    Registry,
    Step,
    WorkerSettings,
)
from flows.order_settlement import EscrowAddresses
from flows.orders import order_hooks
from flows.queries import operations as queries
from flows.queries.operations import Operation, OperationKind
from flows.topup_steps import TOPUP_DELIVERY_STEPS, topup_hooks
from flows.withdrawal_hooks import withdrawal_hooks
from flows.withdrawal_steps import AIRTM_PAYOUT_STEPS, WITHDRAWAL_PAYMENT_STEPS
from providers.airtm.client import AirtmClient, AirtmSettings
from providers.sandbox.app import SandboxProviderSettings
from providers.stellar.horizon import HorizonClient
from providers.stellar.wallet_keys import MasterKeyring, SecretSeed
from providers.trustless_work.client import TrustlessWorkClient
from providers.trustless_work.settings import TrustlessWorkSettings
from providers.trustless_work.xdr_check import XdrPolicy

__all__ = [
    "OperationRunner",
    "ProviderEndpoints",
    "operation_hooks",
    "operation_registry",
    "provider_deps",
    "sandbox_endpoints",
    "wait_for_operation",
]

_POLL_S: Final = 1.0
_WAIT_STEP_S: Final = 0.05


class ProviderEndpoints(msgspec.Struct, frozen=True, kw_only=True):
    """Where the providers are and the facts pinned for the network (sandbox or real)."""

    horizon_url: str
    network_passphrase: str
    usdc_issuer: str
    trustless_work: TrustlessWorkSettings
    trustless_work_api_key: str
    airtm: AirtmSettings
    escrow_network: EscrowNetwork

    def __repr__(self) -> str:
        # The TW key is a secret; never let it reach a log line through repr().
        return f"ProviderEndpoints(horizon_url={self.horizon_url!r}, ...)"


def sandbox_endpoints(sandbox: SandboxProviderSettings) -> ProviderEndpoints:
    """The endpoints of a running sandbox (its URLs, keys and pinned facts)."""
    return ProviderEndpoints(
        horizon_url=sandbox.horizon_url,
        network_passphrase=sandbox.network_passphrase,
        usdc_issuer=sandbox.usdc_issuer,
        trustless_work=sandbox.trustless_work,
        trustless_work_api_key=sandbox.trustless_work_api_key,
        airtm=sandbox.airtm,
        escrow_network=EscrowNetwork(
            deployer_contract_id=sandbox.deployer_contract_id,
            trustless_work_fee_address=sandbox.trustless_work_fee_address,
            policy=XdrPolicy(
                network_passphrase=sandbox.network_passphrase,
                token_contract_id=sandbox.usdc_contract_id,
            ),
        ),
    )


def operation_registry() -> Registry:
    """Every operation kind's steps."""
    merged: dict[OperationKind, Sequence[Step]] = {
        **STEP_REGISTRY,
        **ESCROW_STEPS,
        OperationKind.WITHDRAWAL_PAYMENT: WITHDRAWAL_PAYMENT_STEPS,
        OperationKind.AIRTM_PAYOUT: AIRTM_PAYOUT_STEPS,
        OperationKind.TOPUP_DELIVERY: TOPUP_DELIVERY_STEPS,
    }
    assert set(merged) == set(OperationKind), "an operation kind has no steps"
    return MappingProxyType(merged)


def operation_hooks(
    platform_address: str, trustless_work_fee_address: str
) -> Mapping[OperationKind, OperationHooks]:
    """Every kind's end-of-operation hooks (ledger postings, transitions, events)."""
    addresses = EscrowAddresses(
        platform=platform_address, trustless_work_fee=trustless_work_fee_address
    )
    hooks: dict[OperationKind, OperationHooks] = {
        **order_hooks(addresses),
        **withdrawal_hooks(),
        OperationKind.TOPUP_DELIVERY: topup_hooks(),
    }
    return MappingProxyType(hooks)


@contextlib.asynccontextmanager
async def provider_deps(
    endpoints: ProviderEndpoints,
    *,
    keyring: MasterKeyring,
    platform_seed: SecretSeed,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[OperationDeps]:
    """Real clients over one shared HTTP connection pool, packed as ``OperationDeps``."""
    async with httpx.AsyncClient(transport=transport) as http:
        horizon_http = httpx.AsyncClient(transport=transport, base_url=endpoints.horizon_url)
        async with horizon_http:
            network = HorizonClient(horizon_http, usdc_issuer=endpoints.usdc_issuer)

            yield OperationDeps(
                network=network,
                escrow=TrustlessWorkClient(
                    http, endpoints.trustless_work, api_key=endpoints.trustless_work_api_key
                ),
                escrow_network=endpoints.escrow_network,
                fiat=AirtmClient(http, endpoints.airtm),
                keyring=keyring,
                platform_seed=platform_seed,
                chain_now_s=ledger_clock(network),
                passphrase=endpoints.network_passphrase,
                usdc_issuer=endpoints.usdc_issuer,
            )


class OperationRunner:
    """Runs due operations in the background until stopped; :meth:`wake` skips the wait."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        deps: OperationDeps,
        registry: Registry,
        hooks: Mapping[OperationKind, OperationHooks],
        *,
        settings: WorkerSettings | None = None,
        poll_s: float = _POLL_S,
    ) -> None:
        self._worker = OperationWorker(pool, deps, registry, settings, hooks)
        self._loop = BackgroundLoop("operation-runner", self._run_due, poll_s)

    def start(self) -> None:
        """Start the loop (once)."""
        self._loop.start()

    def wake(self) -> None:
        """An operation was just started: look for due work now."""
        self._loop.wake()

    async def stop(self) -> None:
        """Stop the loop; an interrupted step resumes from the database next time."""
        await self._loop.stop()

    async def _run_due(self) -> bool:
        return await self._worker.run_once() > 0


async def wait_for_operation(
    pool: asyncpg.Pool, marketplace_id: str, operation_id: str, timeout_s: float
) -> Operation:
    """Wait up to ``timeout_s`` for the operation to end; returns its latest row either way."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        async with pool.acquire() as proxy:
            conn = cast(asyncpg.Connection, proxy)
            operation = await queries.get_operation(conn, marketplace_id, operation_id)
        assert operation is not None, "an operation vanished"
        if operation.status != "RUNNING" or loop.time() >= deadline:
            return operation
        await asyncio.sleep(_WAIT_STEP_S)
