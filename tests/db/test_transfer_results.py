"""Every TransferResult that ``create_transfers`` can produce, each with its exact code.

A refused transfer must leave no trace: every refusal below is checked against a snapshot of the
whole ledger (all account counters and versions, the entry count and the set of transfer ids).
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import msgspec
import pytest

from common.ids import new_id
from ledger import (
    AccountSpec,
    AccountType,
    Side,
    Transfer,
    TransferPhase,
    TransferResult,
    create_transfers,
    expire_pending_transfers,
    open_account,
)
from tests.db.conftest import Books, create_account, create_marketplace, resolve, transfer

pytestmark = pytest.mark.db

R = TransferResult
P = TransferPhase
INT64_MAX = 2**63 - 1


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerState:
    """Everything a refused transfer could have changed."""

    accounts: tuple[tuple[object, ...], ...]
    entries: int
    transfer_ids: frozenset[str]


async def ledger_state(pool: asyncpg.Pool) -> LedgerState:
    async with pool.acquire() as conn:
        accounts = await conn.fetch(
            "SELECT marketplace_id, id, debits_pending, debits_posted, credits_pending,"
            " credits_posted, version FROM ledger_accounts ORDER BY marketplace_id, id"
        )
        entries = await conn.fetchval("SELECT count(*) FROM ledger_entries")
        ids = await conn.fetch("SELECT id FROM ledger_transfers")
    return LedgerState(
        accounts=tuple(tuple(row.values()) for row in accounts),
        entries=entries,
        transfer_ids=frozenset(row["id"] for row in ids),
    )


async def submit(pool: asyncpg.Pool, transfers: list[Transfer]) -> list[TransferResult]:
    """Run one ``create_transfers`` call in its own committed transaction; return the codes."""
    async with pool.acquire() as conn, conn.transaction():
        outcomes = await create_transfers(conn, transfers)
    assert [outcome.index for outcome in outcomes] == list(range(len(transfers)))
    assert [outcome.id for outcome in outcomes] == [t.id for t in transfers]
    return [outcome.result for outcome in outcomes]


async def assert_refused(
    pool: asyncpg.Pool, transfers: list[Transfer], expected: list[TransferResult]
) -> None:
    """Submit ``transfers``, expect exactly ``expected`` and an unchanged ledger."""
    before = await ledger_state(pool)
    assert await submit(pool, transfers) == expected
    after = await ledger_state(pool)
    assert after == before
    for refused, result in zip(transfers, expected, strict=True):
        if result is not R.EXISTS and not result.value.startswith("exists_with_different_"):
            assert refused.id not in after.transfer_ids


async def ok(pool: asyncpg.Pool, *transfers: Transfer) -> None:
    assert await submit(pool, list(transfers)) == [R.OK] * len(transfers)


@pytest.fixture
async def funded(pool: asyncpg.Pool, books: Books) -> Books:
    """The books with 100 deposited into alice (world -> alice), so counters are not all zero."""
    await ok(pool, transfer(books, books.world, books.alice, 100))
    return books


@pytest.fixture
async def world2(pool: asyncpg.Pool, books: Books) -> str:
    """A second unbounded, debit-normal account in the books' marketplace and asset."""
    async with pool.acquire() as conn:
        return await create_account(conn, books.marketplace_id, "external:airtm", bounded=False)


@pytest.fixture
async def held(pool: asyncpg.Pool, funded: Books) -> Transfer:
    """A pending alice -> bob of 60 (no timeout), on top of alice's 100."""
    pending = transfer(funded, funded.alice, funded.bob, 60, phase=P.PENDING, code="order_reserve")
    await ok(pool, pending)
    return pending


# --------------------------------------------------------------------------------------------
# Bad input: refused before any account state is looked at
# --------------------------------------------------------------------------------------------


def _pending_id_is_own_id(b: Books) -> Transfer:
    own = new_id("trf_")
    return resolve(b, own, P.POST_PENDING, id=own)


