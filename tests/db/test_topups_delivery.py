"""A top-up end to end on the sandbox: Airtm payin over HTTP, credit, TOPUP_DELIVERY on chain.

At every step the three real balances match their accounts: the platform's Airtm balance is
``treasury:airtm``, the treasury (platform) wallet's USDC is ``treasury:stellar``, and the
user's wallet USDC is ``user:<usr>`` minus the user's credited-but-undelivered top-ups.
"""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from common.ids import new_id
from common.money import parse_amount
from flows.operation_steps import STEP_REGISTRY, open_wallet
from flows.operations import start_operation
from flows.queries import wallets
from flows.queries.operations import OperationKind
from flows.queries.topups import undelivered_total_minor
from flows.queries.wallets import Wallet
from flows.topup_steps import TOPUP_DELIVERY_STEPS, topup_hooks
from flows.topups import (
    PayinApplied,
    TopUp,
    apply_payin_status,
    create_topup,
    get_topup,
    record_payin_created,
    restart_topup_delivery,
)
from flows.transitions import SYSTEM, Actor
from ledger import (
    AccountNotFound,
    Transfer,
    TransferResult,
    create_transfers,
    get_account_by_code,
    open_account,
    run_in_transaction,
    system_account,
)
from providers.airtm.client import AirtmClient
from providers.airtm.port import PayinCreate
from providers.sandbox.airtm_records import AirtmStateConfig
from providers.stellar.port import SubmitResult, WalletNetwork
from tests.db.sandbox_world import USDC, SandboxWorld, SimulatedCrash, make_world

pytestmark = pytest.mark.db

API = Actor(type="API_KEY", id="key_test")
AIRTM = Actor(type="PROVIDER", id="airtm")
TREASURY_FUNDS = 1_000 * USDC


@dataclass
class Delivery:
    world: SandboxWorld
    user_id: str
    wallet: Wallet

    @property
    def market(self) -> str:
        return self.world.marketplace_id

    @property
    def treasury(self) -> str:
        return self.world.sandbox.platform.public_key

    async def posted(self, code: str) -> int:
        async with self.world.pool.acquire() as conn:
            try:
                account = await get_account_by_code(conn, self.market, "USD", code)
            except AccountNotFound:
                return 0
            return account.balance.posted

    async def available(self, code: str) -> int:
        async with self.world.pool.acquire() as conn:
            return (await get_account_by_code(conn, self.market, "USD", code)).balance.available

    async def topup(self, topup_id: str) -> TopUp:
        async with self.world.pool.acquire() as conn:
            return await get_topup(conn, marketplace_id=self.market, topup_id=topup_id)

    def payments_to_user(self) -> list[Any]:
        return [
            record
            for record in self.world.sandbox.chain.operations
            if record.successful
            and record.type == "payment"
            and record.fields.get("from") == self.treasury
            and record.fields.get("to") == self.wallet.public_key
        ]

    async def assert_reconciled(self, *, landed_unbooked: int = 0) -> None:
        """Each real balance equals its ledger account, now.

        ``landed_unbooked``: a delivery payment on chain whose operation has not recorded it
        yet (its hash is still PENDING): the only gap allowed, and reconciliation sees it by
        looking the pending hash up.
        """
        world = self.world
        async with world.pool.acquire() as conn:
            undelivered = await undelivered_total_minor(conn, self.market, self.user_id)
            violations = await conn.fetch("SELECT * FROM ledger_zero_sum_violations_v1()")
        user = await self.posted(f"user:{self.user_id}")
        wallet = world.usdc(self.wallet.public_key)
        assert wallet == user - undelivered + landed_unbooked
        assert await self.posted("clearing:topups") == -undelivered
        treasury = world.usdc(self.treasury)
        assert treasury == await self.posted("treasury:stellar") - landed_unbooked
        assert world.sandbox.airtm.available_minor == await self.posted("treasury:airtm")
        assert violations == []


