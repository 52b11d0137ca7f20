"""Users: idempotent creation (also concurrent), wallet + ledger account + events in one
transaction, reads, keyset listing, Airtm linking, wallet and deposit instructions."""

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from common.errors import (
    AirtmUserAlreadyLinked,
    UserNotFound,
    ValidationFailed,
    WalletNotFound,
)
from common.ids import new_id
from flows.events import events_of_resource
from flows.transitions import Actor
from flows.users import (
    UserRecord,
    create_user,
    deposit_instructions,
    get_user,
    get_user_wallet,
    link_airtm,
    list_users,
)
from ledger import AccountType, get_account_by_code, run_in_transaction
from providers.stellar.wallet_keys import MasterKeyring
from tests.db.conftest import create_marketplace
from tests.db.sandbox_world import make_world

pytestmark = pytest.mark.db

KEYRING = MasterKeyring({1: bytes(range(32))})
ACTOR = Actor(type="API_KEY", id="key_" + "k" * 32)


@pytest.fixture(name="marketplace_id")
async def marketplace_fixture(pool: asyncpg.Pool) -> str:
    async with pool.acquire() as conn:
        return await create_marketplace(conn)


async def _create(
    pool: asyncpg.Pool, marketplace_id: str, external_user_id: str, **fields: Any
) -> tuple[UserRecord, bool]:
    async def work(conn: asyncpg.Connection) -> tuple[UserRecord, bool]:
        return await create_user(
            conn,
            KEYRING,
            marketplace_id=marketplace_id,
            external_user_id=external_user_id,
            email=fields.get("email"),
            type=fields.get("type", "BOTH"),
            metadata=fields.get("metadata"),
            actor=ACTOR,
        )

    return await run_in_transaction(pool, work)


async def _counts(pool: asyncpg.Pool, marketplace_id: str) -> dict[str, int]:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            """
            SELECT
                (SELECT count(*) FROM users WHERE marketplace_id = $1) AS users,
                (SELECT count(*) FROM wallets WHERE marketplace_id = $1) AS wallets,
                (SELECT count(*) FROM operations WHERE marketplace_id = $1
                    AND kind = 'WALLET_ACTIVATE') AS operations,
                (SELECT count(*) FROM ledger_accounts WHERE marketplace_id = $1) AS accounts,
                (SELECT count(*) FROM events WHERE marketplace_id = $1
                    AND type = 'user.created') AS user_created,
                (SELECT count(*) FROM events WHERE marketplace_id = $1
                    AND type = 'wallet.created') AS wallet_created
            """,
            marketplace_id,
        )
        assert row is not None
        return dict(row)


ONE_OF_EACH = {
    "users": 1,
    "wallets": 1,
    "operations": 1,
    "accounts": 1,
    "user_created": 1,
    "wallet_created": 1,
}


async def test_new_user_gets_account_wallet_activation_and_events(
    pool: asyncpg.Pool, marketplace_id: str
) -> None:
    user, created = await _create(
        pool, marketplace_id, "ext-1", email="a@example.com", type="seller", metadata={"k": 1}
    )
    assert created
    assert user.id.startswith("usr_")
    assert (user.external_user_id, user.email, user.type, user.status) == (
        "ext-1",
        "a@example.com",
        "SELLER",
        "ACTIVE",
    )
    assert user.metadata == {"k": 1}
    assert user.airtm_user_id is None
    assert user.wallet is not None
    assert await _counts(pool, marketplace_id) == ONE_OF_EACH
    async with pool.acquire() as conn:
        account = await get_account_by_code(conn, marketplace_id, "USD", f"user:{user.id}")
        assert (account.type, account.user_id) == (AccountType.USER, user.id)
        assert account.debits_must_not_exceed_credits
        operation = await conn.fetchrow(
            "SELECT kind, status, resource_type, resource_id FROM operations"
            " WHERE marketplace_id = $1",
            marketplace_id,
        )
        assert dict(operation or {}) == {
            "kind": "WALLET_ACTIVATE",
            "status": "RUNNING",
            "resource_type": "wallet",
            "resource_id": user.wallet.id,
        }
        [user_created] = await events_of_resource(conn, marketplace_id, user.id)
        [wallet_created] = await events_of_resource(conn, marketplace_id, user.wallet.id)
        assert await get_user(conn, marketplace_id=marketplace_id, user_id=user.id) == user
    assert (user_created.type, user_created.resource_type) == ("user.created", "user")
    assert user_created.data == {
        "user_id": user.id,
        "external_user_id": "ext-1",
        "email": "a@example.com",
        "type": "SELLER",
        "status": "ACTIVE",
    }
    assert (wallet_created.type, wallet_created.resource_type) == ("wallet.created", "wallet")
    assert wallet_created.data == {
        "user_id": user.id,
        "wallet_id": user.wallet.id,
        "public_key": user.wallet.public_key,
        "provider": "STELLAR",
        "funded": False,
        "trustline_ready": False,
    }
    assert user_created.sequence < wallet_created.sequence