def _post_without_pending_id(b: Books) -> Transfer:
    return Transfer(
        id=new_id("trf_"), marketplace_id=b.marketplace_id, code="x", phase=P.POST_PENDING
    )


def _unknown_marketplace(b: Books) -> Transfer:
    return Transfer(
        id=new_id("trf_"),
        marketplace_id=new_id("mkt_"),
        code="deposit",
        debit_account_id=b.world,
        credit_account_id=b.alice,
        amount=10,
        asset="USD",
    )


Builder = Callable[[Books], Transfer]

BAD_INPUT: list[tuple[str, Builder, TransferResult]] = [
    (
        "id_wrong_prefix",
        lambda b: transfer(b, b.world, b.alice, 10, id=new_id("acc_")),
        R.ID_MUST_BE_VALID,
    ),
    ("id_too_short", lambda b: transfer(b, b.world, b.alice, 10, id="trf_abc"), R.ID_MUST_BE_VALID),
    (
        "id_bad_character",
        lambda b: transfer(b, b.world, b.alice, 10, id="trf_" + "-" * 32),
        R.ID_MUST_BE_VALID,
    ),
    (
        "code_upper_case",
        lambda b: transfer(b, b.world, b.alice, 10, code="Deposit"),
        R.CODE_MUST_BE_VALID,
    ),
    ("code_empty", lambda b: transfer(b, b.world, b.alice, 10, code=""), R.CODE_MUST_BE_VALID),
    (
        "code_too_long",
        lambda b: transfer(b, b.world, b.alice, 10, code="a" * 41),
        R.CODE_MUST_BE_VALID,
    ),
    ("debit_empty", lambda b: transfer(b, "", b.alice, 10), R.DEBIT_ACCOUNT_ID_MUST_NOT_BE_EMPTY),
    ("credit_empty", lambda b: transfer(b, b.world, "", 10), R.CREDIT_ACCOUNT_ID_MUST_NOT_BE_EMPTY),
    ("same_accounts", lambda b: transfer(b, b.alice, b.alice, 10), R.ACCOUNTS_MUST_BE_DIFFERENT),
    (
        "asset_empty",
        lambda b: transfer(b, b.world, b.alice, 10, asset=""),
        R.ASSET_MUST_NOT_BE_EMPTY,
    ),
    ("amount_zero", lambda b: transfer(b, b.world, b.alice, 0), R.AMOUNT_MUST_BE_POSITIVE),
    ("amount_negative", lambda b: transfer(b, b.world, b.alice, -5), R.AMOUNT_MUST_BE_POSITIVE),
    ("amount_missing", lambda b: transfer(b, b.world, b.alice, None), R.AMOUNT_MUST_BE_POSITIVE),
    (
        "pending_amount_zero",
        lambda b: transfer(b, b.alice, b.bob, 0, phase=P.PENDING),
        R.AMOUNT_MUST_BE_POSITIVE,
    ),
    (
        "post_amount_zero",
        lambda b: resolve(b, new_id("trf_"), P.POST_PENDING, 0),
        R.AMOUNT_MUST_BE_POSITIVE,
    ),
    (
        "pending_id_on_single",
        lambda b: transfer(b, b.world, b.alice, 10, pending_id=new_id("trf_")),
        R.PENDING_ID_MUST_BE_EMPTY,
    ),
    (
        "pending_id_on_pending",
        lambda b: transfer(b, b.world, b.alice, 10, phase=P.PENDING, pending_id=new_id("trf_")),
        R.PENDING_ID_MUST_BE_EMPTY,
    ),
    ("post_without_pending_id", _post_without_pending_id, R.PENDING_ID_MUST_NOT_BE_EMPTY),
    ("pending_id_is_own_id", _pending_id_is_own_id, R.PENDING_ID_MUST_BE_DIFFERENT),
    (
        "timeout_on_single",
        lambda b: transfer(b, b.world, b.alice, 10, timeout_s=10),
        R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER,
    ),
    (
        "timeout_on_post",
        lambda b: resolve(b, new_id("trf_"), P.POST_PENDING, timeout_s=10),
        R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER,
    ),
    (
        "negative_timeout_on_pending",
        lambda b: transfer(b, b.world, b.alice, 10, phase=P.PENDING, timeout_s=-1),
        R.TIMEOUT_MUST_NOT_BE_NEGATIVE,
    ),
    (
        "negative_timeout_on_single",
        lambda b: transfer(b, b.world, b.alice, 10, timeout_s=-1),
        R.TIMEOUT_MUST_NOT_BE_NEGATIVE,
    ),
    (
        "unknown_debit_account",
        lambda b: transfer(b, new_id("acc_"), b.alice, 10),
        R.DEBIT_ACCOUNT_NOT_FOUND,
    ),
    (
        "unknown_credit_account",
        lambda b: transfer(b, b.world, new_id("acc_"), 10),
        R.CREDIT_ACCOUNT_NOT_FOUND,
    ),
    ("unknown_marketplace", _unknown_marketplace, R.DEBIT_ACCOUNT_NOT_FOUND),
    (
        "accounts_of_different_assets",
        lambda b: transfer(b, b.world, b.euro, 10),
        R.ACCOUNTS_MUST_HAVE_THE_SAME_ASSET,
    ),
    (
        "transfer_asset_differs",
        lambda b: transfer(b, b.world, b.alice, 10, asset="EUR"),
        R.TRANSFER_MUST_HAVE_THE_SAME_ASSET_AS_ACCOUNTS,
    ),
    (
        "post_unknown_pending",
        lambda b: resolve(b, new_id("trf_"), P.POST_PENDING),
        R.PENDING_TRANSFER_NOT_FOUND,
    ),
    (
        "void_unknown_pending",
        lambda b: resolve(b, new_id("trf_"), P.VOID_PENDING),
        R.PENDING_TRANSFER_NOT_FOUND,
    ),
    (
        "expire_unknown_pending",
        lambda b: resolve(b, new_id("trf_"), P.EXPIRE_PENDING),
        R.PENDING_TRANSFER_NOT_FOUND,
    ),
]


