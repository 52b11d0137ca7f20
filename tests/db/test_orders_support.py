"""Shared set-up of the order and dispute tests (no tests here).

A marketplace (platform fee 5 %), users with wallets and ledger balances, and a *fake chain*:
one step per escrow operation kind that ends at once with the payload the real steps leave
(contract id, tx hashes, and the payout ``transfers`` computed with the contract's fee math
of ``providers/trustless_work/fees.py``), or fails when told to. A real ``OperationWorker``
runs those steps and calls the real order hooks in the transaction that ends each operation.
"""

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import asyncpg
from stellar_sdk import Keypair

from common.ids import new_id
from flows.events import Event
from flows.operations import (
    OperationDeps,
    OperationWorker,
    Registry,
    Step,
    StepDone,
    StepFailed,
    StepOutcome,
    StepRun,
)
from flows.order_escrow import start_escrow_create, start_escrow_fund
from flows.order_settlement import EscrowAddresses
from flows.orders import MilestoneInput, create_order, order_hooks, reserve_order
from flows.queries.operations import Operation, OperationKind
from flows.queries.wallets import insert_wallet, mark_wallet_active
from flows.transitions import Actor
from ledger import (
    AccountBalance,
    Transfer,
    create_transfers,
    get_account_by_code,
    open_account,
    run_in_transaction,
    system_account,
    user_account,
)
from providers.stellar.wallet_keys import MasterKeyring, SecretSeed, generate_wallet_keys
from providers.trustless_work.fees import distribution_split, release_split

USDC = 10_000_000
FEE_BPS = 500
ASSET = "USD"
ACTOR = Actor(type="API_KEY", id="key_" + "t" * 32)
SUPPORT = Actor(type="API_KEY", id="key_" + "s" * 32)
KEYRING = MasterKeyring({1: bytes(range(32))})
ESCROW_KINDS = (
    OperationKind.ESCROW_CREATE,
    OperationKind.ESCROW_FUND,
    OperationKind.RELEASE,
    OperationKind.REFUND,
    OperationKind.DISPUTE_RESOLVE,
)
T = TypeVar("T")


def _hash() -> str:
    return secrets.token_hex(32)


def _contract_id() -> str:
    return "C" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(55))


@dataclass
class FakeChain:
    """Escrow steps that succeed at once with a realistic payload, or fail when told to."""

    addresses: EscrowAddresses
    wallets: dict[str, str] = field(default_factory=dict)  # wallet id -> public key
    amounts: dict[str, int] = field(default_factory=dict)  # contract id -> escrowed amount
    failures: dict[OperationKind, dict[str, Any]] = field(default_factory=dict)
    fee_bps: int = FEE_BPS

    def registry(self) -> Registry:
        return {kind: (Step("fake_chain", self._step),) for kind in ESCROW_KINDS}

    async def _step(self, run: StepRun) -> StepOutcome:
        claim = run.claim
        failure = self.failures.get(claim.kind)
        if failure is not None:
            return StepFailed(error=failure)
        return StepDone(payload_patch=self.patch(claim))

    def _payout(self, paid: dict[str, int], address: str, amount: int) -> None:
        if amount:
            paid[address] = paid.get(address, 0) + amount

    def _transfers(self, shares: list[tuple[str, int]]) -> list[dict[str, Any]]:
        """What the contract pays for gross ``shares`` (providers.md 1.7)."""
        split = distribution_split([a for _, a in shares], platform_fee_bps=self.fee_bps)
        paid: dict[str, int] = {}
        for (address, _), share in zip(shares, split.recipients, strict=True):
            self._payout(paid, address, share.net_minor)
        self._payout(paid, self.addresses.platform, split.platform_minor)
        self._payout(paid, self.addresses.trustless_work_fee, split.trustless_work_minor)
        return [{"to": a, "amount_minor": n} for a, n in paid.items()]

    def patch(self, claim: Operation) -> dict[str, Any]:
        payload = claim.payload
        if claim.kind is OperationKind.ESCROW_CREATE:
            contract_id = _contract_id()
            self.amounts[contract_id] = payload["amount_minor"]
            return {"contract_id": contract_id, "deploy_tx_hash": _hash()}
        if claim.kind is OperationKind.ESCROW_FUND:
            return {"fund_tx_hash": _hash()}
        amount = self.amounts[payload["contract_id"]]
        buyer = self.wallets[payload["buyer_wallet_id"]]
        if claim.kind is OperationKind.RELEASE:
            seller = self.wallets[payload["seller_wallet_id"]]
            split = release_split(amount, platform_fee_bps=self.fee_bps)
            paid = {
                seller: split.net_minor,
                self.addresses.platform: split.platform_minor,
                self.addresses.trustless_work_fee: split.trustless_work_minor,
            }
            transfers = [{"to": a, "amount_minor": n} for a, n in paid.items()]
            return {"release_tx_hash": _hash(), "transfers": transfers}
        if claim.kind is OperationKind.REFUND:
            return {"resolve_tx_hash": _hash(), "transfers": self._transfers([(buyer, amount)])}
        seller = self.wallets[payload["seller_wallet_id"]]
        shares = [
            (seller, payload["release_amount_minor"]),
            (buyer, payload["refund_amount_minor"]),
        ]
        return {
            "resolve_tx_hash": _hash(),
            "transfers": self._transfers([(a, n) for a, n in shares if n > 0]),
        }


