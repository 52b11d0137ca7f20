"""The database defends the books on its own: direct SQL that would break an invariant is refused
with the named constraint, a valid direct INSERT posts exactly like ``create_transfers``, and the
books still sum to zero afterwards.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import pytest

from common.ids import new_id
from ledger import (
    AccountSpec,
    AccountType,
    LedgerInvariantViolation,
    Side,
    TransferPhase,
    TransferRaced,
    TransferResult,
    create_transfers,
    open_account,
    translate_database_errors,
)
from tests.db.conftest import Books, create_account, create_marketplace, resolve, transfer

pytestmark = pytest.mark.db

INSERT_TRANSFER = """
INSERT INTO ledger_transfers (
    marketplace_id, id, debit_account_id, credit_account_id, asset, amount, phase, pending_id,
    timeout_s, expires_at, code, created_at
) VALUES (
    $1, $2, $3, $4, $5, $6, $7::ledger_transfer_phase, $8, $9, $10, $11,
    coalesce($12, clock_timestamp())
)
"""


@dataclass(frozen=True)
class Row:
    """A ledger_transfers row to insert directly."""

    marketplace_id: str
    debit: str
    credit: str
    amount: int
    phase: str = "SINGLE"
    pending_id: str | None = None
    id: str = ""
    asset: str = "USD"
    timeout_s: int = 0
    expires_at: datetime | None = None
    code: str = "adjustment"
    created_at: datetime | None = None

    def args(self) -> tuple[object, ...]:
        return (
            self.marketplace_id,
            self.id or new_id("trf_"),
            self.debit,
            self.credit,
            self.asset,
            self.amount,
            self.phase,
            self.pending_id,
            self.timeout_s,
            self.expires_at,
            self.code,
            self.created_at,
        )


async def insert(conn: asyncpg.Connection, row: Row) -> None:
    """Insert one transfer directly."""
    await conn.execute(INSERT_TRANSFER, *row.args())


async def snapshot(conn: asyncpg.Connection) -> tuple[object, ...]:
    accounts = await conn.fetch("SELECT * FROM ledger_accounts ORDER BY marketplace_id, id")
    transfers = await conn.fetch("SELECT * FROM ledger_transfers ORDER BY sequence")
    entries = await conn.fetch(
        "SELECT * FROM ledger_entries ORDER BY marketplace_id, account_id, version"
    )
    return (
        [tuple(r.values()) for r in accounts],
        [tuple(r.values()) for r in transfers],
        [tuple(r.values()) for r in entries],
    )


async def assert_books_balance(conn: asyncpg.Connection) -> None:
    assert await conn.fetch("SELECT * FROM ledger_zero_sum_violations_v1()") == []


async def expect_refusal(
    conn: asyncpg.Connection,
    constraint: str,
    error: type[asyncpg.IntegrityConstraintViolationError],
    sql: str,
    *args: object,
) -> None:
    """Run ``sql``; it must fail with exactly ``error`` naming ``constraint`` and change nothing."""
    before = await snapshot(conn)
    with pytest.raises(error) as raised:
        await conn.execute(sql, *args)
    assert type(raised.value) is error
    assert raised.value.constraint_name == constraint
    assert await snapshot(conn) == before
    await assert_books_balance(conn)


async def expect_insert_refused(
    conn: asyncpg.Connection,
    constraint: str,
    error: type[asyncpg.IntegrityConstraintViolationError],
    row: Row,
) -> None:
    await expect_refusal(conn, constraint, error, INSERT_TRANSFER, *row.args())


@dataclass(frozen=True)
class Held:
    """The books, with alice funded 100 and a pending alice -> bob of 60."""

    books: Books
    hold: str


@pytest.fixture
async def held(pool: asyncpg.Pool, books: Books) -> Held:
    deposit = transfer(books, books.world, books.alice, 100)
    hold = transfer(books, books.alice, books.bob, 60, phase=TransferPhase.PENDING)
    async with pool.acquire() as conn, conn.transaction():
        outcomes = await create_transfers(conn, [deposit, hold])
    assert [o.result for o in outcomes] == [TransferResult.OK] * 2
    return Held(books, hold.id)


@pytest.fixture
async def conn(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection in autocommit mode: each refused statement is its own transaction."""
    async with pool.acquire() as connection:
        yield connection