@pytest.mark.parametrize(
    ("build", "expected"),
    [pytest.param(build, expected, id=name) for name, build, expected in BAD_INPUT],
)
async def test_bad_input_is_refused(
    pool: asyncpg.Pool, funded: Books, build: Builder, expected: TransferResult
) -> None:
    await assert_refused(pool, [build(funded)], [expected])


async def test_account_of_another_marketplace_is_not_found(
    pool: asyncpg.Pool, funded: Books
) -> None:
    async with pool.acquire() as conn:
        other = await create_marketplace(conn)
        stranger = await create_account(conn, other, "user:stranger")
    await assert_refused(
        pool, [transfer(funded, funded.alice, stranger, 10)], [R.CREDIT_ACCOUNT_NOT_FOUND]
    )
    await assert_refused(
        pool, [transfer(funded, stranger, funded.alice, 10)], [R.DEBIT_ACCOUNT_NOT_FOUND]
    )


async def test_pending_of_another_marketplace_is_not_found(
    pool: asyncpg.Pool, held: Transfer
) -> None:
    foreign = Transfer(
        id=new_id("trf_"),
        marketplace_id=new_id("mkt_"),
        code="order_reserve",
        phase=P.POST_PENDING,
        pending_id=held.id,
    )
    await assert_refused(pool, [foreign], [R.PENDING_TRANSFER_NOT_FOUND])


# --------------------------------------------------------------------------------------------
# Resolving a pending transfer
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", [P.POST_PENDING, P.VOID_PENDING, P.EXPIRE_PENDING])
async def test_resolving_a_single_transfer_is_not_pending(
    pool: asyncpg.Pool, funded: Books, phase: TransferPhase
) -> None:
    single = transfer(funded, funded.alice, funded.bob, 10)
    await ok(pool, single)
    await assert_refused(
        pool, [resolve(funded, single.id, phase)], [R.PENDING_TRANSFER_NOT_PENDING]
    )


