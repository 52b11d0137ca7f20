"""Balances from the ledger alone (api.md 3.4 / 4) and the audited admin adjustment."""

from dataclasses import dataclass
from datetime import datetime

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import InsufficientFunds, UserNotFound, ValidationFailed
from common.ids import new_id
from flows.balances import AdjustmentRecord, BalanceView, adjust_balance, get_balance
from flows.events import events_of_resource
from flows.transitions import Actor
from flows.users import create_user
from ledger import (
    Transfer,
    TransferPhase,
    TransferResult,
    balance,
    create_transfers,
    escrow_account,
    get_account_by_code,
    open_account,
    run_in_transaction,
    system_account,
    user_account,
)
from providers.stellar.wallet_keys import MasterKeyring
from tests.db.conftest import create_marketplace

pytestmark = pytest.mark.db

KEYRING = MasterKeyring({1: bytes(range(32))})
ACTOR = Actor(type="API_KEY", id="key_" + "k" * 32)
USD = "USD"
ONE = 10_000_000  # 1.00 in minor units


@dataclass
class Setup:
    marketplace_id: str
    user_id: str
    user_account: str
    world: str
    escrow: str


async def _setup(pool: asyncpg.Pool) -> Setup:
    async def work(conn: asyncpg.Connection) -> Setup:
        marketplace_id = await create_marketplace(conn)
        user, _ = await create_user(
            conn,
            KEYRING,
            marketplace_id=marketplace_id,
            external_user_id="buyer",
            actor=ACTOR,
        )
        account = await open_account(conn, marketplace_id, USD, user_account(user.id))
        world = await open_account(conn, marketplace_id, USD, system_account("external:stellar"))
        escrow = await open_account(conn, marketplace_id, USD, escrow_account(new_id("ord_")))
        return Setup(marketplace_id, user.id, account.id, world.id, escrow.id)

    return await run_in_transaction(pool, work)


@pytest.fixture(name="setup")
async def setup_fixture(pool: asyncpg.Pool) -> Setup:
    return await _setup(pool)


async def _post(pool: asyncpg.Pool, transfer: Transfer) -> TransferResult:
    async with pool.acquire() as conn, conn.transaction():
        [outcome] = await create_transfers(conn, [transfer])
    return outcome.result


def _move(
    setup: Setup, debit: str, credit: str, amount: int, phase: TransferPhase, code: str
) -> Transfer:
    return Transfer(
        id=new_id("trf_"),
        marketplace_id=setup.marketplace_id,
        code=code,
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        asset=USD,
        phase=phase,
    )


def _deposit(setup: Setup, amount: int) -> Transfer:
    return _move(setup, setup.world, setup.user_account, amount, TransferPhase.SINGLE, "deposit")


def _reserve(setup: Setup, amount: int) -> Transfer:
    return _move(
        setup, setup.user_account, setup.escrow, amount, TransferPhase.PENDING, "order_reserve"
    )


def _resolve(setup: Setup, pending_id: str, phase: TransferPhase) -> Transfer:
    return Transfer(
        id=new_id("trf_"),
        marketplace_id=setup.marketplace_id,
        code="order_fund" if phase is TransferPhase.POST_PENDING else "order_cancel",
        phase=phase,
        pending_id=pending_id,
    )


async def _balance(pool: asyncpg.Pool, setup: Setup, as_of: datetime | None = None) -> BalanceView:
    async with pool.acquire() as conn:
        return await get_balance(
            conn, marketplace_id=setup.marketplace_id, user_id=setup.user_id, as_of=as_of
        )


async def _now(pool: asyncpg.Pool) -> datetime:
    async with pool.acquire() as conn:
        moment: datetime = await conn.fetchval("SELECT clock_timestamp()")
        return moment


async def _triple(pool: asyncpg.Pool, setup: Setup, as_of: datetime | None = None) -> tuple:
    view = await _balance(pool, setup, as_of)
    return view.available, view.reserved, view.total


