"""``offerhub reconcile [--marketplace ID]``: one run per marketplace, breaks printed.

Exit status: 0 when every run is clean, 1 when a run found discrepancies (each one printed),
2 when it could not run (no database to reach, providers unreachable, a run already going, a
run that FAILED).

Where it reads: the database of ``DATABASE_URL`` and the providers ``serve`` would use. With
real providers configured (``OFFERHUB_HORIZON_URL`` and companions), those. Otherwise the
sandbox, which only exists inside a running ``offerhub serve``: the command talks to it over
HTTP on ``OFFERHUB_HOST``:``OFFERHUB_SANDBOX_PORT`` (its keys and platform account are the
deterministic ones of the sandbox ``serve`` starts), and says plainly when nothing answers there.
Without ``DATABASE_URL`` (the embedded database) the command refuses: that database belongs to
the running ``serve`` and starting it a second time would stop it; run
``POST /api/v1/reconciliation/runs`` against the service instead.
"""

import asyncio
import os
import sys
from collections.abc import Mapping
from typing import cast

import asyncpg
import httpx

from api.provider_settings import load_provider_endpoints
from api.routes.reconciliation import run_settings
from api.serve import apply_schema
from api.settings import Settings
from common.errors import ReconciliationAlreadyRunning
from common.money import format_signed_amount
from flows.runtime import ProviderEndpoints, sandbox_endpoints
from ledger.db import create_pool
from providers.errors import ProviderUnavailable
from providers.sandbox.app import Sandbox
from providers.stellar.horizon import HorizonClient
from providers.trustless_work.client import TrustlessWorkClient
from reconcile import ChainReader, RunRow, list_items, reconcile_once

__all__ = ["run_reconcile"]

_UNREACHABLE = (httpx.TransportError, ProviderUnavailable)


def _providers(settings: Settings, env: Mapping[str, str]) -> tuple[ProviderEndpoints, str]:
    """The endpoints to read and the platform wallet's address."""
    real = load_provider_endpoints(env)
    if real is not None:
        endpoints, seed = real
        return endpoints, seed.keypair().public_key
    # The same deterministic sandbox `serve` starts (seed 0): same keys, same platform account.
    sandbox = Sandbox(follow_wall_clock=True)
    providers = sandbox.provider_settings(f"http://{settings.host}:{settings.sandbox_port}")
    return sandbox_endpoints(providers), sandbox.platform.public_key


async def _print_run(pool: asyncpg.Pool, run: RunRow) -> None:
    print(
        f"{run.id}  {run.marketplace_id}  {run.status}  checked {run.items_checked}  "
        f"discrepancies {run.discrepancies}  stellar ledger {run.stellar_ledger}"
    )
    if run.error:
        print(f"  error: {run.error}")
    statuses = ["MISMATCH", "MISSING_IN_LEDGER", "MISSING_AT_PROVIDER"]
    async with pool.acquire() as proxy:
        items = await list_items(
            cast(asyncpg.Connection, proxy),
            run.marketplace_id,
            run.id,
            statuses=statuses,
            kind=None,
            source=None,
            after=None,
            limit=1_000_000,
        )
    for item in items:
        difference = "-" if item.difference is None else format_signed_amount(item.difference)
        print(
            f"  {item.kind:<15} {item.status:<19} {item.resource_type}:{item.resource_id}  "
            f"difference {difference}  {item.detail}"
        )


async def _reconcile(
    dsn: str, settings: Settings, endpoints: ProviderEndpoints, platform: str, market: str | None
) -> int:
    await apply_schema(dsn)
    pool = await create_pool(dsn, min_size=1, max_size=4)
    try:
        async with (
            httpx.AsyncClient() as http,
            httpx.AsyncClient(base_url=endpoints.horizon_url) as horizon_http,
        ):
            reader = ChainReader(
                HorizonClient(horizon_http, usdc_issuer=endpoints.usdc_issuer),
                TrustlessWorkClient(
                    http, endpoints.trustless_work, api_key=endpoints.trustless_work_api_key
                ),
                platform_address=platform,
                passphrase=endpoints.network_passphrase,
                usdc_issuer=endpoints.usdc_issuer,
            )
            try:
                await reader.ledger_number()
            except _UNREACHABLE:
                print(
                    f"offerhub: providers unreachable at {endpoints.horizon_url} (on the "
                    "sandbox, start `offerhub serve` first: the sandbox runs inside it)",
                    file=sys.stderr,
                )
                return 2
            markets = [market] if market else [r["id"] for r in await pool.fetch(_MARKETS)]
            worst = 0
            for marketplace_id in markets:
                try:
                    run = await reconcile_once(
                        pool, reader, marketplace_id, settings=run_settings(settings)
                    )
                except ReconciliationAlreadyRunning as running:
                    print(f"offerhub: {marketplace_id}: run {running.details['run_id']} is going")
                    worst = 2
                    continue
                await _print_run(pool, run)
                status = 2 if run.status == "FAILED" else int(run.discrepancies > 0)
                worst = max(worst, status)
            return worst
    finally:
        await pool.close()


_MARKETS = "SELECT id FROM marketplaces ORDER BY id"


def run_reconcile(
    settings: Settings, marketplace: str | None, environ: Mapping[str, str] | None = None
) -> int:
    """One run per marketplace (or only ``marketplace``); the exit status of the module doc."""
    if settings.database_url is None:
        print(
            "offerhub: reconcile needs DATABASE_URL; on the embedded defaults the database and "
            "the sandbox live inside `offerhub serve`: use POST /api/v1/reconciliation/runs",
            file=sys.stderr,
        )
        return 2
    endpoints, platform = _providers(settings, os.environ if environ is None else environ)
    return asyncio.run(
        _reconcile(settings.database_url, settings, endpoints, platform, marketplace)
    )
