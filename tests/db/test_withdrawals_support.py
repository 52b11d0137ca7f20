"""Shared set-up of the withdrawal tests (no tests here).

A marketplace with users inserted directly and funded by one ``external:stellar -> user``
deposit; wallets inserted active or not; a fake step registry whose steps return what the test
sets, run by a real :class:`OperationWorker` with the withdrawal hooks.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, cast

import asyncpg
from stellar_sdk import Keypair

from common.ids import new_id
from flows.events import Event, events_of_resource
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
from flows.queries import wallets
from flows.queries.operations import OperationKind
from flows.transitions import Actor
from flows.withdrawals import withdrawal_hooks
from ledger import (
    AccountBalance,
    AccountNotFound,
    Transfer,
    TransferResult,
    create_transfers,
    get_account_by_code,
    open_account,
    system_account,
    user_account,
)
from providers.stellar.port import WalletNetwork
from providers.stellar.wallet_keys import MasterKeyring, SecretSeed

USD = 10_000_000
CURRENCY = "USD"
ACTOR = Actor(type="API_KEY", id="key_test", request_id="req_1")
PROVIDER = Actor(type="PROVIDER", id="airtm")
TX_HASH = "ab" * 32


Outcome = Callable[[dict[str, Any]], StepOutcome]


def done(**patch: Any) -> Outcome:
    """A step that finishes, merging ``patch`` into the payload."""
    return lambda payload: StepDone(payload_patch=patch)


def payout(status: str, **extra: Any) -> Outcome:
    """An AIRTM_PAYOUT that ended on ``status`` (payout id unique per withdrawal)."""
    return lambda payload: StepDone(
        payload_patch={"payout_id": "po_" + payload["withdrawal_id"], "payout_status": status}
        | extra
    )


def failed(**error: Any) -> Outcome:
    """A step refused for good with ``error`` as the operation's last_error."""
    return lambda payload: StepFailed(error=error)


@dataclass
class FakeSteps:
    """One step per withdrawal kind; each returns the outcome the test put in ``outcomes``."""

    outcomes: dict[OperationKind, Outcome] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)

    async def _run(self, run: StepRun) -> StepOutcome:
        self.runs.append(dict(run.claim.payload))
        return self.outcomes[run.claim.kind](run.claim.payload)

    @property
    def registry(self) -> Registry:
        return MappingProxyType(
            {
                OperationKind.WITHDRAWAL_PAYMENT: (Step("pay", self._run),),
                OperationKind.AIRTM_PAYOUT: (Step("create_payout", self._run),),
            }
        )


@dataclass
class User:
    id: str
    public_key: str | None