Check = asyncpg.CheckViolationError
Refused = asyncpg.IntegrityConstraintViolationError


# --------------------------------------------------------------------------------------------
# Accounts: opened at zero, then moved only by transfers, never deleted
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "assignment",
    [
        "credits_posted = credits_posted + 1",
        "debits_posted = 0",
        "version = version + 1",
        "debits_must_not_exceed_credits = false",
    ],
)
async def test_update_of_an_account_is_refused(
    conn: asyncpg.Connection, held: Held, assignment: str
) -> None:
    await expect_refusal(
        conn,
        "ledger_accounts_updated_only_by_transfers",
        Refused,
        f"UPDATE ledger_accounts SET {assignment} WHERE id = $1",
        held.books.alice,
    )


async def test_balanced_update_of_counters_is_refused(conn: asyncpg.Connection, held: Held) -> None:
    """Moving 40 of alice's credits to bob keeps the zero sum; it is still refused."""
    await expect_refusal(
        conn,
        "ledger_accounts_updated_only_by_transfers",
        Refused,
        "UPDATE ledger_accounts SET credits_posted = credits_posted"
        " + CASE WHEN id = $1 THEN -40 ELSE 40 END WHERE id IN ($1, $2)",
        held.books.alice,
        held.books.bob,
    )


async def test_upsert_of_an_account_is_refused(conn: asyncpg.Connection, held: Held) -> None:
    await expect_refusal(
        conn,
        "ledger_accounts_updated_only_by_transfers",
        Refused,
        "INSERT INTO ledger_accounts (marketplace_id, id, code, asset, type, normal_side)"
        " SELECT marketplace_id, id, code, asset, type, normal_side FROM ledger_accounts"
        " WHERE id = $1"
        " ON CONFLICT (marketplace_id, id) DO UPDATE SET credits_posted = 1000000",
        held.books.alice,
    )


async def test_delete_of_an_account_is_refused(conn: asyncpg.Connection, held: Held) -> None:
    await expect_refusal(
        conn,
        "ledger_accounts_no_delete",
        Refused,
        "DELETE FROM ledger_accounts WHERE id = $1",
        held.books.bob,
    )


@pytest.mark.parametrize("column", ["debits_pending", "credits_posted", "version"])
async def test_account_must_open_at_zero(conn: asyncpg.Connection, held: Held, column: str) -> None:
    await expect_refusal(
        conn,
        "ledger_accounts_open_at_zero",
        Check,
        "INSERT INTO ledger_accounts"
        f" (marketplace_id, id, code, asset, type, normal_side, {column})"
        " VALUES ($1, $2, 'user:mallory', 'USD', 'USER', 'CREDIT', 5)",
        held.books.marketplace_id,
        new_id("acc_"),
    )


async def test_account_opened_directly_at_zero_is_accepted(
    conn: asyncpg.Connection, held: Held
) -> None:
    """The counterpart of the refusal above: zero counters are fine."""
    account_id = new_id("acc_")
    await conn.execute(
        "INSERT INTO ledger_accounts (marketplace_id, id, code, asset, type, normal_side)"
        " VALUES ($1, $2, 'user:carol', 'USD', 'USER', 'CREDIT')",
        held.books.marketplace_id,
        account_id,
    )
    row = await conn.fetchrow(
        "SELECT debits_pending, debits_posted, credits_pending, credits_posted, version"
        " FROM ledger_accounts WHERE id = $1",
        account_id,
    )
    assert tuple(row.values()) == (0, 0, 0, 0, 0)