async def book_treasury(world: SandboxWorld, amount: int) -> None:
    """Book USDC that reached the treasury wallet: external:stellar -> treasury:stellar."""

    async def book(conn: asyncpg.Connection) -> None:
        external = await open_account(
            conn, world.marketplace_id, "USD", system_account("external:stellar")
        )
        treasury = await open_account(
            conn, world.marketplace_id, "USD", system_account("treasury:stellar")
        )
        [outcome] = await create_transfers(
            conn,
            [
                Transfer(
                    id=new_id("trf_"),
                    marketplace_id=world.marketplace_id,
                    code="treasury_fund",
                    debit_account_id=external.id,
                    credit_account_id=treasury.id,
                    amount=amount,
                    asset="USD",
                )
            ],
        )
        assert outcome.result is TransferResult.OK

    await run_in_transaction(world.pool, book)


async def fund_treasury(world: SandboxWorld, amount: int) -> None:
    """USDC reaches the treasury wallet on chain, and the books say so."""
    world.sandbox.chain.mint(world.sandbox.platform.public_key, amount)
    await book_treasury(world, amount)


async def make_delivery(
    pool: asyncpg.Pool, *, fee_bps: int = 0, activate: bool = True, funds: int = TREASURY_FUNDS
) -> Delivery:
    world = await make_world(pool)
    world.registry = {**STEP_REGISTRY, OperationKind.TOPUP_DELIVERY: TOPUP_DELIVERY_STEPS}
    world.hooks = {OperationKind.TOPUP_DELIVERY: topup_hooks()}
    world.sandbox.airtm.config = AirtmStateConfig(payin_fee_bps=fee_bps)
    user_id = new_id("usr_")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO users (marketplace_id, id, external_user_id) VALUES ($1, $2, $2)",
            world.marketplace_id,
            user_id,
        )
        wallet, activation = await open_wallet(
            conn, world.keyring, marketplace_id=world.marketplace_id, user_id=user_id
        )
    if activate:
        assert await world.run_until_settled(activation.id) == "SUCCEEDED"
    else:
        # The wallet stays unactivated on chain: its activation is taken out of the way.
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE operations SET status = 'FAILED' WHERE id = $1", activation.id
            )
    if funds:
        await fund_treasury(world, funds)
    return Delivery(world=world, user_id=user_id, wallet=wallet)


@contextlib.asynccontextmanager
async def airtm(world: SandboxWorld) -> AsyncIterator[AirtmClient]:
    """The real Airtm client, talking to the sandbox over HTTP."""
    transport = httpx.ASGITransport(app=world.sandbox.asgi_app())
    async with httpx.AsyncClient(transport=transport) as http:
        yield AirtmClient(http, world.settings.airtm)


async def confirmed_topup(d: Delivery, amount: int) -> tuple[TopUp, PayinApplied]:
    """POST /topups as the API would run it, then the payer pays and a refresh reads it."""
    world = d.world

    async def create(conn: asyncpg.Connection) -> TopUp:
        return await create_topup(
            conn,
            marketplace_id=d.market,
            user_id=d.user_id,
            amount_minor=amount,
            return_url="https://shop.test/ok",
            cancel_url="https://shop.test/cancel",
            actor=API,
        )

    topup = await run_in_transaction(world.pool, create)
    async with airtm(world) as client:
        payin = await client.create_payin(
            PayinCreate(
                code=topup.id,
                amount_minor=amount,
                description="credits",
                confirmation_uri=f"https://orchestrator.test/topups/{topup.id}/callback",
                cancel_uri=f"https://orchestrator.test/topups/{topup.id}/callback",
            )
        )

        async def created(conn: asyncpg.Connection) -> PayinApplied:
            return await record_payin_created(
                conn, marketplace_id=d.market, topup_id=topup.id, payin=payin, actor=API
            )

        assert (await run_in_transaction(world.pool, created)).changed
        await d.assert_reconciled()
        world.sandbox.airtm.payer_confirms(payin.id)
        read = await client.get_payin(payin.id)

    async def confirm(conn: asyncpg.Connection) -> PayinApplied:
        return await apply_payin_status(
            conn, marketplace_id=d.market, topup_id=topup.id, payin=read, actor=AIRTM
        )

    applied = await run_in_transaction(world.pool, confirm)
    assert applied.topup.status == "TOPUP_SUCCEEDED"
    assert applied.delivery_operation_id is not None
    return topup, applied