async def _last_transfer_at(pool: asyncpg.Pool, setup: Setup) -> datetime:
    async with pool.acquire() as conn:
        moment: datetime = await conn.fetchval(
            "SELECT max(created_at) FROM ledger_transfers WHERE marketplace_id = $1",
            setup.marketplace_id,
        )
        return moment


async def test_a_user_without_postings_has_zeros(pool: asyncpg.Pool, setup: Setup) -> None:
    view = await _balance(pool, setup)
    async with pool.acquire() as conn:
        account = await get_account_by_code(
            conn, setup.marketplace_id, USD, f"user:{setup.user_id}"
        )
    assert view == BalanceView(
        user_id=setup.user_id,
        currency="USD",
        available=0,
        reserved=0,
        total=0,
        pending_deposits=0,
        as_of=None,
        updated_at=account.created_at,
    )
    async with pool.acquire() as conn:
        with pytest.raises(UserNotFound) as missing:
            await get_balance(conn, marketplace_id=setup.marketplace_id, user_id=new_id("usr_"))
    assert missing.value.details == {"field": "user_id"}


async def test_deposit_reserve_post_and_void_follow_the_definitions(
    pool: asyncpg.Pool, setup: Setup
) -> None:
    assert await _post(pool, _deposit(setup, 100 * ONE)) is TransferResult.OK
    after_deposit = await _now(pool)
    assert await _triple(pool, setup) == (100 * ONE, 0, 100 * ONE)
    first, second = _reserve(setup, 30 * ONE), _reserve(setup, 20 * ONE)
    assert await _post(pool, first) is TransferResult.OK
    assert await _post(pool, second) is TransferResult.OK
    after_reserves = await _now(pool)
    # Reserved money leaves available but stays in total.
    assert await _triple(pool, setup) == (50 * ONE, 50 * ONE, 100 * ONE)
    # A reservation above available is refused by the ledger bound.
    assert await _post(pool, _reserve(setup, 51 * ONE)) is TransferResult.EXCEEDS_CREDITS
    assert await _post(pool, _resolve(setup, first.id, TransferPhase.POST_PENDING)) is (
        TransferResult.OK
    )
    after_post = await _now(pool)
    # Posting moves the hold out of the account: total drops, available does not.
    assert await _triple(pool, setup) == (50 * ONE, 20 * ONE, 70 * ONE)
    assert await _post(pool, _resolve(setup, second.id, TransferPhase.VOID_PENDING)) is (
        TransferResult.OK
    )
    # Voiding returns the hold to available.
    view = await _balance(pool, setup)
    assert (view.available, view.reserved, view.total) == (70 * ONE, 0, 70 * ONE)
    assert view.updated_at == await _last_transfer_at(pool, setup)
    # The same numbers as of each earlier moment, from the history rows.
    assert await _triple(pool, setup, after_deposit) == (100 * ONE, 0, 100 * ONE)
    assert await _triple(pool, setup, after_reserves) == (50 * ONE, 50 * ONE, 100 * ONE)
    assert await _triple(pool, setup, after_post) == (50 * ONE, 20 * ONE, 70 * ONE)
    past = await _balance(pool, setup, after_deposit)
    assert past.as_of == after_deposit
    assert past.updated_at <= after_deposit


async def _adjust(pool: asyncpg.Pool, setup: Setup, **fields: object) -> AdjustmentRecord:
    async def work(conn: asyncpg.Connection) -> AdjustmentRecord:
        return await adjust_balance(
            conn,
            marketplace_id=setup.marketplace_id,
            user_id=str(fields.pop("user_id", setup.user_id)),
            actor=ACTOR,
            **fields,  # type: ignore[arg-type]
        )

    return await run_in_transaction(pool, work)