# --------------------------------------------------------------------------------------------
# History is append-only
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "constraint"),
    [
        ("UPDATE ledger_transfers SET amount = 1", "ledger_transfers_append_only"),
        ("UPDATE ledger_transfers SET description = 'x'", "ledger_transfers_append_only"),
        ("DELETE FROM ledger_transfers", "ledger_transfers_append_only"),
        # CASCADE: other tables reference transfers; the guard must still refuse.
        ("TRUNCATE ledger_transfers CASCADE", "ledger_transfers_append_only"),
        ("UPDATE ledger_entries SET credits_posted = 1", "ledger_entries_append_only"),
        ("DELETE FROM ledger_entries", "ledger_entries_append_only"),
        ("TRUNCATE ledger_entries", "ledger_entries_append_only"),
    ],
)
async def test_history_is_append_only(
    conn: asyncpg.Connection, held: Held, sql: str, constraint: str
) -> None:
    await expect_refusal(conn, constraint, Refused, sql)


async def test_direct_insert_into_entries_is_refused(conn: asyncpg.Connection, held: Held) -> None:
    books = held.books
    await expect_refusal(
        conn,
        "ledger_entries_written_only_by_transfers",
        Refused,
        "INSERT INTO ledger_entries (marketplace_id, account_id, version, transfer_id,"
        " transfer_sequence, side, debits_pending, debits_posted, credits_pending,"
        " credits_posted, created_at)"
        " VALUES ($1, $2, 3, $3, 1, 'CREDIT', 0, 0, 0, 1000000, now())",
        books.marketplace_id,
        books.alice,
        held.hold,
    )


# --------------------------------------------------------------------------------------------
# Direct INSERTs into ledger_transfers obey the same rules as create_transfers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "phase"), [(41, "SINGLE"), (41, "PENDING")])
async def test_direct_overdraw_is_refused(
    conn: asyncpg.Connection, held: Held, amount: int, phase: str
) -> None:
    """Alice has 100, of which 60 are reserved: 41 more is one too many."""
    books = held.books
    await expect_insert_refused(
        conn,
        "ledger_accounts_debits_within_credits",
        Check,
        Row(books.marketplace_id, books.alice, books.bob, amount, phase=phase),
    )
    await insert(conn, Row(books.marketplace_id, books.alice, books.bob, 40, phase=phase))
    await assert_books_balance(conn)


async def test_direct_credit_beyond_debits_is_refused(conn: asyncpg.Connection, held: Held) -> None:
    books = held.books
    spec = AccountSpec(
        code="adjustment:capped",
        type=AccountType.ADJUSTMENT,
        normal_side=Side.DEBIT,
        credits_must_not_exceed_debits=True,
    )
    capped = (await open_account(conn, books.marketplace_id, "USD", spec)).id
    await expect_insert_refused(
        conn,
        "ledger_accounts_credits_within_debits",
        Check,
        Row(books.marketplace_id, books.world, capped, 1),
    )


async def test_direct_insert_naming_no_account_of_its_asset_is_refused(
    conn: asyncpg.Connection, held: Held
) -> None:
    """Neither account exists in the transfer's asset (nor does either id at all)."""
    books = held.books
    mkt = books.marketplace_id
    for row in (
        Row(mkt, books.world, books.alice, 10, asset="EUR"),
        Row(mkt, new_id("acc_"), new_id("acc_"), 10),
    ):
        await expect_insert_refused(
            conn, "ledger_transfers_accounts_exist", asyncpg.ForeignKeyViolationError, row
        )


# One side names a valid account, the other does not: (marketplace, debit, credit, asset) by role.
ONE_SIDED = [
    pytest.param("books", "world", "euro", "USD", id="credit_account_of_another_asset"),
    pytest.param("books", "euro", "world", "USD", id="debit_account_of_another_asset"),
    pytest.param("books", "world", "stranger", "USD", id="credit_account_of_another_marketplace"),
    pytest.param("other", "world", "stranger", "USD", id="debit_account_of_another_marketplace"),
    pytest.param("books", "world", "missing", "USD", id="missing_credit_account"),
    pytest.param("books", "missing", "alice", "USD", id="missing_debit_account"),
]