async def test_topup_end_to_end_reconciles_at_every_step(pool: asyncpg.Pool) -> None:
    d = await make_delivery(pool, fee_bps=100)
    await d.assert_reconciled()
    amount = 40 * USDC
    topup, applied = await confirmed_topup(d, amount)
    fee = amount // 100
    assert applied.topup.provider_fee_minor == fee
    # Credited, not delivered yet: the user's ledger balance is ahead of the wallet by A.
    assert d.world.usdc(d.wallet.public_key) == 0
    assert await d.posted(f"user:{d.user_id}") == amount
    assert await d.posted("treasury:airtm") == amount - fee
    await d.assert_reconciled()

    operation_id = applied.delivery_operation_id
    assert operation_id is not None
    assert await d.world.run_until_settled(operation_id) == "SUCCEEDED"
    [payment] = d.payments_to_user()
    operation = await d.world.operation(operation_id)
    assert operation["payload"] == {
        "topup_id": topup.id,
        "user_id": d.user_id,
        "user_wallet_id": d.wallet.id,
        "amount_minor": amount,
        "tx_hash": payment.tx_hash,
    }
    delivered = await d.topup(topup.id)
    assert delivered.delivery_tx_hash == payment.tx_hash
    assert delivered.delivered_at is not None
    assert d.world.usdc(d.wallet.public_key) == amount == await d.posted(f"user:{d.user_id}")
    assert await d.posted("clearing:topups") == 0
    assert await d.posted("treasury:stellar") == TREASURY_FUNDS - amount
    assert await d.available("treasury:stellar") == TREASURY_FUNDS - amount
    await d.assert_reconciled()
    async with pool.acquire() as conn:
        settle = await conn.fetchrow(
            "SELECT * FROM ledger_transfers WHERE code = 'topup_settle' AND phase = 'POST_PENDING'"
        )
    assert settle is not None
    assert (settle["external_ref"], settle["amount"]) == (payment.tx_hash, amount)


class CrashAfterSubmit:
    """Delegates to the real client; the process dies right after the submit call."""

    def __init__(self, inner: WalletNetwork) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def submit_transaction(self, envelope_xdr: str, *, tx_hash: str) -> SubmitResult:
        with contextlib.suppress(Exception):
            await self._inner.submit_transaction(envelope_xdr, tx_hash=tx_hash)
        raise SimulatedCrash("died right after the submit call")


@pytest.mark.parametrize("crash", [False, True], ids=["worker-handles", "worker-crashes"])
@pytest.mark.parametrize("fault", ["applied_response_lost", "hang", "status:503"])
async def test_submit_faults_deliver_exactly_once(
    pool: asyncpg.Pool, fault: str, crash: bool
) -> None:
    d = await make_delivery(pool)
    amount = 25 * USDC
    topup, applied = await confirmed_topup(d, amount)
    operation_id = applied.delivery_operation_id
    assert operation_id is not None
    d.world.sandbox.faults.add("horizon", "POST", "/transactions", fault)
    wrap = CrashAfterSubmit if crash else None
    async with d.world.worker(wrap_network=wrap) as first:
        if crash:
            with pytest.raises(SimulatedCrash):
                await first.run_once()
        else:
            await first.run_once()
    assert not d.world.sandbox.faults.pending()
    # The payment may be on chain before the books record it (its hash is still PENDING).
    landed = sum(parse_amount(str(p.fields["amount"])) for p in d.payments_to_user())
    assert landed in (0, amount)
    booked = (await d.topup(topup.id)).delivered_at is not None
    assert booked == (not crash and fault == "applied_response_lost")
    await d.assert_reconciled(landed_unbooked=0 if booked else landed)
    assert await d.world.run_until_settled(operation_id) == "SUCCEEDED"
    assert len(d.payments_to_user()) == 1
    statuses = [s["status"] for s in await d.world.submissions(operation_id)]
    assert statuses.count("CONFIRMED") == 1
    assert "PENDING" not in statuses
    assert d.world.usdc(d.wallet.public_key) == amount == await d.posted(f"user:{d.user_id}")
    await d.assert_reconciled()


