"""The background runner of a server process, on the sandbox through real clients."""

import asyncpg
import httpx
import pytest

from common.ids import new_id
from flows.operation_steps import open_wallet
from flows.queries.operations import OperationKind
from flows.runtime import (
    OperationRunner,
    operation_hooks,
    operation_registry,
    provider_deps,
    sandbox_endpoints,
    wait_for_operation,
)
from providers.stellar.wallet_keys import SecretSeed
from tests.db.sandbox_world import make_world

pytestmark = pytest.mark.db


async def test_a_woken_runner_activates_a_wallet_within_the_wait(pool: asyncpg.Pool) -> None:
    world = await make_world(pool)
    transport = httpx.ASGITransport(app=world.sandbox.asgi_app())
    endpoints = sandbox_endpoints(world.settings)
    assert "api_key" not in repr(endpoints)
    assert world.settings.trustless_work_api_key not in repr(endpoints)
    seed = SecretSeed.from_keypair(world.sandbox.platform)
    async with provider_deps(
        endpoints, keyring=world.keyring, platform_seed=seed, transport=transport
    ) as deps:
        runner = OperationRunner(pool, deps, operation_registry(), {}, poll_s=30.0)
        runner.start()
        try:
            async with pool.acquire() as conn, conn.transaction():
                wallet, operation = await open_wallet(
                    conn, world.keyring, marketplace_id=world.marketplace_id, user_id=new_id("usr_")
                )
            runner.wake()  # without it the runner would sleep for 30 s
            ended = await wait_for_operation(pool, world.marketplace_id, operation.id, 10.0)
        finally:
            await runner.stop()
    assert ended.status == "SUCCEEDED"
    account = world.sandbox.chain.account(wallet.public_key)
    assert account is not None
    assert world.sandbox.chain.usdc_key in account.trustlines


async def test_waiting_returns_the_running_row_at_the_deadline(pool: asyncpg.Pool) -> None:
    world = await make_world(pool)
    async with pool.acquire() as conn, conn.transaction():
        _, operation = await open_wallet(
            conn, world.keyring, marketplace_id=world.marketplace_id, user_id=new_id("usr_")
        )
    row = await wait_for_operation(pool, world.marketplace_id, operation.id, 0.1)
    assert (row.status, row.step) == ("RUNNING", "submit_activation")


def test_every_kind_but_wallet_activation_has_end_hooks() -> None:
    hooks = operation_hooks("G" + "A" * 55, "G" + "B" * 55)
    assert set(hooks) == set(OperationKind) - {OperationKind.WALLET_ACTIVATE}
    assert set(operation_registry()) == set(OperationKind)