@dataclass
class Shop:
    """A marketplace, its fake steps, and readers of balances, events and rows."""

    pool: asyncpg.Pool
    marketplace_id: str
    steps: FakeSteps

    async def user(
        self,
        *,
        funded: int = 0,
        wallet: bool = True,
        active: bool = True,
        airtm_email: str | None = None,
    ) -> User:
        """A user row, optionally with a wallet, an Airtm link and a deposit of ``funded``."""
        user_id = new_id("usr_")
        public_key = Keypair.random().public_key if wallet else None
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO users (marketplace_id, id, external_user_id, airtm_user_id,"
                " airtm_email, airtm_linked_at) VALUES ($1, $2, $3, $4, $5,"
                " CASE WHEN $4::text IS NULL THEN NULL ELSE now() END)",
                self.marketplace_id,
                user_id,
                user_id,
                "airtm_" + user_id if airtm_email else None,
                airtm_email,
            )
            if public_key is not None:
                wallet_id = new_id("wal_")
                await wallets.insert_wallet(
                    conn,
                    marketplace_id=self.marketplace_id,
                    wallet_id=wallet_id,
                    user_id=user_id,
                    public_key=public_key,
                    sealed_secret="v1:sealed",
                    key_version=1,
                )
                if active:
                    await wallets.mark_wallet_active(conn, self.marketplace_id, wallet_id)
            if funded:
                await self._deposit(conn, user_id, funded)
        return User(id=user_id, public_key=public_key)

    async def _deposit(self, conn: asyncpg.Connection, user_id: str, amount: int) -> None:
        world = await open_account(
            conn, self.marketplace_id, CURRENCY, system_account("external:stellar")
        )
        user = await open_account(conn, self.marketplace_id, CURRENCY, user_account(user_id))
        [outcome] = await create_transfers(
            conn,
            [
                Transfer(
                    id=new_id("trf_"),
                    marketplace_id=self.marketplace_id,
                    code="deposit",
                    debit_account_id=world.id,
                    credit_account_id=user.id,
                    amount=amount,
                    asset=CURRENCY,
                    user_id=user_id,
                )
            ],
        )
        assert outcome.result is TransferResult.OK

    async def balance(self, code: str) -> AccountBalance:
        """An account's balances (zeros when never opened)."""
        async with self.pool.acquire() as conn:
            try:
                account = await get_account_by_code(conn, self.marketplace_id, CURRENCY, code)
            except AccountNotFound:
                return AccountBalance(posted=0, reserved=0, available=0, incoming=0)
            return account.balance

    async def counters(self, code: str) -> tuple[int, int, int, int]:
        """(debits_pending, debits_posted, credits_pending, credits_posted) of an account."""
        async with self.pool.acquire() as conn:
            account = await get_account_by_code(conn, self.marketplace_id, CURRENCY, code)
            return (
                account.debits_pending,
                account.debits_posted,
                account.credits_pending,
                account.credits_posted,
            )

    async def events(self, resource_id: str) -> list[Event]:
        async with self.pool.acquire() as conn:
            return await events_of_resource(conn, self.marketplace_id, resource_id)

    async def event_types(self, resource_id: str) -> list[str]:
        return [event.type for event in await self.events(resource_id)]

    async def transitions(self, withdrawal_id: str) -> list[tuple[str, str, str]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT from_status, to_status, event FROM state_transitions"
                " WHERE marketplace_id = $1 AND resource_id = $2 ORDER BY id",
                self.marketplace_id,
                withdrawal_id,
            )
            return [(row[0], row[1], row[2]) for row in rows]

    async def transfers(self, user_id: str) -> list[dict[str, Any]]:
        """The user's withdrawal transfers, oldest first, with account codes."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT t.code, t.phase::text AS phase, t.amount, d.code AS debit,"
                " c.code AS credit, t.pending_id, t.linked_group, t.external_ref"
                " FROM ledger_transfers t"
                " JOIN ledger_accounts d ON d.marketplace_id = t.marketplace_id"
                "  AND d.id = t.debit_account_id"
                " JOIN ledger_accounts c ON c.marketplace_id = t.marketplace_id"
                "  AND c.id = t.credit_account_id"
                " WHERE t.marketplace_id = $1 AND t.user_id = $2 AND t.code <> 'deposit'"
                " ORDER BY t.sequence",
                self.marketplace_id,
                user_id,
            )
            return [dict(row) for row in rows]

    async def operation(self, operation_id: str) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM operations WHERE id = $1", operation_id)
            assert row is not None
            return dict(row)

    async def footprint(self) -> tuple[int, int, int, int]:
        """Counts of withdrawals, events, non-deposit transfers and operations."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM withdrawals),"
                " (SELECT count(*) FROM events),"
                " (SELECT count(*) FROM ledger_transfers WHERE code <> 'deposit'),"
                " (SELECT count(*) FROM operations)"
            )
            assert row is not None
            return (row[0], row[1], row[2], row[3])

    async def assert_books_balance(self) -> None:
        async with self.pool.acquire() as conn:
            assert await conn.fetch("SELECT * FROM ledger_zero_sum_violations_v1()") == []

    def worker(self) -> OperationWorker:
        """A real worker over the fake steps; provider deps are inert stand-ins."""

        async def chain_now_s() -> int:
            return 1_800_000_000

        deps = OperationDeps(
            # The fake steps call no provider.
            network=cast(WalletNetwork, object()),
            keyring=MasterKeyring({1: bytes(range(32))}),
            platform_seed=SecretSeed.from_keypair(Keypair.random()),
            chain_now_s=chain_now_s,
            passphrase="Test SDF Network ; September 2015",
            usdc_issuer=Keypair.random().public_key,
        )
        return OperationWorker(self.pool, deps, self.steps.registry, hooks=withdrawal_hooks())

    async def run_worker(self) -> int:
        """Run every due operation once."""
        return await self.worker().run_once(limit=50)


async def make_shop(pool: asyncpg.Pool) -> Shop:
    marketplace_id = new_id("mkt_")
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO marketplaces (id, name) VALUES ($1, $1)", marketplace_id)
    steps = FakeSteps(
        outcomes={
            OperationKind.WITHDRAWAL_PAYMENT: done(tx_hash=TX_HASH),
            OperationKind.AIRTM_PAYOUT: payout("CREATED"),
        }
    )
    return Shop(pool=pool, marketplace_id=marketplace_id, steps=steps)