async def test_resolving_a_post_is_not_pending(
    pool: asyncpg.Pool, funded: Books, held: Transfer
) -> None:
    post = resolve(funded, held.id, P.POST_PENDING, 10)
    await ok(pool, post)
    await assert_refused(
        pool, [resolve(funded, post.id, P.VOID_PENDING)], [R.PENDING_TRANSFER_NOT_PENDING]
    )


@pytest.mark.parametrize("phase", [P.POST_PENDING, P.VOID_PENDING, P.EXPIRE_PENDING])
async def test_pending_already_posted(
    pool: asyncpg.Pool, funded: Books, held: Transfer, phase: TransferPhase
) -> None:
    await ok(pool, resolve(funded, held.id, P.POST_PENDING, 30))
    await assert_refused(
        pool, [resolve(funded, held.id, phase)], [R.PENDING_TRANSFER_ALREADY_POSTED]
    )


@pytest.mark.parametrize("phase", [P.POST_PENDING, P.VOID_PENDING, P.EXPIRE_PENDING])
async def test_pending_already_voided(
    pool: asyncpg.Pool, funded: Books, held: Transfer, phase: TransferPhase
) -> None:
    await ok(pool, resolve(funded, held.id, P.VOID_PENDING))
    await assert_refused(
        pool, [resolve(funded, held.id, phase)], [R.PENDING_TRANSFER_ALREADY_VOIDED]
    )


async def test_pending_expired(pool: asyncpg.Pool, funded: Books) -> None:
    pending = transfer(funded, funded.alice, funded.bob, 60, phase=P.PENDING, timeout_s=1)
    await ok(pool, pending)
    await asyncio.sleep(1.1)
    # Timed out but not swept yet: neither post nor void may resolve it any more.
    await assert_refused(
        pool, [resolve(funded, pending.id, P.POST_PENDING, 10)], [R.PENDING_TRANSFER_EXPIRED]
    )
    await assert_refused(
        pool, [resolve(funded, pending.id, P.VOID_PENDING)], [R.PENDING_TRANSFER_EXPIRED]
    )
    # Swept: the resolution is now recorded, and the answer is the same.
    async with pool.acquire() as conn, conn.transaction():
        swept = await expire_pending_transfers(conn)
    assert [outcome.result for outcome in swept] == [R.OK]
    for phase in (P.POST_PENDING, P.VOID_PENDING, P.EXPIRE_PENDING):
        await assert_refused(
            pool, [resolve(funded, pending.id, phase)], [R.PENDING_TRANSFER_EXPIRED]
        )


@pytest.mark.parametrize("timeout_s", [0, 3600])
async def test_expire_before_timeout_is_not_expired(
    pool: asyncpg.Pool, funded: Books, timeout_s: int
) -> None:
    pending = transfer(funded, funded.alice, funded.bob, 60, phase=P.PENDING, timeout_s=timeout_s)
    await ok(pool, pending)
    await assert_refused(
        pool, [resolve(funded, pending.id, P.EXPIRE_PENDING)], [R.PENDING_TRANSFER_NOT_EXPIRED]
    )


async def test_post_more_than_pending(pool: asyncpg.Pool, funded: Books, held: Transfer) -> None:
    await assert_refused(
        pool,
        [resolve(funded, held.id, P.POST_PENDING, 61)],
        [R.EXCEEDS_PENDING_TRANSFER_AMOUNT],
    )