async def test_credit_adjustment_posts_one_transfer_and_emits_balance_credited(
    pool: asyncpg.Pool, setup: Setup
) -> None:
    record = await _adjust(
        pool, setup, direction="CREDIT", amount=12 * ONE + 5, reason="goodwill", reference="T-1"
    )
    assert record.id.startswith("trf_")
    assert (record.direction, record.amount, record.currency, record.counter_account) == (
        "CREDIT",
        12 * ONE + 5,
        "USD",
        "fees:platform",
    )
    assert (record.reason, record.reference, record.created_by) == ("goodwill", "T-1", ACTOR.id)
    assert (record.balance.available, record.balance.reserved, record.balance.total) == (
        12 * ONE + 5,
        0,
        12 * ONE + 5,
    )
    assert record.balance == await _balance(pool, setup)
    assert record.created_at == record.balance.updated_at
    async with pool.acquire() as conn:
        transfer = await conn.fetchrow(
            "SELECT t.code, t.phase::text, t.amount, t.user_id, t.external_ref, t.description,"
            " d.code AS debit, c.code AS credit"
            " FROM ledger_transfers t"
            " JOIN ledger_accounts d ON d.marketplace_id = t.marketplace_id"
            "   AND d.id = t.debit_account_id"
            " JOIN ledger_accounts c ON c.marketplace_id = t.marketplace_id"
            "   AND c.id = t.credit_account_id"
            " WHERE t.marketplace_id = $1",
            setup.marketplace_id,
        )
        fees = await get_account_by_code(conn, setup.marketplace_id, USD, "fees:platform")
        events = await events_of_resource(conn, setup.marketplace_id, setup.user_id)
    assert dict(transfer or {}) == {
        "code": "adjustment",
        "phase": "SINGLE",
        "amount": 12 * ONE + 5,
        "user_id": setup.user_id,
        "external_ref": "T-1",
        "description": "goodwill",
        "debit": "fees:platform",
        "credit": f"user:{setup.user_id}",
    }
    assert fees.balance.posted == -(12 * ONE + 5)
    assert events[-1].type == "balance.credited"
    assert events[-1].resource_type == "balance"
    assert events[-1].data == {
        "user_id": setup.user_id,
        "amount": "12.0000005",
        "currency": "USD",
        "source": "adjustment",
        "source_id": record.id,
        "transfer_id": record.id,
        "transaction_hash": None,
        "available": "12.0000005",
        "reserved": "0.00",
    }


async def test_debit_adjustment_is_limited_by_available_and_emits_balance_debited(
    pool: asyncpg.Pool, setup: Setup
) -> None:
    await _post(pool, _deposit(setup, 100 * ONE))
    await _post(pool, _reserve(setup, 30 * ONE))
    record = await _adjust(
        pool,
        setup,
        direction="DEBIT",
        amount=20 * ONE,
        reason="chargeback",
        counter_account="external:airtm",
    )
    assert (record.balance.available, record.balance.reserved, record.balance.total) == (
        50 * ONE,
        30 * ONE,
        80 * ONE,
    )
    async with pool.acquire() as conn:
        airtm = await get_account_by_code(conn, setup.marketplace_id, USD, "external:airtm")
        events = await events_of_resource(conn, setup.marketplace_id, setup.user_id)
    assert airtm.balance.posted == -20 * ONE  # debit-normal: money went out to the world
    assert events[-1].type == "balance.debited"
    assert events[-1].data == {
        "user_id": setup.user_id,
        "amount": "20.00",
        "currency": "USD",
        "destination": "adjustment",
        "destination_id": record.id,
        "transfer_id": record.id,
        "available": "50.00",
        "reserved": "30.00",
    }


async def _footprint(pool: asyncpg.Pool, marketplace_id: str) -> tuple[int, int, int]:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM ledger_transfers WHERE marketplace_id = $1),"
            " (SELECT count(*) FROM events WHERE marketplace_id = $1),"
            " (SELECT count(*) FROM ledger_accounts WHERE marketplace_id = $1)",
            marketplace_id,
        )
        assert row is not None
        return tuple(row.values())  # type: ignore[return-value]