async def test_same_external_id_returns_the_existing_user_unchanged(
    pool: asyncpg.Pool, marketplace_id: str
) -> None:
    first, created = await _create(pool, marketplace_id, "ext-1", email="a@example.com")
    again, created_again = await _create(
        pool, marketplace_id, "ext-1", email="other@example.com", type="BUYER", metadata={"x": 1}
    )
    assert (created, created_again) == (True, False)
    assert again == first
    assert await _counts(pool, marketplace_id) == ONE_OF_EACH
    # Another marketplace may use the same external id for its own user.
    async with pool.acquire() as conn:
        other_marketplace = await create_marketplace(conn)
    other, created_other = await _create(pool, other_marketplace, "ext-1")
    assert created_other
    assert other.id != first.id


async def test_concurrent_creates_make_one_user_one_wallet_one_activation(
    pool: asyncpg.Pool, marketplace_id: str
) -> None:
    tasks = 10
    barrier = asyncio.Barrier(tasks)

    async def attempt() -> tuple[UserRecord, bool]:
        # Each task holds its own connection and transaction, and all insert at once.
        async with pool.acquire() as conn, conn.transaction():
            await barrier.wait()
            return await create_user(
                conn,
                KEYRING,
                marketplace_id=marketplace_id,
                external_user_id="same",
                email=None,
                type="BOTH",
                metadata=None,
                actor=ACTOR,
            )

    results = await asyncio.gather(*(attempt() for _ in range(tasks)))
    assert sorted(created for _, created in results) == [False] * (tasks - 1) + [True]
    assert len({user.id for user, _ in results}) == 1
    # The losers read the winner's committed row, wallet included.
    assert len({user for user, _ in results}) == 1
    assert await _counts(pool, marketplace_id) == ONE_OF_EACH


async def test_rolled_back_creation_leaves_no_user_and_no_event(
    pool: asyncpg.Pool, marketplace_id: str
) -> None:
    class Abort(Exception):
        pass

    async def create_then_fail() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await create_user(
                conn,
                KEYRING,
                marketplace_id=marketplace_id,
                external_user_id="ext-1",
                email=None,
                type="BOTH",
                metadata=None,
                actor=ACTOR,
            )
            assert (await _counts(pool, marketplace_id))["users"] == 0  # not visible outside
            raise Abort

    with pytest.raises(Abort):
        await create_then_fail()
    zero = dict.fromkeys(ONE_OF_EACH, 0)
    assert await _counts(pool, marketplace_id) == zero
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events") == 0
    # The external id is free again.
    _, created = await _create(pool, marketplace_id, "ext-1")
    assert created


