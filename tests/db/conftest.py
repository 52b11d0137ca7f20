"""Helpers for ledger tests: a marketplace with a few accounts on a fresh database."""

from dataclasses import dataclass

import asyncpg
import pytest

from common.ids import new_id
from ledger import AccountSpec, AccountType, Side, Transfer, TransferPhase, open_account

pytestmark = pytest.mark.db

ASSET = "USD"


@dataclass
class Books:
    """A marketplace with two bounded user accounts, an unbounded one and a foreign-asset one."""

    marketplace_id: str
    alice: str
    bob: str
    world: str
    euro: str


async def create_marketplace(conn: asyncpg.Connection, name: str | None = None) -> str:
    marketplace_id = new_id("mkt_")
    await conn.execute(
        "INSERT INTO marketplaces (id, name) VALUES ($1, $2)",
        marketplace_id,
        name or marketplace_id,
    )
    return marketplace_id


async def create_account(
    conn: asyncpg.Connection,
    marketplace_id: str,
    code: str,
    *,
    bounded: bool = True,
    asset: str = ASSET,
) -> str:
    spec = AccountSpec(
        code=code,
        type=AccountType.USER if bounded else AccountType.EXTERNAL,
        normal_side=Side.CREDIT if bounded else Side.DEBIT,
        debits_must_not_exceed_credits=bounded,
    )
    return (await open_account(conn, marketplace_id, asset, spec)).id


@pytest.fixture
async def books(pool: asyncpg.Pool) -> Books:
    async with pool.acquire() as conn:
        marketplace_id = await create_marketplace(conn)
        return Books(
            marketplace_id=marketplace_id,
            alice=await create_account(conn, marketplace_id, "user:alice"),
            bob=await create_account(conn, marketplace_id, "user:bob"),
            world=await create_account(conn, marketplace_id, "external:stellar", bounded=False),
            euro=await create_account(conn, marketplace_id, "user:euro", asset="EUR"),
        )


def transfer(
    books: Books,
    debit: str,
    credit: str,
    amount: int | None,
    *,
    phase: TransferPhase = TransferPhase.SINGLE,
    **fields: object,
) -> Transfer:
    return Transfer(
        id=str(fields.pop("id", new_id("trf_"))),
        marketplace_id=books.marketplace_id,
        code=str(fields.pop("code", "deposit")),
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        asset=str(fields.pop("asset", ASSET)),
        phase=phase,
        **fields,  # type: ignore[arg-type]
    )


def resolve(
    books: Books, pending_id: str, phase: TransferPhase, amount: int | None = None, **fields: object
) -> Transfer:
    return Transfer(
        id=str(fields.pop("id", new_id("trf_"))),
        marketplace_id=books.marketplace_id,
        code="order_reserve",
        phase=phase,
        pending_id=pending_id,
        amount=amount,
        **fields,  # type: ignore[arg-type]
    )
