"""Shared set-up of the top-up tests (no tests here): a marketplace, a user, payin reads.

Payin reads are the port's ``Payin`` values, as the Airtm client and the webhook parser hand
them over; the on-chain delivery runs in ``test_topups_delivery.py``.
"""

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import pytest

from common.ids import new_id
from flows.events import Event, events_of_resource
from flows.topups import (
    PayinApplied,
    TopUp,
    apply_payin_status,
    create_topup,
    get_topup,
    record_payin_created,
)
from flows.transitions import Actor
from ledger import AccountNotFound, get_account_by_code, run_in_transaction
from providers.airtm.port import Payin, parse_payin_status

__all__ = [
    "AIRTM",
    "API",
    "USD",
    "World",
    "make_market",
    "make_user",
    "payin_of",
    "tx",
    "types",
    "world_fixture",
]

T = TypeVar("T")
USD = 10_000_000
API = Actor(type="API_KEY", id="key_test")
AIRTM = Actor(type="PROVIDER", id="airtm")


async def make_market(conn: asyncpg.Connection) -> str:
    marketplace_id = new_id("mkt_")
    await conn.execute(
        "INSERT INTO marketplaces (id, name) VALUES ($1, $1)",
        marketplace_id,
    )
    return marketplace_id


async def make_user(conn: asyncpg.Connection, marketplace_id: str) -> str:
    user_id = new_id("usr_")
    await conn.execute(
        "INSERT INTO users (marketplace_id, id, external_user_id) VALUES ($1, $2, $2)",
        marketplace_id,
        user_id,
    )
    return user_id


async def tx(pool: asyncpg.Pool, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    return await run_in_transaction(pool, work)


def payin_of(topup: TopUp, status: str, *, fee: int = 0, reason: str | None = None) -> Payin:
    """What Airtm reports for the top-up's payin (code = top-up id)."""
    return Payin(
        id="pay_" + topup.id[-20:],
        code=topup.id,
        status=parse_payin_status(status),
        raw_status=status,
        amount_minor=topup.amount_minor,
        net_amount_minor=topup.amount_minor - fee,
        airtm_fee_minor=fee,
        description="top-up",
        confirmation_uri=f"https://shop.test/topups/{topup.id}/callback?status=confirmed",
        checkout_url=f"https://airtm.test/checkout/{topup.id}",
        failure_reason=reason,
        created_at="2026-01-12T10:00:00.000Z",
    )


class World:
    def __init__(self, pool: asyncpg.Pool, marketplace_id: str, user_id: str) -> None:
        self.pool = pool
        self.marketplace_id = marketplace_id
        self.user_id = user_id

    async def topup(self, amount_minor: int = 25 * USD, *, awaiting: bool = True) -> TopUp:
        async def create(conn: asyncpg.Connection) -> TopUp:
            return await create_topup(
                conn,
                marketplace_id=self.marketplace_id,
                user_id=self.user_id,
                amount_minor=amount_minor,
                return_url="https://shop.test/ok",
                cancel_url="https://shop.test/cancel",
                description="credits",
                metadata={"cart": "c1"},
                actor=API,
            )

        topup = await tx(self.pool, create)
        if awaiting:
            applied = await self.created(topup)
            assert applied.changed
            return applied.topup
        return topup

    async def created(self, topup: TopUp, fee: int = 0) -> PayinApplied:
        async def record(conn: asyncpg.Connection) -> PayinApplied:
            return await record_payin_created(
                conn,
                marketplace_id=self.marketplace_id,
                topup_id=topup.id,
                payin=payin_of(topup, "CREATED", fee=fee),
                actor=API,
            )

        return await tx(self.pool, record)

    async def news(
        self, topup: TopUp, status: str, *, fee: int = 0, reason: str | None = None
    ) -> PayinApplied:
        payin = payin_of(topup, status, fee=fee, reason=reason)
        return await self.apply(topup, payin)

    async def apply(self, topup: TopUp, payin: Payin) -> PayinApplied:
        async def apply(conn: asyncpg.Connection) -> PayinApplied:
            return await apply_payin_status(
                conn,
                marketplace_id=self.marketplace_id,
                topup_id=topup.id,
                payin=payin,
                actor=AIRTM,
            )

        return await tx(self.pool, apply)

    async def get(self, topup_id: str) -> TopUp:
        async with self.pool.acquire() as conn:
            return await get_topup(conn, marketplace_id=self.marketplace_id, topup_id=topup_id)

    async def events(self, resource_id: str) -> list[Event]:
        async with self.pool.acquire() as conn:
            return await events_of_resource(conn, self.marketplace_id, resource_id)

    async def posted(self, code: str) -> int:
        async with self.pool.acquire() as conn:
            try:
                account = await get_account_by_code(conn, self.marketplace_id, "USD", code)
            except AccountNotFound:
                return 0
            return account.balance.posted

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self.pool.acquire() as conn:
            return await conn.fetch(sql, *args)

    async def books_balance(self) -> None:
        assert await self.fetch("SELECT * FROM ledger_zero_sum_violations_v1()") == []


@pytest.fixture(name="world")
async def world_fixture(pool: asyncpg.Pool) -> World:
    async with pool.acquire() as conn:
        marketplace_id = await make_market(conn)
        return World(pool, marketplace_id, await make_user(conn, marketplace_id))


def types(events: list[Event]) -> list[str]:
    return [event.type for event in events]
