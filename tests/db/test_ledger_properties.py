"""Hypothesis: any sequence of transfers keeps the books at zero, the bounds, and the history."""

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.ids import new_id
from ledger import Transfer, TransferPhase, TransferResult, create_transfers
from tests.db.conftest import ASSET, create_account, create_marketplace

# An operation: (kind, debit index, credit index, amount, which earlier pending to resolve).
operations = st.lists(
    st.tuples(
        st.sampled_from(["single", "pending", "post", "void"]),
        st.integers(0, 3),
        st.integers(0, 3),
        st.integers(1, 50),
        st.integers(0, 10),
    ),
    min_size=1,
    max_size=25,
)
# Transfers per create_transfers call: 1 exercises the single path, more the batch path.
batch_sizes = st.integers(1, 6)


def _to_transfer(
    operation: tuple[str, int, int, int, int],
    marketplace_id: str,
    accounts: list[str],
    pendings: list[str],
) -> Transfer:
    kind, debit, credit, amount, pick = operation
    if kind in ("post", "void") and pendings:
        phase = TransferPhase.POST_PENDING if kind == "post" else TransferPhase.VOID_PENDING
        return Transfer(
            id=new_id("trf_"),
            marketplace_id=marketplace_id,
            code="order_reserve",
            phase=phase,
            pending_id=pendings[pick % len(pendings)],
            amount=amount if kind == "post" else None,
        )
    phase = TransferPhase.PENDING if kind == "pending" else TransferPhase.SINGLE
    return Transfer(
        id=new_id("trf_"),
        marketplace_id=marketplace_id,
        code="deposit",
        debit_account_id=accounts[debit],
        credit_account_id=accounts[(credit if credit != debit else debit + 1) % 4],
        amount=amount,
        asset=ASSET,
        phase=phase,
    )


async def _assert_books_hold(conn: asyncpg.Connection, marketplace_id: str) -> None:
    violations = await conn.fetch("SELECT * FROM ledger_zero_sum_violations_v1()")
    assert violations == []
    overdrawn = await conn.fetchval(
        "SELECT count(*) FROM ledger_accounts WHERE marketplace_id = $1"
        " AND debits_must_not_exceed_credits"
        " AND debits_pending + debits_posted > credits_posted",
        marketplace_id,
    )
    assert overdrawn == 0
    # Counters equal the last entry, and equal the sum of every transfer's effect.
    mismatched = await conn.fetch(
        """
        SELECT a.id FROM ledger_accounts a
        LEFT JOIN LATERAL (
            SELECT * FROM ledger_entries e WHERE e.marketplace_id = a.marketplace_id
                AND e.account_id = a.id ORDER BY version DESC LIMIT 1
        ) last ON true
        WHERE a.marketplace_id = $1 AND a.version > 0 AND (
            last.debits_pending, last.debits_posted, last.credits_pending, last.credits_posted
        ) IS DISTINCT FROM (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
        """,
        marketplace_id,
    )
    assert mismatched == []
    recomputed = await conn.fetch(
        """
        WITH legs AS (
            SELECT t.debit_account_id AS account_id,
                CASE t.phase WHEN 'PENDING' THEN t.amount WHEN 'SINGLE' THEN 0
                    ELSE -p.amount END AS d_pending,
                CASE WHEN t.phase IN ('SINGLE', 'POST_PENDING') THEN t.amount ELSE 0 END
                    AS d_posted,
                0 AS c_pending, 0 AS c_posted
            FROM ledger_transfers t
            LEFT JOIN ledger_transfers p ON p.marketplace_id = t.marketplace_id
                AND p.id = t.pending_id
            WHERE t.marketplace_id = $1
            UNION ALL
            SELECT t.credit_account_id, 0, 0,
                CASE t.phase WHEN 'PENDING' THEN t.amount WHEN 'SINGLE' THEN 0
                    ELSE -p.amount END,
                CASE WHEN t.phase IN ('SINGLE', 'POST_PENDING') THEN t.amount ELSE 0 END
            FROM ledger_transfers t
            LEFT JOIN ledger_transfers p ON p.marketplace_id = t.marketplace_id
                AND p.id = t.pending_id
            WHERE t.marketplace_id = $1
        ), sums AS (
            SELECT account_id, sum(d_pending) dp, sum(d_posted) dpo, sum(c_pending) cp,
                sum(c_posted) cpo, count(*) n
            FROM legs GROUP BY account_id
        )
        SELECT a.id FROM ledger_accounts a LEFT JOIN sums s ON s.account_id = a.id
        WHERE a.marketplace_id = $1 AND (
            coalesce(s.dp, 0), coalesce(s.dpo, 0), coalesce(s.cp, 0), coalesce(s.cpo, 0),
            coalesce(s.n, 0)
        ) IS DISTINCT FROM (
            a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted, a.version
        )
        """,
        marketplace_id,
    )
    assert recomputed == []


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(plan=operations, batch_size=batch_sizes)
async def test_any_sequence_keeps_zero_sum_bounds_and_history(
    pool: asyncpg.Pool, plan: list[tuple[str, int, int, int, int]], batch_size: int
) -> None:
    async with pool.acquire() as conn:
        # A new marketplace per example: fixtures are not reset between hypothesis examples.
        marketplace_id = await create_marketplace(conn)
        accounts = [
            await create_account(conn, marketplace_id, "external:world", bounded=False),
            await create_account(conn, marketplace_id, "user:a"),
            await create_account(conn, marketplace_id, "user:b"),
            await create_account(conn, marketplace_id, "user:c"),
        ]
        pendings: list[str] = []
        for start in range(0, len(plan), batch_size):
            batch = [
                _to_transfer(operation, marketplace_id, accounts, pendings)
                for operation in plan[start : start + batch_size]
            ]
            async with conn.transaction():
                outcomes = await create_transfers(conn, batch)
            for item, outcome in zip(batch, outcomes, strict=True):
                if item.phase is TransferPhase.PENDING and outcome.result is TransferResult.OK:
                    pendings.append(item.id)
            await _assert_books_hold(conn, marketplace_id)