async def test_bad_type_and_unknown_user_are_refused(
    pool: asyncpg.Pool, marketplace_id: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await _create(pool, marketplace_id, "ext-1", type="ADMIN")
    assert refused.value.details == {
        "fields": [{"field": "type", "message": "must be BUYER, SELLER or BOTH"}]
    }
    async with pool.acquire() as conn:
        with pytest.raises(UserNotFound) as missing:
            await get_user(conn, marketplace_id=marketplace_id, user_id=new_id("usr_"))
        assert missing.value.details == {"field": "user_id"}
        with pytest.raises(UserNotFound) as missing:
            await get_user(
                conn, marketplace_id=marketplace_id, user_id=new_id("usr_"), field="buyer_id"
            )
        assert missing.value.details == {"field": "buyer_id"}
    user, _ = await _create(pool, marketplace_id, "ext-1")
    async with pool.acquire() as conn:
        other_marketplace = await create_marketplace(conn)
        with pytest.raises(UserNotFound):  # tenancy: invisible from another marketplace
            await get_user(conn, marketplace_id=other_marketplace, user_id=user.id)


async def test_list_pages_newest_first_with_keyset_and_filters(
    pool: asyncpg.Pool, marketplace_id: str
) -> None:
    users = [
        (await _create(pool, marketplace_id, f"solo-{n}", type=kind))[0]
        for n, kind in enumerate(["BUYER", "SELLER"])
    ]

    async def three_at_once(conn: asyncpg.Connection) -> list[UserRecord]:
        # One transaction: equal created_at, so the id decides the order.
        return [
            (
                await create_user(
                    conn,
                    KEYRING,
                    marketplace_id=marketplace_id,
                    external_user_id=f"batch-{n}",
                    type="BOTH",
                    actor=ACTOR,
                )
            )[0]
            for n in range(3)
        ]

    users += await run_in_transaction(pool, three_at_once)
    expected = sorted(users, key=lambda u: (u.created_at, u.id), reverse=True)
    pages = []
    after = None
    async with pool.acquire() as conn:
        while True:
            page = await list_users(conn, marketplace_id=marketplace_id, limit=2, after=after)
            pages.append([u.id for u in page.users])
            if not page.has_more:
                break
            last = page.users[-1]
            after = (last.created_at, last.id)
        assert pages == [[u.id for u in expected[i : i + 2]] for i in range(0, 5, 2)]
        everything = await list_users(conn, marketplace_id=marketplace_id, limit=100)
        assert everything.users == expected
        assert not everything.has_more

        async def ids(**filters: Any) -> list[str]:
            page = await list_users(conn, marketplace_id=marketplace_id, **filters)
            return [u.id for u in page.users]

        assert await ids(external_user_id="solo-1") == [users[1].id]
        assert await ids(types=["buyer", "SELLER"]) == [users[1].id, users[0].id]
        assert await ids(statuses=["SUSPENDED"]) == []
        assert len(await ids(statuses=["ACTIVE"], limit=100)) == 5
        cut = users[1].created_at
        assert await ids(created_before=cut) == [users[0].id]
        assert set(await ids(created_after=cut)) == {u.id for u in users[1:]}
        assert await ids(created_after=expected[0].created_at + timedelta(seconds=1)) == []


async def test_airtm_link_is_stored_once_and_conflicts_with_another_account(
    pool: asyncpg.Pool, marketplace_id: str
) -> None:
    user, _ = await _create(pool, marketplace_id, "ext-1")

    async def link(airtm_user_id: str, user_id: str = user.id) -> Any:
        async def work(conn: asyncpg.Connection) -> Any:
            return await link_airtm(
                conn,
                marketplace_id=marketplace_id,
                user_id=user_id,
                airtm_user_id=airtm_user_id,
                airtm_email=f"{airtm_user_id}@airtm.test",
                actor=ACTOR,
            )

        return await run_in_transaction(pool, work)

    linked, changed = await link("airtm-1")
    assert changed
    assert (linked.airtm_user_id, linked.airtm_email) == ("airtm-1", "airtm-1@airtm.test")
    assert linked.airtm_linked_at is not None
    assert linked.wallet == user.wallet
    again, changed_again = await link("airtm-1")
    assert (again, changed_again) == (linked, False)
    with pytest.raises(AirtmUserAlreadyLinked):
        await link("airtm-2")
    with pytest.raises(UserNotFound):
        await link("airtm-1", user_id=new_id("usr_"))
    async with pool.acquire() as conn:
        events = await events_of_resource(conn, marketplace_id, user.id)
        assert await get_user(conn, marketplace_id=marketplace_id, user_id=user.id) == linked
    assert [e.type for e in events] == ["user.created", "user.airtm_linked"]
    stamp = linked.airtm_linked_at
    assert events[1].data == {
        "user_id": user.id,
        "airtm_user_id": "airtm-1",
        "linked_at": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z",
    }


async def test_wallet_lookup_and_deposit_instructions(
    pool: asyncpg.Pool, marketplace_id: str
) -> None:
    user, _ = await _create(pool, marketplace_id, "ext-1")
    bare_id = new_id("usr_")
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO users (marketplace_id, id, external_user_id) VALUES ($1, $2, 'bare')",
            marketplace_id,
            bare_id,
        )
        wallet = await get_user_wallet(conn, marketplace_id=marketplace_id, user_id=user.id)
        with pytest.raises(WalletNotFound):
            await get_user_wallet(conn, marketplace_id=marketplace_id, user_id=bare_id)
        with pytest.raises(UserNotFound):
            await get_user_wallet(conn, marketplace_id=marketplace_id, user_id=new_id("usr_"))
    assert user.wallet is not None
    assert (wallet.id, wallet.public_key, wallet.user_id) == (
        user.wallet.id,
        user.wallet.public_key,
        user.id,
    )
    issuer = "G" + "A" * 55
    instructions = deposit_instructions(
        user_id=user.id, address=wallet.public_key, network="testnet", usdc_issuer=issuer
    )
    assert (instructions.provider, instructions.method, instructions.network) == (
        "crypto",
        "stellar_address",
        "testnet",
    )
    assert (instructions.address, instructions.memo) == (wallet.public_key, None)
    assert (instructions.asset.code, instructions.asset.issuer) == ("USDC", issuer)
    assert wallet.public_key in instructions.instructions


async def test_new_users_wallet_is_activated_on_the_sandbox(pool: asyncpg.Pool) -> None:
    world = await make_world(pool)
    user, _ = await _create(pool, world.marketplace_id, "ext-1")
    assert user.wallet is not None
    async with pool.acquire() as conn:
        operation_id = await conn.fetchval(
            "SELECT id FROM operations WHERE resource_id = $1", user.wallet.id
        )
    assert await world.run_until_settled(operation_id) == "SUCCEEDED"
    async with pool.acquire() as conn:
        wallet = await get_user_wallet(conn, marketplace_id=world.marketplace_id, user_id=user.id)
    assert (wallet.is_active, wallet.funded, wallet.trustline_ready) == (True, True, True)
    # The deposit address accepts the USDC the instructions name.
    instructions = deposit_instructions(
        user_id=user.id,
        address=wallet.public_key,
        network="sandbox",
        usdc_issuer=world.settings.usdc_issuer,
    )
    world.sandbox.chain.mint(instructions.address, 5 * 10_000_000)
    assert world.usdc(instructions.address) == 5 * 10_000_000