@dataclass
class Shop:
    """A marketplace with a fake chain, a worker over it and helpers to read the books."""

    pool: asyncpg.Pool
    marketplace_id: str
    chain: FakeChain

    async def tx(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        return await run_in_transaction(self.pool, work)

    async def call(self, function: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run a flow function in its own transaction with this marketplace."""

        async def work(conn: asyncpg.Connection) -> T:
            return await function(conn, *args, marketplace_id=self.marketplace_id, **kwargs)

        return await self.tx(work)

    async def user(self, *, usdc: int = 0, active: bool = True, wallet: bool = True) -> str:
        """A user with (by default) an active wallet and ``usdc`` stroops available."""
        user_id = new_id("usr_")
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO users (marketplace_id, id, external_user_id) VALUES ($1, $2, $3)",
                self.marketplace_id,
                user_id,
                user_id,
            )
            account = await open_account(conn, self.marketplace_id, ASSET, user_account(user_id))
            if wallet:
                wallet_id = new_id("wal_")
                keys = generate_wallet_keys(
                    KEYRING, marketplace_id=self.marketplace_id, wallet_id=wallet_id
                )
                await insert_wallet(
                    conn,
                    marketplace_id=self.marketplace_id,
                    wallet_id=wallet_id,
                    user_id=user_id,
                    public_key=keys.public_key,
                    sealed_secret=keys.sealed.text,
                    key_version=keys.sealed.key_version,
                )
                if active:
                    await mark_wallet_active(conn, self.marketplace_id, wallet_id)
                self.chain.wallets[wallet_id] = keys.public_key
            if usdc:
                world = await open_account(
                    conn, self.marketplace_id, ASSET, system_account("external:stellar")
                )
                await create_transfers(
                    conn,
                    [
                        Transfer(
                            id=new_id("trf_"),
                            marketplace_id=self.marketplace_id,
                            code="deposit",
                            debit_account_id=world.id,
                            credit_account_id=account.id,
                            amount=usdc,
                            asset=ASSET,
                        )
                    ],
                )
        return user_id

    async def activate(self, user_id: str) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                "UPDATE wallets SET funded = true, trustline_ready = true, is_active = true "
                "WHERE marketplace_id = $1 AND user_id = $2",
                self.marketplace_id,
                user_id,
            )

    def worker(self) -> OperationWorker:
        platform = Keypair.random()
        # The fake steps touch no provider: the provider deps are inert stand-ins.
        deps = OperationDeps(
            network=cast(Any, None),
            keyring=KEYRING,
            platform_seed=SecretSeed.from_keypair(platform),
            chain_now_s=cast(Any, None),
            passphrase="fake chain",
            usdc_issuer=platform.public_key,
        )
        return OperationWorker(
            self.pool, deps, self.chain.registry(), hooks=order_hooks(self.chain.addresses)
        )

    async def settle(self) -> int:
        """Run every due operation to its end; returns how many were claimed."""
        return await self.worker().run_once(limit=50)

    async def balance(self, code: str) -> AccountBalance:
        async with self.pool.acquire() as conn:
            account = await get_account_by_code(conn, self.marketplace_id, ASSET, code)
            return account.balance

    async def events(self, after: int = 0) -> list[Event]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT id, sequence, type, occurred_at, marketplace_id, resource_type, "
                "resource_id, data FROM events WHERE marketplace_id = $1 AND sequence > $2 "
                "ORDER BY sequence",
                self.marketplace_id,
                after,
            )
            return [Event(**dict(row)) for row in rows]

    async def last_sequence(self) -> int:
        async with self.pool.acquire() as conn:
            value = await conn.fetchval("SELECT coalesce(max(sequence), 0) FROM events")
            return int(value)

    async def zero_sum_violations(self) -> list[Any]:
        async with self.pool.acquire() as conn:
            return list(await conn.fetch("SELECT * FROM ledger_zero_sum_violations_v1()"))


async def make_shop(pool: asyncpg.Pool, *, fee_bps: int = FEE_BPS) -> Shop:
    marketplace_id = new_id("mkt_")
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO marketplaces (id, name, platform_fee_bps) VALUES ($1, $1, $2)",
            marketplace_id,
            fee_bps,
        )
    addresses = EscrowAddresses(
        platform=Keypair.random().public_key, trustless_work_fee=Keypair.random().public_key
    )
    return Shop(
        pool=pool, marketplace_id=marketplace_id, chain=FakeChain(addresses, fee_bps=fee_bps)
    )


@dataclass
class Deal:
    """An order between a buyer and a seller of one shop."""

    shop: Shop
    buyer: str
    seller: str
    order_id: str


async def make_deal(
    shop: Shop,
    *,
    amount: int = 80 * USDC,
    buyer_usdc: int = 100 * USDC,
    milestones: list[tuple[str, int]] | None = None,
) -> Deal:
    """A created order (milestones given as ``(ref, amount)``)."""
    buyer = await shop.user(usdc=buyer_usdc)
    seller = await shop.user()
    inputs = None
    if milestones is not None:
        inputs = [
            MilestoneInput(milestone_ref=ref, title=f"Part {ref}", amount_minor=n)
            for ref, n in milestones
        ]
    order = await shop.call(
        create_order,
        actor=ACTOR,
        buyer_id=buyer,
        seller_id=seller,
        amount_minor=amount,
        title="Logo design",
        milestones=inputs,
    )
    return Deal(shop=shop, buyer=buyer, seller=seller, order_id=order.id)


async def fund_deal(deal: Deal) -> None:
    """Reserve, deploy and fund: the order ends IN_PROGRESS."""
    shop = deal.shop
    registry = shop.chain.registry()
    await shop.call(reserve_order, actor=ACTOR, order_id=deal.order_id)
    await shop.call(start_escrow_create, registry, actor=ACTOR, order_id=deal.order_id)
    await shop.settle()
    await shop.call(start_escrow_fund, registry, actor=ACTOR, order_id=deal.order_id)
    await shop.settle()
