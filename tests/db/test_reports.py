"""Reports against the ledger's own truth, on hypothesis-generated histories.

Each example builds a fresh marketplace with random single, pending, post and void transfers
between accounts of every class, committed in batches, then checks the trial balance (now and at
a past checkpoint), account statements and the general-ledger detail against counters recomputed
from the transfers alone and against ``ledger.balance_at``.
"""

import csv
import io
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.exports import ExportFormat, export_chunks
from common.money import parse_signed_amount
from ledger import balance_at, get_account, reports
from ledger.report_types import LedgerPosition, Report, Row
from tests.db.report_history import (
    History,
    batch_sizes,
    build_history,
    committed_transfers,
    counters,
    operations,
    signed,
)

pytestmark = pytest.mark.db

_EXAMPLES = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def _rows(chunks: AsyncIterator[Sequence[Row]]) -> list[tuple[Any, ...]]:
    return [tuple(row) async for chunk in chunks for row in chunk]


async def _snapshot(conn: asyncpg.Connection, history: History) -> LedgerPosition:
    return await reports.snapshot_position(conn, history.marketplace_id)


def _readonly(conn: asyncpg.Connection) -> Any:
    return conn.transaction(isolation="repeatable_read", readonly=True)


@_EXAMPLES
@given(plan=operations, batch_size=batch_sizes, small_chunks=st.booleans())
async def test_trial_balance_now_equals_the_ledger(
    pool: asyncpg.Pool, plan: list[Any], batch_size: int, small_chunks: bool
) -> None:
    chunk_rows = 2 if small_chunks else 5_000
    async with pool.acquire() as conn:
        history = await build_history(conn, plan, batch_size)
        truth = counters(await committed_transfers(conn, history.marketplace_id))
        async with _readonly(conn):
            position = await _snapshot(conn, history)
            report = reports.trial_balance_report(
                conn, history.marketplace_id, "USD", position, chunk_rows=chunk_rows
            )
            rows = await _rows(report.chunks)
            summary = await reports.trial_balance(conn, history.marketplace_id, "USD", position)
        *accounts, total = rows
        assert {row[0] for row in accounts} == set(history.accounts)
        for account_id, _, _, currency, *values, balance in accounts:
            ledger_account = await get_account(conn, history.marketplace_id, account_id)
            expected = truth.get(account_id, [0, 0, 0, 0])
            assert values == expected
            assert balance == signed(history.normal_sides[account_id], expected)
            assert balance == ledger_account.balance.posted
            assert currency == "USD"
        # The TOTAL row nets to zero, posted and pending.
        assert total[:4] == (None, "TOTAL", None, "USD")
        assert total[4] == total[5] == sum(row[4] for row in accounts)
        assert total[6] == total[7] == sum(row[6] for row in accounts)
        assert total[8] == 0
        assert summary.balanced
        assert (summary.debits_posted, summary.debits_pending) == (total[4], total[6])
        users = next(line for line in summary.lines if line.code == "user:*")
        assert users.accounts == 3
        assert users.account_id is None
        assert users.balance == sum(row[8] for row in accounts if row[2] == "USER")
        assert [line.code for line in summary.lines] == sorted(line.code for line in summary.lines)


@_EXAMPLES
@given(plan=operations, batch_size=batch_sizes, pick=st.integers(0, 100))
async def test_trial_balance_at_a_checkpoint_equals_balance_at(
    pool: asyncpg.Pool, plan: list[Any], batch_size: int, pick: int
) -> None:
    async with pool.acquire() as conn:
        history = await build_history(conn, plan, batch_size)
        as_of = history.checkpoints[pick % len(history.checkpoints)]
        truth = counters(await committed_transfers(conn, history.marketplace_id), at=as_of)
        async with _readonly(conn):
            position = await _snapshot(conn, history)
            report = reports.trial_balance_report(
                conn, history.marketplace_id, "USD", position, as_of=as_of
            )
            rows = await _rows(report.chunks)
        # Strictly before the snapshot, the report stands at the requested time.
        assert report.as_of == min(as_of, position.as_of)
        *accounts, total = rows
        for account_id, _, _, _, *values, balance in accounts:
            assert values == truth.get(account_id, [0, 0, 0, 0])
            ledger = await balance_at(conn, history.marketplace_id, account_id, as_of)
            assert balance == ledger.posted
        assert total[4] == total[5]
        assert total[6] == total[7]
        assert total[8] == 0


