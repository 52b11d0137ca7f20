import asyncpg

from ledger import TransferPhase, TransferResult, balance, create_transfers
from tests.db.conftest import Books, resolve, transfer


async def test_deposit_reserve_post(pool: asyncpg.Pool, books: Books) -> None:
    async with pool.acquire() as conn, conn.transaction():
        deposit = transfer(books, books.world, books.alice, 100)
        hold = transfer(books, books.alice, books.bob, 60, phase=TransferPhase.PENDING)
        outcomes = await create_transfers(conn, [deposit, hold])
        assert [o.result for o in outcomes] == [TransferResult.OK, TransferResult.OK]
    async with pool.acquire() as conn, conn.transaction():
        post = resolve(books, hold.id, TransferPhase.POST_PENDING, 45)
        outcomes = await create_transfers(conn, [post])
        assert outcomes[0].result is TransferResult.OK
        alice = await balance(conn, books.marketplace_id, books.alice)
        bob = await balance(conn, books.marketplace_id, books.bob)
    assert (alice.posted, alice.reserved, alice.available) == (55, 0, 55)
    assert (bob.posted, bob.incoming) == (45, 0)