async def _one_sided_row(
    conn: asyncpg.Connection, held: Held, marketplace: str, debit: str, credit: str, asset: str
) -> Row:
    books = held.books
    other = await create_marketplace(conn)
    ids = {
        "world": books.world,
        "alice": books.alice,
        "euro": books.euro,
        "stranger": await create_account(conn, other, "user:stranger"),
        "missing": new_id("acc_"),
    }
    mkt = books.marketplace_id if marketplace == "books" else other
    return Row(mkt, ids[debit], ids[credit], 10, asset=asset)


@pytest.mark.parametrize(("marketplace", "debit", "credit", "asset"), ONE_SIDED)
async def test_direct_insert_naming_one_foreign_account_is_refused(
    conn: asyncpg.Connection, held: Held, marketplace: str, debit: str, credit: str, asset: str
) -> None:
    """Refused by the named guard, with nothing written."""
    row = await _one_sided_row(conn, held, marketplace, debit, credit, asset)
    before = await snapshot(conn)
    with pytest.raises(Refused) as raised:
        await insert(conn, row)
    assert raised.value.constraint_name == "ledger_transfers_accounts_exist"
    assert await snapshot(conn) == before
    await assert_books_balance(conn)


@pytest.mark.parametrize(("marketplace", "debit", "credit", "asset"), ONE_SIDED)
async def test_one_foreign_account_is_reported_as_accounts_exist(
    conn: asyncpg.Connection, held: Held, marketplace: str, debit: str, credit: str, asset: str
) -> None:
    row = await _one_sided_row(conn, held, marketplace, debit, credit, asset)
    with pytest.raises(asyncpg.ForeignKeyViolationError) as raised:
        await insert(conn, row)
    assert raised.value.constraint_name == "ledger_transfers_accounts_exist"


async def test_direct_resolution_must_match_its_pending(
    conn: asyncpg.Connection, held: Held
) -> None:
    books = held.books
    mkt = books.marketplace_id
    single = new_id("trf_")
    await insert(conn, Row(mkt, books.world, books.bob, 5, id=single))
    post, void = "POST_PENDING", "VOID_PENDING"
    for row in (
        Row(mkt, books.alice, books.bob, 61, phase=post, pending_id=held.hold),  # above pending
        Row(mkt, books.alice, books.bob, 59, phase=void, pending_id=held.hold),  # void partial
        Row(mkt, books.alice, books.bob, 60, phase=post, pending_id=new_id("trf_")),  # missing
        Row(mkt, books.world, books.bob, 5, phase=post, pending_id=single),  # not pending
        Row(mkt, books.bob, books.alice, 60, phase=post, pending_id=held.hold),  # swapped sides
        Row(mkt, books.alice, books.world, 60, phase=void, pending_id=held.hold),  # other credit
        Row(mkt, books.alice, books.bob, 60, phase="EXPIRE_PENDING", pending_id=held.hold),
    ):
        await expect_insert_refused(conn, "ledger_transfers_pending_consistent", Check, row)


async def test_direct_post_before_its_pending_in_one_statement_is_refused(
    conn: asyncpg.Connection, held: Held
) -> None:
    books = held.books
    mkt = books.marketplace_id
    pending = new_id("trf_")
    before = await snapshot(conn)
    with pytest.raises(Check) as raised:
        await conn.execute(
            "INSERT INTO ledger_transfers (marketplace_id, id, debit_account_id,"
            " credit_account_id, asset, amount, phase, pending_id, code, created_at) VALUES"
            " ($1, $2, $3, $4, 'USD', 10, 'POST_PENDING', $5, 'x', now()),"
            " ($1, $5, $3, $4, 'USD', 10, 'PENDING', NULL, 'x', now())",
            mkt,
            new_id("trf_"),
            books.alice,
            books.bob,
            pending,
        )
    assert raised.value.constraint_name == "ledger_transfers_pending_consistent"
    assert await snapshot(conn) == before


async def test_second_resolution_of_a_pending_is_refused(
    conn: asyncpg.Connection, held: Held
) -> None:
    books = held.books
    mkt = books.marketplace_id
    await insert(
        conn, Row(mkt, books.alice, books.bob, 45, phase="POST_PENDING", pending_id=held.hold)
    )
    for phase, amount in (("VOID_PENDING", 60), ("POST_PENDING", 15)):
        await expect_insert_refused(
            conn,
            "ledger_transfers_pending_resolved_once",
            asyncpg.UniqueViolationError,
            Row(mkt, books.alice, books.bob, amount, phase=phase, pending_id=held.hold),
        )