@_EXAMPLES
@given(
    plan=operations,
    batch_size=batch_sizes,
    account_index=st.integers(0, 5),
    bounds=st.tuples(st.integers(0, 30), st.integers(0, 30)),
)
async def test_statement_opening_lines_closing_equal_the_ledger(
    pool: asyncpg.Pool,
    plan: list[Any],
    batch_size: int,
    account_index: int,
    bounds: tuple[int, int],
) -> None:
    async with pool.acquire() as conn:
        history = await build_history(conn, plan, batch_size)
        points = history.checkpoints
        low, high = sorted(points[index % len(points)] for index in bounds)
        start, end = low, high + timedelta(microseconds=1)
        account_id = history.accounts[account_index]
        side = history.normal_sides[account_id]
        transfers = await committed_transfers(conn, history.marketplace_id)
        async with _readonly(conn):
            position = await _snapshot(conn, history)
            summary = await reports.account_statement(
                conn, history.marketplace_id, account_id, start, end
            )
            report = await reports.statement_report(
                conn,
                history.marketplace_id,
                account_id,
                position,
                start=start,
                end=end,
                chunk_rows=3,
            )
            rows = await _rows(report.chunks)
        opening = signed(side, counters(transfers, before=start).get(account_id, [0] * 4))
        closing = signed(side, counters(transfers, before=end).get(account_id, [0] * 4))
        before_start = await balance_at(
            conn, history.marketplace_id, account_id, start - timedelta(microseconds=1)
        )
        assert summary.opening_balance == opening == before_start.posted
        assert summary.closing_balance == closing
        touching = [
            t
            for t in transfers
            if start <= t["created_at"] < end
            and account_id in (t["debit_account_id"], t["credit_account_id"])
        ]
        assert summary.entry_count == len(touching) == len(rows) - 2
        # Lines: opening, a running balance that each posting moves, closing.
        assert rows[0][0] == "OPENING"
        assert rows[0][7] == opening
        running = opening
        for row, transfer in zip(rows[1:-1], touching, strict=True):
            assert row[0] == "ENTRY"
            assert row[2] == transfer["id"]
            debit, credit = row[5] or 0, row[6] or 0
            running += (credit - debit) if side.value == "CREDIT" else (debit - credit)
            assert row[7] == running
        assert rows[-1][0] == "CLOSING"
        assert rows[-1][7] == closing == running
        assert (rows[-1][5], rows[-1][6]) == (summary.total_debits, summary.total_credits)


async def _csv(report: Report) -> list[dict[str, str]]:
    data = b"".join([chunk async for chunk in export_chunks(report, ExportFormat.CSV)])
    assert data.count(b"\r\n") == data.count(b"\n"), "RFC 4180 line ends"
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


@_EXAMPLES
@given(plan=operations, batch_size=batch_sizes)
async def test_general_ledger_csv_parses_back_to_the_ledger(
    pool: asyncpg.Pool, plan: list[Any], batch_size: int
) -> None:
    async with pool.acquire() as conn:
        history = await build_history(conn, plan, batch_size)
        transfers = await committed_transfers(conn, history.marketplace_id)
        async with _readonly(conn):
            position = await _snapshot(conn, history)
            report = reports.entries_report(
                conn,
                history.marketplace_id,
                position,
                start=transfers[0]["created_at"],
                end=position.as_of + timedelta(seconds=1),
                chunk_rows=4,
            )
            rows = await _csv(report)
        # Two postings per transfer, in ledger order, debit first.
        assert [row["transfer_id"] for row in rows[::2]] == [t["id"] for t in transfers]
        assert [row["side"] for row in rows] == ["DEBIT", "CREDIT"] * len(transfers)
        seen: dict[str, list[int]] = {}
        by_id = {t["id"]: t for t in transfers}
        for row in rows:
            transfer = by_id[row["transfer_id"]]
            counter = seen.setdefault(row["account_id"], [0, 0, 0, 0])
            one = counters([transfer])[row["account_id"]]
            seen[row["account_id"]] = [a + b for a, b in zip(counter, one, strict=True)]
            after = seen[row["account_id"]]
            side = history.normal_sides[row["account_id"]]
            assert parse_signed_amount(row["balance_after"]) == signed(side, after)
            assert parse_signed_amount(row["debits_pending_after"]) == after[2]
            assert parse_signed_amount(row["credits_pending_after"]) == after[3]
            assert parse_signed_amount(row["amount"]) == transfer["amount"]
            assert row["timestamp"].endswith("Z")


async def test_reports_need_a_read_only_repeatable_read_snapshot(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(AssertionError):
            await reports.snapshot_position(conn, "mkt_x")
