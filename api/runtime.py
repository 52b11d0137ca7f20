"""What route handlers need beyond the database: providers, the operation runner, the keyring.

The app's lifespan enters a runtime factory (:func:`sandbox_runtime` by default in ``serve``,
or one built by tests) and stores the :class:`AppRuntime` in ``app.state.runtime``. Handlers
get it with :func:`get_runtime`:

    runtime = get_runtime(request)
    ... start an operation inside run_mutation's work(conn) with runtime.registry ...
    runtime.started()                       # wake the runner at once
    ended = await runtime.wait(marketplace_id, operation_id)   # bounded (api.md 1.9)

Provider calls a handler makes itself (an Airtm lookup, a Horizon read) go through
``runtime.network`` / ``runtime.fiat`` and never inside a database transaction.
"""

import base64
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx

from common.errors import ProviderUnavailableError
from flows.deposit_monitor import DepositMonitor, MonitorSettings
from flows.operations import OperationDeps, Registry, WorkerSettings
from flows.provider_events import EventProcessor, ProviderEventRetrier
from flows.queries.operations import Operation
from flows.runtime import (
    OperationRunner,
    ProviderEndpoints,
    operation_hooks,
    operation_registry,
    provider_deps,
    wait_for_operation,
)
from providers.airtm.port import FiatProvider
from providers.stellar.port import WalletNetwork
from providers.stellar.wallet_keys import MasterKeyring, SecretSeed
from providers.trustless_work.port import EscrowProvider

__all__ = [
    "AppRuntime",
    "RuntimeFactory",
    "get_runtime",
    "load_or_create_keyring",
    "provider_runtime",
]

_KEYRING_FILE: Final = "wallet-master-keys"


class AppRuntime:
    """Providers, the operation registry and runner of one API process."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        deps: OperationDeps,
        registry: Registry,
        runner: OperationRunner | None,
        network_name: str,
        wait_s: float,
    ) -> None:
        self.pool = pool
        self.deps = deps
        self.registry = registry
        self.runner = runner
        self.network_name = network_name
        self.wait_s = wait_s
        # Credits incoming USDC payments to users (flows/deposit_monitor.py); None: not run.
        self.deposit_monitor: DepositMonitor | None = None

    @property
    def keyring(self) -> MasterKeyring:
        """Seals new wallet seeds."""
        return self.deps.keyring

    @property
    def network(self) -> WalletNetwork:
        """Horizon, for live reads (wallet balances, destination checks)."""
        return self.deps.network

    @property
    def escrow(self) -> EscrowProvider:
        """Trustless Work."""
        assert self.deps.escrow is not None
        return self.deps.escrow

    @property
    def fiat(self) -> FiatProvider:
        """Airtm."""
        if self.deps.fiat is None:
            raise ProviderUnavailableError("Airtm is not configured", provider="airtm")
        return self.deps.fiat

    @property
    def usdc_issuer(self) -> str:
        """The USDC issuer of the network."""
        return self.deps.usdc_issuer

    @property
    def platform_address(self) -> str:
        """The platform wallet's public key (fees, dispute resolver, treasury)."""
        return self.deps.platform().public_key

    @property
    def provider_events(self) -> EventProcessor:
        """Applies stored provider webhooks (api.md 3.14), waking the runner when needed."""
        return EventProcessor(self.pool, self.deps.fiat, wake=self.started)

    def started(self) -> None:
        """A request just committed a new operation: let the runner pick it up now."""
        if self.runner is not None:
            self.runner.wake()

    async def wait(self, marketplace_id: str, operation_id: str) -> Operation:
        """Wait up to the configured time for the operation to end; the latest row either way."""
        return await wait_for_operation(self.pool, marketplace_id, operation_id, self.wait_s)


RuntimeFactory = Callable[[asyncpg.Pool], AbstractAsyncContextManager[AppRuntime]]


def get_runtime(request: Any) -> AppRuntime:
    """The app's runtime; 503 PROVIDER_UNAVAILABLE when the app runs without providers."""
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise ProviderUnavailableError("no providers are configured")
    assert isinstance(runtime, AppRuntime)
    return runtime


def provider_runtime(
    endpoints: ProviderEndpoints,
    *,
    keyring: MasterKeyring,
    platform_seed: SecretSeed,
    network_name: str,
    wait_s: float = 20.0,
    poll_s: float = 1.0,
    deposit_poll_s: float | None = 5.0,
    run_operations: bool = True,
    transport: httpx.AsyncBaseTransport | None = None,
    operation_lease_s: float | None = None,
) -> RuntimeFactory:
    """A factory for the lifespan: real clients to ``endpoints`` and a background runner.

    The deposit monitor polls users' wallets every ``deposit_poll_s`` (``None``: not run).
    The runner claims each step for ``operation_lease_s`` (``None``: the worker's default).
    """

    @contextlib.asynccontextmanager
    async def factory(pool: asyncpg.Pool) -> AsyncIterator[AppRuntime]:
        async with provider_deps(
            endpoints, keyring=keyring, platform_seed=platform_seed, transport=transport
        ) as deps:
            registry = operation_registry()
            runner = None
            if run_operations:
                hooks = operation_hooks(
                    platform_seed.keypair().public_key,
                    endpoints.escrow_network.trustless_work_fee_address,
                )
                lease = (
                    None if operation_lease_s is None else WorkerSettings(lease_s=operation_lease_s)
                )
                runner = OperationRunner(pool, deps, registry, hooks, settings=lease, poll_s=poll_s)
                runner.start()
            runtime = AppRuntime(
                pool=pool,
                deps=deps,
                registry=registry,
                runner=runner,
                network_name=network_name,
                wait_s=wait_s,
            )
            # Provider webhooks whose processing failed or was cut short are retried here.
            retrier = None
            if run_operations:
                retrier = ProviderEventRetrier(runtime.provider_events, poll_s=poll_s)
                retrier.start()
            if deposit_poll_s is not None:
                runtime.deposit_monitor = DepositMonitor(
                    pool,
                    deps.network,
                    usdc_issuer=deps.usdc_issuer,
                    settings=MonitorSettings(poll_s=deposit_poll_s),
                )
                runtime.deposit_monitor.start()
            try:
                yield runtime
            finally:
                if runtime.deposit_monitor is not None:
                    await runtime.deposit_monitor.stop()
                if retrier is not None:
                    await retrier.stop()
                if runner is not None:
                    await runner.stop()

    return factory


def load_or_create_keyring(data_dir: Path, configured: str | None) -> MasterKeyring:
    """The wallet master keyring: from settings, else a key file kept in the data folder.

    The file is created once (mode 0600) on first start, so an embedded installation keeps
    opening the wallets it sealed. Production sets ``OFFERHUB_WALLET_MASTER_KEYS`` instead.
    """
    if configured:
        return MasterKeyring.from_text(configured)
    path = data_dir / _KEYRING_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        encoded = base64.b64encode(secrets.token_bytes(32)).decode()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(f"1:{encoded}\n")
    return MasterKeyring.from_text(path.read_text().strip())