async def test_two_resolutions_in_one_statement_are_refused(
    conn: asyncpg.Connection, held: Held
) -> None:
    books = held.books
    before = await snapshot(conn)
    with pytest.raises(asyncpg.UniqueViolationError) as raised:
        await conn.execute(
            "INSERT INTO ledger_transfers (marketplace_id, id, debit_account_id,"
            " credit_account_id, asset, amount, phase, pending_id, code, created_at) VALUES"
            " ($1, $2, $4, $5, 'USD', 10, 'POST_PENDING', $6, 'x', now()),"
            " ($1, $3, $4, $5, 'USD', 60, 'VOID_PENDING', $6, 'x', now())",
            books.marketplace_id,
            new_id("trf_"),
            new_id("trf_"),
            books.alice,
            books.bob,
            held.hold,
        )
    assert raised.value.constraint_name == "ledger_transfers_pending_resolved_once"
    assert await snapshot(conn) == before


@pytest.mark.parametrize(
    ("changes", "constraint"),
    [
        ({"amount": 0}, "ledger_transfers_amount_positive"),
        ({"amount": -5}, "ledger_transfers_amount_positive"),
        ({"credit": "alice"}, "ledger_transfers_accounts_differ"),
        ({"pending_id": "hold"}, "ledger_transfers_pending_reference"),
        ({"phase": "POST_PENDING"}, "ledger_transfers_pending_reference"),
        ({"timeout_s": 10}, "ledger_transfers_timeout"),
        ({"timeout_s": -1, "phase": "PENDING"}, "ledger_transfers_timeout"),
        ({"timeout_s": 10, "phase": "PENDING"}, "ledger_transfers_timeout"),  # no expires_at
        ({"id": "trf_short"}, "ledger_transfers_id_format"),
        ({"code": "Bad Code"}, "ledger_transfers_code_format"),
    ],
)
async def test_direct_insert_breaking_a_check_is_refused(
    conn: asyncpg.Connection, held: Held, changes: dict[str, object], constraint: str
) -> None:
    books = held.books
    named = {"alice": books.alice, "hold": held.hold}
    fields: dict[str, object] = {
        "marketplace_id": books.marketplace_id,
        "debit": books.alice,
        "credit": books.bob,
        "amount": 10,
    }
    fields.update({k: named.get(v, v) if isinstance(v, str) else v for k, v in changes.items()})
    await expect_insert_refused(conn, constraint, Check, Row(**fields))  # type: ignore[arg-type]


async def test_duplicate_transfer_id_is_refused(conn: asyncpg.Connection, held: Held) -> None:
    books = held.books
    await expect_insert_refused(
        conn,
        "ledger_transfers_pkey",
        asyncpg.UniqueViolationError,
        Row(books.marketplace_id, books.world, books.bob, 1, id=held.hold),
    )


# --------------------------------------------------------------------------------------------
# The trigger is the posting path: a valid direct INSERT posts like create_transfers
# --------------------------------------------------------------------------------------------


async def _mirror_books(conn: asyncpg.Connection) -> Books:
    marketplace_id = await create_marketplace(conn)
    return Books(
        marketplace_id=marketplace_id,
        alice=await create_account(conn, marketplace_id, "user:alice"),
        bob=await create_account(conn, marketplace_id, "user:bob"),
        world=await create_account(conn, marketplace_id, "external:stellar", bounded=False),
        euro=await create_account(conn, marketplace_id, "user:euro", asset="EUR"),
    )