@pytest.mark.parametrize("amount", [59, 61])
async def test_void_with_a_different_amount(
    pool: asyncpg.Pool, funded: Books, held: Transfer, amount: int
) -> None:
    await assert_refused(
        pool,
        [resolve(funded, held.id, P.VOID_PENDING, amount)],
        [R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT],
    )


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("debit_account_id", R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID),
        ("credit_account_id", R.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID),
        ("asset", R.PENDING_TRANSFER_HAS_DIFFERENT_ASSET),
    ],
)
@pytest.mark.parametrize("phase", [P.POST_PENDING, P.VOID_PENDING])
async def test_resolution_differs_from_pending(
    pool: asyncpg.Pool,
    funded: Books,
    held: Transfer,
    phase: TransferPhase,
    field: str,
    expected: TransferResult,
) -> None:
    value = {"debit_account_id": funded.world, "credit_account_id": funded.world, "asset": "EUR"}
    await assert_refused(
        pool, [resolve(funded, held.id, phase, **{field: value[field]})], [expected]
    )


async def test_resolution_repeating_the_pending_fields_is_accepted(
    pool: asyncpg.Pool, funded: Books, held: Transfer
) -> None:
    """The counterpart of the test above: naming the right accounts and asset is fine."""
    post = resolve(
        funded,
        held.id,
        P.POST_PENDING,
        60,
        debit_account_id=funded.alice,
        credit_account_id=funded.bob,
        asset="USD",
    )
    assert await submit(pool, [post]) == [R.OK]


# --------------------------------------------------------------------------------------------
# Idempotency: exists and exists_with_different_*
# --------------------------------------------------------------------------------------------


def _original(b: Books, transfer_id: str) -> Transfer:
    return transfer(
        b,
        b.alice,
        b.bob,
        60,
        phase=P.PENDING,
        id=transfer_id,
        code="order_reserve",
        timeout_s=3600,
        order_id="ord_1",
        user_id="usr_1",
        external_ref="ext_1",
        description="first",
    )


EXISTS_VARIANTS: list[tuple[str, dict[str, object], TransferResult]] = [
    ("phase", {"phase": P.SINGLE, "timeout_s": 0}, R.EXISTS_WITH_DIFFERENT_PHASE),
    ("pending_id", {"pending_id": new_id("trf_")}, R.EXISTS_WITH_DIFFERENT_PENDING_ID),
    ("debit_account_id", {"debit_account_id": "world"}, R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID),
    (
        "credit_account_id",
        {"credit_account_id": "world"},
        R.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID,
    ),
    ("amount", {"amount": 59}, R.EXISTS_WITH_DIFFERENT_AMOUNT),
    ("asset", {"asset": "EUR"}, R.EXISTS_WITH_DIFFERENT_ASSET),
    ("timeout", {"timeout_s": 3601}, R.EXISTS_WITH_DIFFERENT_TIMEOUT),
    ("code", {"code": "withdrawal"}, R.EXISTS_WITH_DIFFERENT_CODE),
    ("order_id", {"order_id": "ord_2"}, R.EXISTS_WITH_DIFFERENT_REFERENCE),
    ("user_id", {"user_id": None}, R.EXISTS_WITH_DIFFERENT_REFERENCE),
    ("external_ref", {"external_ref": "ext_2"}, R.EXISTS_WITH_DIFFERENT_REFERENCE),
    ("description", {"description": "second"}, R.EXISTS_WITH_DIFFERENT_REFERENCE),
]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [pytest.param(changes, expected, id=name) for name, changes, expected in EXISTS_VARIANTS],
)
async def test_exists_with_different_field(
    pool: asyncpg.Pool, funded: Books, changes: dict[str, object], expected: TransferResult
) -> None:
    original = _original(funded, new_id("trf_"))
    await ok(pool, original)
    changed = {k: funded.world if v == "world" else v for k, v in changes.items()}
    await assert_refused(pool, [msgspec.structs.replace(original, **changed)], [expected])


async def test_exists_with_different_pending_id_on_a_post(
    pool: asyncpg.Pool, funded: Books, held: Transfer
) -> None:
    other = transfer(funded, funded.alice, funded.bob, 10, phase=P.PENDING)
    post = resolve(funded, held.id, P.POST_PENDING)
    await ok(pool, other, post)
    repeat = resolve(funded, other.id, P.POST_PENDING, id=post.id)
    await assert_refused(pool, [repeat], [R.EXISTS_WITH_DIFFERENT_PENDING_ID])


