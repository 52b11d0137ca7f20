"""Reports over HTTP (api.md 3.12): JSON forms, CSV and Parquet streams, errors, tenancy, CLI."""

import argparse
import asyncio
import csv
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from api.cli_export import Progress, add_export_parser, export_to_file
from api.report_streams import range_or_all
from api.schemas import format_time
from common.money import parse_amount, parse_signed_amount
from tests.api.support import Api
from tests.api.test_ledger_routes import PLAN
from tests.db.report_history import History, build_history, committed_transfers

pytestmark = pytest.mark.db

REPORTS = "/api/v1/reports"
DECIMAL = pa.decimal128(38, 7)
MILLIS = pa.timestamp("ms", tz="UTC")


@pytest.fixture
async def books(api: Api) -> tuple[History, str]:
    """A tenant with the history of PLAN, and a key with the support scope only."""
    marketplace_id, key = await api.tenant(["support"])
    conn = await asyncpg.connect(api.dsn)
    try:
        return await build_history(conn, PLAN, 1, marketplace_id), key
    finally:
        await conn.close()


def _csv(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="')
    assert response.headers["x-ledger-as-of"].endswith("Z")
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8"), newline="")))


def _parquet(response: httpx.Response) -> pa.Table:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    return pq.read_table(io.BytesIO(response.content))


async def test_trial_balance_json_csv_and_parquet_agree_and_balance(
    api: Api, books: tuple[History, str]
) -> None:
    history, key = books
    summary = (await api.get(f"{REPORTS}/trial-balance", key)).json()
    assert summary["balanced"] is True
    assert summary["totals"]["debits_posted"] == summary["totals"]["credits_posted"]
    users = next(line for line in summary["lines"] if line["code"] == "user:*")
    assert (users["accounts"], users["account_id"]) == (3, None)

    rows = _csv(await api.get(f"{REPORTS}/trial-balance", key, format="csv"))
    assert list(rows[0]) == [
        "account_id",
        "account_code",
        "account_type",
        "currency",
        "debits_posted",
        "credits_posted",
        "debits_pending",
        "credits_pending",
        "balance",
    ]
    *accounts, total = rows
    assert {row["account_id"] for row in accounts} == set(history.accounts)
    assert total["account_code"] == "TOTAL"
    assert total["balance"] == "0.00"
    assert total["debits_posted"] == total["credits_posted"] == summary["totals"]["debits_posted"]
    for row in accounts:
        account = (await api.get(f"/api/v1/ledger/accounts/{row['account_id']}", key)).json()
        assert row["balance"] == account["balance"]
        assert row["debits_pending"] == account["debits_pending"]
    user_balance = sum(
        parse_signed_amount(r["balance"]) for r in accounts if r["account_type"] == "USER"
    )
    assert parse_signed_amount(users["balance"]) == user_balance

    table = _parquet(await api.get(f"{REPORTS}/trial-balance", key, format="parquet"))
    assert table.schema.field("balance").type == DECIMAL
    assert table.schema.field("account_code").type == pa.string()
    assert table.column("account_code").to_pylist() == [row["account_code"] for row in rows]
    minor = [int(value.scaleb(7)) for value in table.column("credits_posted").to_pylist()]
    assert minor == [parse_amount(row["credits_posted"]) for row in rows]


async def test_trial_balance_as_of_the_past(api: Api, books: tuple[History, str]) -> None:
    history, key = books
    funded = history.checkpoints[0] + timedelta(milliseconds=1)
    answer = await api.get(f"{REPORTS}/trial-balance", key, as_of=format_time(funded))
    body = answer.json()
    assert body["as_of"] == format_time(
        funded.replace(microsecond=funded.microsecond // 1000 * 1000)
    )
    world = next(line for line in body["lines"] if line["code"] == "external:stellar")
    assert world["balance"] == "1500.00"
    assert body["totals"]["debits_pending"] == "0.00"
    rows = _csv(
        await api.get(f"{REPORTS}/trial-balance", key, as_of=format_time(funded), format="csv")
    )
    assert next(r for r in rows if r["account_code"] == "external:stellar")["balance"] == "1500.00"


async def test_account_statement_json_and_csv(api: Api, books: tuple[History, str]) -> None:
    history, key = books
    buyer = history.accounts[2]
    window = {
        "account_id": buyer,
        "from": format_time(history.checkpoints[0] + timedelta(milliseconds=1)),
        "to": "2999-01-01T00:00:00Z",
    }
    summary = (await api.get(f"{REPORTS}/account-statement", key, **window)).json()
    assert (summary["opening_balance"], summary["closing_balance"]) == ("500.00", "465.00")
    assert (summary["total_debits"], summary["total_credits"]) == ("35.00", "0.00")
    assert summary["entry_count"] == 3  # reserve, post, fee
    assert summary["account"]["id"] == buyer
    assert summary["from"] == window["from"]
    rows = _csv(await api.get(f"{REPORTS}/account-statement", key, **window, format="csv"))
    assert [row["row_type"] for row in rows] == ["OPENING", "ENTRY", "ENTRY", "ENTRY", "CLOSING"]
    assert [row["balance"] for row in rows] == ["500.00", "500.00", "470.00", "465.00", "465.00"]
    assert [row["debit"] for row in rows] == ["", "", "30.00", "5.00", "35.00"]
    table = _parquet(await api.get(f"{REPORTS}/account-statement", key, **window, format="parquet"))
    assert table.schema.field("timestamp").type == MILLIS
    assert table.column("row_type").to_pylist() == [row["row_type"] for row in rows]


async def test_journal_and_entries_exports(api: Api, books: tuple[History, str]) -> None:
    history, key = books
    conn = await asyncpg.connect(api.dsn)
    try:
        truth = await committed_transfers(conn, history.marketplace_id)
    finally:
        await conn.close()
    journal = _csv(await api.get(f"{REPORTS}/journal", key, format="csv"))
    assert [row["transfer_id"] for row in journal] == [t["id"] for t in truth]
    assert journal[4]["phase"] == "POST_PENDING"
    assert journal[4]["pending_id"] == journal[3]["transfer_id"]
    assert journal[0]["description"] == 'op single, with a comma and a "quote"'
    table = _parquet(await api.get(f"{REPORTS}/journal", key, format="parquet"))
    assert table.schema.names == list(journal[0])
    assert table.schema.field("amount").type == DECIMAL
    assert table.schema.field("timestamp").type == MILLIS
    assert table.column("transfer_id").to_pylist() == [t["id"] for t in truth]

    escrow = history.accounts[5]
    entries = _csv(await api.get(f"{REPORTS}/entries", key, format="csv", account_id=escrow))
    assert [row["balance_after"] for row in entries] == ["0.00", "30.00", "30.00", "30.00", "30.00"]
    assert all(row["counterparty_account_code"].startswith("user:") for row in entries)
    everything = _csv(await api.get(f"{REPORTS}/entries", key, format="csv"))
    assert len(everything) == 2 * len(truth)
    parquet = _parquet(await api.get(f"{REPORTS}/entries", key, format="parquet"))
    assert parquet.num_rows == len(everything)
    assert parquet.schema.field("balance_after").type == DECIMAL


async def test_errors_come_as_json_before_the_stream(api: Api, books: tuple[History, str]) -> None:
    _, key = books
    missing = "acc_" + "0" * 32
    for path, params in (
        (
            "account-statement",
            {
                "account_id": missing,
                "from": "2020-01-01T00:00:00Z",
                "to": "2030-01-01T00:00:00Z",
                "format": "csv",
            },
        ),
        ("entries", {"account_id": missing, "format": "parquet"}),
    ):
        answer = await api.get(f"{REPORTS}/{path}", key, **params)
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, "ACCOUNT_NOT_FOUND")
    no_format = await api.get(f"{REPORTS}/journal", key)
    assert no_format.status_code == 400
    assert no_format.json()["error"]["details"]["fields"][0]["field"] == "query.format"
    no_range = await api.get(f"{REPORTS}/account-statement", key, account_id=missing)
    fields = [field["field"] for field in no_range.json()["error"]["details"]["fields"]]
    assert fields == ["query.from", "query.to"]
    backwards = await api.get(
        f"{REPORTS}/journal",
        key,
        format="csv",
        **{"from": "2030-01-01T00:00:00Z", "to": "2020-01-01T00:00:00Z"},
    )
    assert backwards.json()["error"]["code"] == "INVALID_REQUEST"
    euro = await api.get(f"{REPORTS}/trial-balance", key, currency="EUR")
    assert euro.json()["error"]["code"] == "INVALID_CURRENCY"
    date_only = await api.get(f"{REPORTS}/trial-balance", key, as_of="2026-01-01")
    assert date_only.status_code == 400


async def test_other_tenants_see_nothing(api: Api, books: tuple[History, str]) -> None:
    history, _ = books
    _, stranger = await api.tenant(["support"])
    assert _csv(await api.get(f"{REPORTS}/journal", stranger, format="csv")) == []
    assert _csv(await api.get(f"{REPORTS}/entries", stranger, format="csv")) == []
    rows = _csv(await api.get(f"{REPORTS}/trial-balance", stranger, format="csv"))
    assert [row["account_code"] for row in rows] == ["TOTAL"]
    answer = await api.get(
        f"{REPORTS}/entries", stranger, format="csv", account_id=history.accounts[2]
    )
    assert answer.status_code == 404


async def test_cli_export_writes_the_file(
    api: Api, books: tuple[History, str], tmp_path: Path
) -> None:
    history, key = books
    parser = argparse.ArgumentParser()
    add_export_parser(parser.add_subparsers(dest="command"))
    for report, extra in (
        ("journal", []),
        ("entries", ["--format", "parquet"]),
        (
            "statement",
            [
                "--account",
                history.accounts[2],
                "--from",
                "2020-01-01T00:00:00Z",
                "--to",
                "2999-01-01T00:00:00Z",
            ],
        ),
    ):
        out = tmp_path / f"{report}.out"
        args = parser.parse_args(
            ["export", report, "--marketplace", history.marketplace_id, "--out", str(out), *extra]
        )
        progress_text = io.StringIO()
        progress = Progress(progress_text, interval_s=0)
        await export_to_file(api.dsn, args, progress)
        assert out.exists()
        assert not (tmp_path / f"{report}.out.partial").exists()
        assert "rows/s" in progress_text.getvalue()
        if report == "journal":
            served = await api.get(f"{REPORTS}/journal", key, format="csv")
            assert out.read_bytes() == served.content
            assert progress.rows == len(PLAN) + 3
        elif report == "entries":
            assert pq.read_table(out).num_rows == progress.rows == 2 * (len(PLAN) + 3)
        else:
            assert out.read_text().splitlines()[-1].startswith("CLOSING,")


async def test_a_failure_mid_stream_raises_and_returns_the_connection(api: Api) -> None:
    from api.exports import ExportFormat  # noqa: PLC0415
    from api.report_streams import _SnapshotExport  # noqa: PLC0415
    from bench.reports import seed_postings  # noqa: PLC0415
    from ledger import create_pool, reports  # noqa: PLC0415

    marketplace_id, _ = await api.tenant(["support"])
    pool = await create_pool(api.dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await seed_postings(conn, marketplace_id, 30_000)

        async def build(conn: Any, position: Any) -> Any:
            start, end = range_or_all(None, None)
            return reports.entries_report(
                conn, marketplace_id, position, start=start, end=end, chunk_rows=1_000
            )

        export = _SnapshotExport(pool, marketplace_id, build, ExportFormat.CSV)
        await export.start()
        header, rows = await anext(export.body), await anext(export.body)
        assert header.startswith(b"transfer_id,timestamp,")
        assert rows.count(b"\r\n") == 1_000
        async with pool.acquire() as killer:
            # The export's connection: the only other one of this pool inside a transaction.
            killed = await killer.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND datname = current_database()"
                " AND state LIKE '%in transaction%' OR (pid <> pg_backend_pid()"
                " AND datname = current_database() AND query LIKE '%FROM ledger_entries AS e%')"
            )
        assert killed >= 1
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            async for _ in export.body:
                pass
        # The broken connection went back; the pool serves again.
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await asyncio.wait_for(pool.close(), 10)