async def _normalised(conn: asyncpg.Connection, books: Books) -> tuple[object, ...]:
    """Counters and entries of ``books`` with ids replaced by roles, for comparison."""
    roles = {books.alice: "alice", books.bob: "bob", books.world: "world", books.euro: "euro"}
    accounts = await conn.fetch(
        "SELECT id, debits_pending, debits_posted, credits_pending, credits_posted, version"
        " FROM ledger_accounts WHERE marketplace_id = $1",
        books.marketplace_id,
    )
    entries = await conn.fetch(
        "SELECT e.account_id, e.version, e.side::text, t.phase::text, t.amount,"
        " e.debits_pending, e.debits_posted, e.credits_pending, e.credits_posted"
        " FROM ledger_entries AS e JOIN ledger_transfers AS t"
        " ON t.marketplace_id = e.marketplace_id AND t.id = e.transfer_id"
        " WHERE e.marketplace_id = $1",
        books.marketplace_id,
    )
    return (
        sorted((roles[r["id"]], *tuple(r.values())[1:]) for r in accounts),
        sorted((roles[r["account_id"]], *tuple(r.values())[1:]) for r in entries),
    )


async def test_direct_insert_posts_like_create_transfers(
    pool: asyncpg.Pool, conn: asyncpg.Connection, books: Books
) -> None:
    # Through create_transfers, in two batches.
    hold = transfer(books, books.alice, books.bob, 60, phase=TransferPhase.PENDING)
    other = transfer(books, books.alice, books.bob, 20, phase=TransferPhase.PENDING)
    first = [transfer(books, books.world, books.alice, 100), hold, other]
    second = [
        resolve(books, hold.id, TransferPhase.POST_PENDING, 45),
        resolve(books, other.id, TransferPhase.VOID_PENDING),
        transfer(books, books.bob, books.alice, 5),
    ]
    async with pool.acquire() as c, c.transaction():
        assert [o.result for o in await create_transfers(c, first)] == [TransferResult.OK] * 3
    async with pool.acquire() as c, c.transaction():
        assert [o.result for o in await create_transfers(c, second)] == [TransferResult.OK] * 3

    # The same, by hand, in a mirror marketplace: one multi-row INSERT per batch.
    mirror = await _mirror_books(conn)
    m = mirror.marketplace_id
    hold_id, other_id = new_id("trf_"), new_id("trf_")
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO ledger_transfers (marketplace_id, id, debit_account_id,"
            " credit_account_id, asset, amount, phase, pending_id, code, created_at) VALUES"
            " ($1, $2, $3, $4, 'USD', 100, 'SINGLE', NULL, 'deposit', now()),"
            " ($1, $5, $4, $6, 'USD', 60, 'PENDING', NULL, 'order_reserve', now()),"
            " ($1, $7, $4, $6, 'USD', 20, 'PENDING', NULL, 'order_reserve', now())",
            m,
            new_id("trf_"),
            mirror.world,
            mirror.alice,
            hold_id,
            mirror.bob,
            other_id,
        )
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO ledger_transfers (marketplace_id, id, debit_account_id,"
            " credit_account_id, asset, amount, phase, pending_id, code, created_at) VALUES"
            " ($1, $2, $3, $4, 'USD', 45, 'POST_PENDING', $5, 'order_reserve', now()),"
            " ($1, $6, $3, $4, 'USD', 20, 'VOID_PENDING', $7, 'order_reserve', now()),"
            " ($1, $8, $4, $3, 'USD', 5, 'SINGLE', NULL, 'refund', now())",
            m,
            new_id("trf_"),
            mirror.alice,
            mirror.bob,
            hold_id,
            new_id("trf_"),
            other_id,
            new_id("trf_"),
        )

    via_api = await _normalised(conn, books)
    via_sql = await _normalised(conn, mirror)
    assert via_sql == via_api
    accounts, entries = via_sql
    assert accounts == [
        ("alice", 0, 45, 0, 105, 6),
        ("bob", 0, 5, 0, 45, 5),
        ("euro", 0, 0, 0, 0, 0),
        ("world", 0, 100, 0, 0, 1),
    ]
    assert [e for e in entries if e[0] == "alice"] == [
        ("alice", 1, "CREDIT", "SINGLE", 100, 0, 0, 0, 100),
        ("alice", 2, "DEBIT", "PENDING", 60, 60, 0, 0, 100),
        ("alice", 3, "DEBIT", "PENDING", 20, 80, 0, 0, 100),
        ("alice", 4, "DEBIT", "POST_PENDING", 45, 20, 45, 0, 100),
        ("alice", 5, "DEBIT", "VOID_PENDING", 20, 0, 45, 0, 100),
        ("alice", 6, "CREDIT", "SINGLE", 5, 0, 45, 0, 105),
    ]
    await assert_books_balance(conn)