async def test_exists_for_an_identical_transfer(pool: asyncpg.Pool, funded: Books) -> None:
    original = _original(funded, new_id("trf_"))
    await ok(pool, original)
    await assert_refused(pool, [_original(funded, original.id)], [R.EXISTS])


async def test_exists_for_a_resubmitted_batch(pool: asyncpg.Pool, books: Books) -> None:
    deposit = transfer(books, books.world, books.alice, 100)
    hold = transfer(books, books.alice, books.bob, 60, phase=P.PENDING)
    post = resolve(books, hold.id, P.POST_PENDING, 45)
    void_hold = transfer(books, books.alice, books.bob, 5, phase=P.PENDING)
    void = resolve(books, void_hold.id, P.VOID_PENDING)
    batch = [deposit, hold, post, void_hold, void]
    assert await submit(pool, batch) == [R.OK] * 5
    await assert_refused(pool, batch, [R.EXISTS] * 5)
    # A post repeated without its amount (None means "as stored") still matches.
    await assert_refused(pool, [resolve(books, hold.id, P.POST_PENDING, id=post.id)], [R.EXISTS])


async def test_exists_for_a_duplicate_within_one_batch(pool: asyncpg.Pool, books: Books) -> None:
    deposit = transfer(books, books.world, books.alice, 100)
    assert await submit(pool, [deposit, deposit]) == [R.OK, R.EXISTS]
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT credits_posted, version FROM ledger_accounts WHERE id = $1", books.alice
        )
    assert tuple(row.values()) == (100, 1)


# --------------------------------------------------------------------------------------------
# Balance bounds
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", [P.SINGLE, P.PENDING])
async def test_exceeds_credits(pool: asyncpg.Pool, funded: Books, phase: TransferPhase) -> None:
    await assert_refused(
        pool, [transfer(funded, funded.alice, funded.bob, 101, phase=phase)], [R.EXCEEDS_CREDITS]
    )
    # Exactly the balance is fine: the bound is "debits <= credits", not "<".
    assert await submit(pool, [transfer(funded, funded.alice, funded.bob, 100, phase=phase)]) == [
        R.OK
    ]


async def test_exceeds_credits_counts_reservations(
    pool: asyncpg.Pool, funded: Books, held: Transfer
) -> None:
    await assert_refused(
        pool, [transfer(funded, funded.alice, funded.bob, 41)], [R.EXCEEDS_CREDITS]
    )
    assert await submit(pool, [transfer(funded, funded.alice, funded.bob, 40)]) == [R.OK]


async def test_exceeds_credits_ignores_incoming_pending(pool: asyncpg.Pool, books: Books) -> None:
    """Pending credits are not spendable: bob cannot spend a reservation made towards him."""
    await ok(pool, transfer(books, books.world, books.alice, 100))
    await ok(pool, transfer(books, books.alice, books.bob, 50, phase=P.PENDING))
    await assert_refused(pool, [transfer(books, books.bob, books.alice, 1)], [R.EXCEEDS_CREDITS])


async def test_exceeds_debits(pool: asyncpg.Pool, books: Books) -> None:
    spec = AccountSpec(
        code="adjustment:capped",
        type=AccountType.ADJUSTMENT,
        normal_side=Side.DEBIT,
        credits_must_not_exceed_debits=True,
    )
    async with pool.acquire() as conn:
        capped = (await open_account(conn, books.marketplace_id, "USD", spec)).id
    await assert_refused(pool, [transfer(books, books.world, capped, 1)], [R.EXCEEDS_DEBITS])
    await ok(pool, transfer(books, capped, books.alice, 50))
    await assert_refused(
        pool,
        [transfer(books, books.world, capped, 51, phase=P.PENDING)],
        [R.EXCEEDS_DEBITS],
    )
    assert await submit(pool, [transfer(books, books.world, capped, 50)]) == [R.OK]