async def test_a_short_treasury_waits_without_signing(pool: asyncpg.Pool) -> None:
    d = await make_delivery(pool, funds=0)
    _, applied = await confirmed_topup(d, 10 * USDC)
    d.world.sandbox.chain.mint(d.treasury, 10 * USDC)  # on chain, not booked yet
    operation_id = applied.delivery_operation_id
    assert operation_id is not None
    assert await d.world.run_until_settled(operation_id, rounds=2) == "RUNNING"
    row = await d.world.operation(operation_id)
    assert row["last_error"]["error"] == "TreasuryInsufficientFunds"
    assert row["last_error"]["needs_attention"] is True
    assert await d.world.submissions(operation_id) == []
    assert d.payments_to_user() == []
    # The operator books the treasury's USDC; the next attempt delivers.
    await book_treasury(d.world, 10 * USDC)
    await d.assert_reconciled()
    assert await d.world.run_until_settled(operation_id) == "SUCCEEDED"
    assert len(d.payments_to_user()) == 1
    await d.assert_reconciled()


async def test_a_failed_delivery_releases_its_hold_and_can_be_restarted(
    pool: asyncpg.Pool,
) -> None:
    d = await make_delivery(pool, activate=False)
    amount = 30 * USDC
    topup, applied = await confirmed_topup(d, amount)
    operation_id = applied.delivery_operation_id
    assert operation_id is not None
    # The wallet is not active: the delivery waits for the activation.
    assert await d.world.run_until_settled(operation_id, rounds=1) == "RUNNING"
    assert (await d.world.operation(operation_id))["last_error"]["error"] == "WalletNotReady"
    assert await d.world.submissions(operation_id) == []
    # The row says active, the chain has no account: the payment fails for good.
    async with pool.acquire() as conn:
        await wallets.mark_wallet_active(conn, d.market, d.wallet.id)
    assert await d.world.run_until_settled(operation_id) == "FAILED"
    failed = await d.world.operation(operation_id)
    assert failed["last_error"]["reason"] == "op_no_destination"
    assert failed["last_error"]["tx_hash"]
    # No payment landed: the hold is voided, the credit stays, clearing shows the gap.
    assert await d.available("treasury:stellar") == TREASURY_FUNDS
    assert (await d.topup(topup.id)).delivered_at is None
    await d.assert_reconciled()

    async def activate(conn: asyncpg.Connection) -> str:
        operation = await start_operation(
            conn,
            STEP_REGISTRY,
            marketplace_id=d.market,
            kind=OperationKind.WALLET_ACTIVATE,
            resource_type="wallet",
            resource_id=d.wallet.id,
            payload={"wallet_id": d.wallet.id},
        )
        return operation.id

    activation = await run_in_transaction(pool, activate)
    assert await d.world.run_until_settled(activation) == "SUCCEEDED"

    async def restart(conn: asyncpg.Connection) -> str:
        operation = await restart_topup_delivery(
            conn, marketplace_id=d.market, topup_id=topup.id, actor=SYSTEM
        )
        return operation.id

    second = await run_in_transaction(pool, restart)
    assert second != operation_id
    assert await d.world.run_until_settled(second) == "SUCCEEDED"
    assert len(d.payments_to_user()) == 1
    assert d.world.usdc(d.wallet.public_key) == amount == await d.posted(f"user:{d.user_id}")
    assert (await d.topup(topup.id)).delivered_at is not None
    await d.assert_reconciled()