# --------------------------------------------------------------------------------------------
# translate_database_errors
# --------------------------------------------------------------------------------------------


async def test_bound_violation_becomes_ledger_invariant_violation(
    conn: asyncpg.Connection, held: Held
) -> None:
    books = held.books
    with pytest.raises(LedgerInvariantViolation) as raised, translate_database_errors():
        await insert(conn, Row(books.marketplace_id, books.alice, books.bob, 41))
    assert raised.value.details == {"constraint": "ledger_accounts_debits_within_credits"}
    assert isinstance(raised.value.__cause__, asyncpg.CheckViolationError)
    assert "ledger_accounts_debits_within_credits" in raised.value.message


async def test_refusal_trigger_becomes_ledger_invariant_violation(
    conn: asyncpg.Connection, held: Held
) -> None:
    with pytest.raises(LedgerInvariantViolation) as raised, translate_database_errors():
        await conn.execute("DELETE FROM ledger_entries")
    assert raised.value.details == {"constraint": "ledger_entries_append_only"}


@pytest.mark.parametrize("resolution", ["duplicate_id", "second_resolution"])
async def test_races_become_transfer_raced(
    conn: asyncpg.Connection, held: Held, resolution: str
) -> None:
    books = held.books
    mkt = books.marketplace_id
    await insert(
        conn, Row(mkt, books.alice, books.bob, 60, phase="VOID_PENDING", pending_id=held.hold)
    )
    row = (
        Row(mkt, books.world, books.bob, 1, id=held.hold)
        if resolution == "duplicate_id"
        else Row(mkt, books.alice, books.bob, 60, phase="POST_PENDING", pending_id=held.hold)
    )
    expected = (
        "ledger_transfers_pkey"
        if resolution == "duplicate_id"
        else "ledger_transfers_pending_resolved_once"
    )
    with pytest.raises(TransferRaced) as raised, translate_database_errors():
        await insert(conn, row)
    assert raised.value.details == {"constraint": expected}


async def test_other_constraints_pass_through_untranslated(
    conn: asyncpg.Connection, held: Held
) -> None:
    with pytest.raises(asyncpg.UniqueViolationError) as raised, translate_database_errors():
        await conn.execute(
            "INSERT INTO marketplaces (id, name) VALUES ($1, $2)",
            new_id("mkt_"),
            held.books.marketplace_id,  # the name create_marketplace gave the books' marketplace
        )
    assert raised.value.constraint_name == "marketplaces_name_key"


# --------------------------------------------------------------------------------------------
# Gaps found while writing these tests, now closed
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", ["TRUNCATE ledger_accounts", "TRUNCATE marketplaces CASCADE"])
async def test_truncate_of_accounts_is_refused(
    conn: asyncpg.Connection, held: Held, sql: str
) -> None:
    refused_by: str | None = None
    try:
        await conn.execute(sql)
    except Refused as refused:
        refused_by = refused.constraint_name
    assert refused_by == "ledger_accounts_no_delete"
    assert await conn.fetchval("SELECT count(*) FROM ledger_accounts") == 4


async def test_backdated_direct_insert_is_refused(conn: asyncpg.Connection, held: Held) -> None:
    books = held.books
    latest = await conn.fetchval(
        "SELECT max(created_at) FROM ledger_entries WHERE account_id = $1", books.alice
    )
    backdated = Row(
        books.marketplace_id,
        books.alice,
        books.bob,
        10,
        created_at=latest - timedelta(days=1),
    )
    try:
        await insert(conn, backdated)
    except Refused:
        return
    rows = await conn.fetch(
        "SELECT created_at FROM ledger_entries WHERE account_id = $1 ORDER BY version",
        books.alice,
    )
    created = [row["created_at"] for row in rows]
    assert created == sorted(created)