# --------------------------------------------------------------------------------------------
# Overflow of the 64-bit counters
# --------------------------------------------------------------------------------------------

# (setup, probe, expected): "w" is world, "w2" a second unbounded account, "a"/"b" alice/bob.
Step = tuple[str, str, int, TransferPhase]
OVERFLOWS: list[tuple[str, list[Step], Step, TransferResult]] = [
    (
        "debits_pending",
        [("w", "a", INT64_MAX, P.PENDING)],
        ("w", "b", 1, P.PENDING),
        R.OVERFLOWS_DEBITS_PENDING,
    ),
    (
        "credits_pending",
        [("w", "a", INT64_MAX, P.PENDING)],
        ("w2", "a", 1, P.PENDING),
        R.OVERFLOWS_CREDITS_PENDING,
    ),
    (
        "debits_posted",
        [("w", "a", INT64_MAX, P.SINGLE)],
        ("w", "b", 1, P.SINGLE),
        R.OVERFLOWS_DEBITS_POSTED,
    ),
    (
        "credits_posted",
        [("w", "a", INT64_MAX, P.SINGLE)],
        ("w2", "a", 1, P.SINGLE),
        R.OVERFLOWS_CREDITS_POSTED,
    ),
    (
        "debits",
        [("w", "a", INT64_MAX - 10, P.SINGLE)],
        ("w", "b", 11, P.PENDING),
        R.OVERFLOWS_DEBITS,
    ),
    (
        "credits",
        [("w", "a", INT64_MAX - 10, P.SINGLE)],
        ("w2", "a", 11, P.PENDING),
        R.OVERFLOWS_CREDITS,
    ),
    ("amount_2_63_single", [], ("w", "a", 2**63, P.SINGLE), R.OVERFLOWS_DEBITS_POSTED),
    ("amount_2_63_pending", [], ("w", "a", 2**63, P.PENDING), R.OVERFLOWS_DEBITS_PENDING),
]


@pytest.mark.parametrize(
    ("setup", "probe", "expected"),
    [pytest.param(s, p, e, id=name) for name, s, p, e in OVERFLOWS],
)
async def test_overflow(
    pool: asyncpg.Pool,
    books: Books,
    world2: str,
    setup: list[Step],
    probe: Step,
    expected: TransferResult,
) -> None:
    names = {"w": books.world, "w2": world2, "a": books.alice, "b": books.bob}

    def build(debit: str, credit: str, amount: int, phase: TransferPhase) -> Transfer:
        return transfer(books, names[debit], names[credit], amount, phase=phase)

    for step in setup:
        await ok(pool, build(*step))
    await assert_refused(pool, [build(*probe)], [expected])
    # One unit less fits exactly at the limit (when the setup left room for anything).
    debit, credit, amount, phase = probe
    if amount > 1:
        assert await submit(pool, [build(debit, credit, amount - 1, phase)]) == [R.OK]


async def test_counters_at_int64_max_are_stored_exactly(pool: asyncpg.Pool, books: Books) -> None:
    await ok(pool, transfer(books, books.world, books.alice, INT64_MAX))
    await ok(pool, transfer(books, books.alice, books.bob, INT64_MAX, phase=P.PENDING))
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT id, debits_pending, debits_posted, credits_pending, credits_posted"
            " FROM ledger_accounts WHERE id = ANY($1::text[])",
            [books.world, books.alice, books.bob],
        )
    counters = {row["id"]: tuple(row.values())[1:] for row in rows}
    assert counters == {
        books.world: (0, INT64_MAX, 0, 0),
        books.alice: (INT64_MAX, 0, 0, INT64_MAX),
        books.bob: (0, 0, INT64_MAX, 0),
    }


# --------------------------------------------------------------------------------------------
# Linked chains
# --------------------------------------------------------------------------------------------