async def test_debit_beyond_available_is_refused_and_writes_nothing(
    pool: asyncpg.Pool, setup: Setup
) -> None:
    await _post(pool, _deposit(setup, 100 * ONE))
    await _post(pool, _reserve(setup, 30 * ONE))
    before = await _footprint(pool, setup.marketplace_id)
    with pytest.raises(InsufficientFunds) as refused:
        # Within total (100) but above available (70); the counter account would be new.
        await _adjust(
            pool,
            setup,
            direction="DEBIT",
            amount=70 * ONE + 1,
            reason="too much",
            counter_account="external:airtm",
        )
    assert refused.value.details == {
        "user_id": setup.user_id,
        "available": "70.00",
        "requested": "70.0000001",
        "currency": "USD",
    }
    assert await _footprint(pool, setup.marketplace_id) == before
    assert await _triple(pool, setup) == (70 * ONE, 30 * ONE, 100 * ONE)
    # Exactly the available amount is fine.
    record = await _adjust(pool, setup, direction="DEBIT", amount=70 * ONE, reason="all of it")
    assert (record.balance.available, record.balance.reserved) == (0, 30 * ONE)


async def test_adjustment_arguments_are_checked(pool: asyncpg.Pool, setup: Setup) -> None:
    with pytest.raises(UserNotFound):
        await _adjust(
            pool, setup, user_id=new_id("usr_"), direction="CREDIT", amount=ONE, reason="x"
        )
    with pytest.raises(ValidationFailed) as refused:
        await _adjust(
            pool,
            setup,
            direction="SIDEWAYS",
            amount=ONE,
            reason="",
            counter_account="treasury:stellar",
        )
    assert [f["field"] for f in refused.value.details["fields"]] == [
        "direction",
        "reason",
        "counter_account",
    ]
    assert await _footprint(pool, setup.marketplace_id) == (0, 2, 3)


# One step of the property: (kind, amount in whole units, which open reservation to resolve).
steps = st.lists(
    st.tuples(
        st.sampled_from(["credit", "debit", "reserve", "post", "void"]),
        st.integers(1, 60),
        st.integers(0, 10),
    ),
    min_size=1,
    max_size=20,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=steps)
async def test_balance_identities_hold_for_any_sequence(
    pool: asyncpg.Pool, plan: list[tuple[str, int, int]]
) -> None:
    setup = await _setup(pool)  # a new marketplace per example: fixtures are not reset
    credits = debits = 0
    open_holds: dict[str, int] = {}
    for kind, units, pick in plan:
        amount = units * ONE
        available = credits - debits - sum(open_holds.values())
        if kind in ("credit", "debit"):
            direction = "CREDIT" if kind == "credit" else "DEBIT"
            try:
                await _adjust(pool, setup, direction=direction, amount=amount, reason=kind)
            except InsufficientFunds:
                assert kind == "debit"
                assert amount > available
            else:
                assert kind == "credit" or amount <= available
                credits += amount if kind == "credit" else 0
                debits += amount if kind == "debit" else 0
        elif kind == "reserve":
            reserve = _reserve(setup, amount)
            result = await _post(pool, reserve)
            assert (result is TransferResult.OK) == (amount <= available)
            if result is TransferResult.OK:
                open_holds[reserve.id] = amount
        elif open_holds:
            pending_id = sorted(open_holds)[pick % len(open_holds)]
            phase = TransferPhase.POST_PENDING if kind == "post" else TransferPhase.VOID_PENDING
            assert await _post(pool, _resolve(setup, pending_id, phase)) is TransferResult.OK
            held = open_holds.pop(pending_id)
            debits += held if kind == "post" else 0
        view = await _balance(pool, setup)
        pending = sum(open_holds.values())
        assert view.available == credits - debits - pending
        assert view.reserved == pending
        assert view.total == view.available + view.reserved
        assert view.available >= 0
        assert view.reserved >= 0
    async with pool.acquire() as conn:
        counters = await balance(conn, setup.marketplace_id, setup.user_account)
    assert counters.posted == credits - debits