async def test_linked_event_failed(pool: asyncpg.Pool, funded: Books) -> None:
    first = transfer(funded, funded.alice, funded.bob, 10, linked=True)
    second = transfer(funded, funded.alice, funded.bob, 1000)
    await assert_refused(pool, [first, second], [R.LINKED_EVENT_FAILED, R.EXCEEDS_CREDITS])


async def test_linked_event_chain_open(pool: asyncpg.Pool, funded: Books) -> None:
    single = transfer(funded, funded.alice, funded.bob, 10, linked=True)
    await assert_refused(pool, [single], [R.LINKED_EVENT_CHAIN_OPEN])
    first = transfer(funded, funded.alice, funded.bob, 10, linked=True)
    last = transfer(funded, funded.alice, funded.bob, 10, linked=True)
    await assert_refused(pool, [first, last], [R.LINKED_EVENT_FAILED, R.LINKED_EVENT_CHAIN_OPEN])


async def test_open_chain_does_not_take_earlier_transfers_with_it(
    pool: asyncpg.Pool, funded: Books
) -> None:
    alone = transfer(funded, funded.alice, funded.bob, 10)
    opened = transfer(funded, funded.alice, funded.bob, 10, linked=True)
    assert await submit(pool, [alone, opened]) == [R.OK, R.LINKED_EVENT_CHAIN_OPEN]
    state = await ledger_state(pool)
    assert alone.id in state.transfer_ids
    assert opened.id not in state.transfer_ids


# --------------------------------------------------------------------------------------------
# Bugs found while writing these tests, now fixed
# --------------------------------------------------------------------------------------------


async def test_long_description_is_refused_with_a_result(pool: asyncpg.Pool, books: Books) -> None:
    valid = transfer(books, books.world, books.alice, 10)
    too_long = transfer(books, books.world, books.alice, 10, description="x" * 501)
    results = await submit(pool, [valid, too_long])
    assert results == [R.OK, R.DESCRIPTION_TOO_LONG]


@pytest.mark.parametrize("timeout_s", [2**31, 10**12])
async def test_huge_timeout_is_refused_with_a_result(
    pool: asyncpg.Pool, funded: Books, timeout_s: int
) -> None:
    pending = transfer(funded, funded.alice, funded.bob, 10, phase=P.PENDING, timeout_s=timeout_s)
    results = await submit(pool, [pending])
    assert results == [R.TIMEOUT_TOO_LARGE]


# --------------------------------------------------------------------------------------------
# Coverage of the result codes by this module
# --------------------------------------------------------------------------------------------

TESTED_ELSEWHERE_IN_THIS_MODULE = {
    R.OK,
    R.DESCRIPTION_TOO_LONG,
    R.TIMEOUT_TOO_LARGE,
    R.PENDING_TRANSFER_NOT_PENDING,
    R.PENDING_TRANSFER_ALREADY_POSTED,
    R.PENDING_TRANSFER_ALREADY_VOIDED,
    R.PENDING_TRANSFER_EXPIRED,
    R.PENDING_TRANSFER_NOT_EXPIRED,
    R.EXCEEDS_PENDING_TRANSFER_AMOUNT,
    R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT,
    R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID,
    R.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID,
    R.PENDING_TRANSFER_HAS_DIFFERENT_ASSET,
    R.EXISTS,
    R.EXCEEDS_CREDITS,
    R.EXCEEDS_DEBITS,
    R.LINKED_EVENT_FAILED,
    R.LINKED_EVENT_CHAIN_OPEN,
}


def test_every_result_code_is_exercised() -> None:
    tables = (
        {expected for _, _, expected in BAD_INPUT}
        | {expected for _, _, expected in EXISTS_VARIANTS}
        | {expected for _, _, _, expected in OVERFLOWS}
    )
    assert set(TransferResult) - tables - TESTED_ELSEWHERE_IN_THIS_MODULE == set()
