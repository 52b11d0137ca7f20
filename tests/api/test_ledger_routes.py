"""Ledger reads over HTTP (api.md 3.12): accounts, entries, transfers; pages, errors, tenancy."""

from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from api.schemas import format_time
from common.money import parse_amount, parse_signed_amount
from ledger import balance_at
from tests.api.support import Api
from tests.db.report_history import History, build_history, committed_transfers, counters

pytestmark = pytest.mark.db

LEDGER = "/api/v1/ledger"
# Funding, then: reserve 50 (posted 30), reserve 20 (voided), reserve 10 (open), a 5 fee.
PLAN: list[Any] = [
    ("pending", 2, 5, 50, 0),
    ("post", 0, 0, 30, 0),
    ("pending", 3, 5, 20, 0),
    ("void", 0, 0, 0, 0),
    ("pending", 4, 5, 10, 0),
    ("single", 2, 1, 5, 0),
]


@pytest.fixture
async def books(api: Api) -> tuple[History, str]:
    """A tenant with the history of PLAN, and a key with the support scope only."""
    marketplace_id, key = await api.tenant(["support"])
    conn = await asyncpg.connect(api.dsn)
    try:
        history = await build_history(conn, PLAN, 1, marketplace_id)
    finally:
        await conn.close()
    return history, key


async def _all_pages(api: Api, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        answer = await api.get(path, key, **query)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        items += body["data"]
        if not body["pagination"]["has_more"]:
            assert body["pagination"]["next_cursor"] is None
            return items
        cursor = body["pagination"]["next_cursor"]


async def test_accounts_list_in_code_order_across_pages_with_filters(
    api: Api, books: tuple[History, str]
) -> None:
    history, key = books
    every = await _all_pages(api, f"{LEDGER}/accounts", key, limit=2)
    assert sorted(account["id"] for account in every) == sorted(history.accounts)
    codes = [account["code"] for account in every]
    assert codes == sorted(codes)
    users = await _all_pages(api, f"{LEDGER}/accounts", key, type="USER")
    assert len(users) == 3
    assert all(user["flags"] == ["DEBITS_MUST_NOT_EXCEED_CREDITS"] for user in users)
    assert all(user["code"] == f"user:{user['user_id']}" for user in users)
    external = await _all_pages(api, f"{LEDGER}/accounts", key, code="external:stellar")
    assert [account["normal_side"] for account in external] == ["DEBIT"]
    # Funding 3 x 500 left the outside world: its (debit-normal) balance is +1500.
    assert external[0]["balance"] == "1500.00"

    bad = await api.get(f"{LEDGER}/accounts", key, type="NOPE", currency="EUR")
    assert bad.status_code == 400
    fields = {field["field"] for field in bad.json()["error"]["details"]["fields"]}
    assert fields == {"query.type"} or fields == {"query.currency"}
    euro = await api.get(f"{LEDGER}/accounts", key, currency="EUR")
    assert euro.json()["error"]["code"] == "INVALID_CURRENCY"
    first = (await api.get(f"{LEDGER}/accounts", key, limit=1)).json()
    other_filter = await api.get(
        f"{LEDGER}/accounts", key, type="USER", cursor=first["pagination"]["next_cursor"]
    )
    assert other_filter.status_code == 400


async def test_account_balances_now_and_as_of_equal_the_ledger(
    api: Api, books: tuple[History, str]
) -> None:
    history, key = books
    buyer = history.accounts[2]
    now = (await api.get(f"{LEDGER}/accounts/{buyer}", key)).json()
    # 500 funded, 30 posted to escrow, 5 paid in fees; nothing pending on it any more.
    assert (now["balance"], now["available"], now["debits_pending"]) == ("465.00", "465.00", "0.00")
    assert now["as_of"] is None
    # The wire carries milliseconds: the first millisecond at or after the reservation.
    reserved_at = history.checkpoints[1]
    after_reserve = reserved_at + timedelta(microseconds=-reserved_at.microsecond % 1000)
    answer = await api.get(f"{LEDGER}/accounts/{buyer}", key, as_of=format_time(after_reserve))
    then = answer.json()
    conn = await asyncpg.connect(api.dsn)
    try:
        expected = await balance_at(conn, history.marketplace_id, buyer, after_reserve)
    finally:
        await conn.close()
    assert parse_signed_amount(then["balance"]) == expected.posted == 500 * 10**7
    assert parse_signed_amount(then["available"]) == expected.available == 450 * 10**7
    assert then["debits_pending"] == "50.00"
    assert then["as_of"] == format_time(after_reserve)


async def test_entries_run_oldest_first_with_running_balance_and_range(
    api: Api, books: tuple[History, str]
) -> None:
    history, key = books
    escrow = history.accounts[5]
    entries = await _all_pages(api, f"{LEDGER}/accounts/{escrow}/entries", key, limit=2)
    assert [entry["phase"] for entry in entries] == [
        "PENDING",
        "POST_PENDING",
        "PENDING",
        "VOID_PENDING",
        "PENDING",
    ]
    assert [entry["balance_after"] for entry in entries] == [
        "0.00",
        "30.00",
        "30.00",
        "30.00",
        "30.00",
    ]
    assert [entry["credits_pending_after"] for entry in entries] == [
        "50.00",
        "0.00",
        "20.00",
        "0.00",
        "10.00",
    ]
    assert {entry["side"] for entry in entries} == {"CREDIT"}
    # Whole milliseconds (as on the wire) around the 2nd reservation and its void.
    start = history.checkpoints[2] + timedelta(microseconds=1000)
    end = history.checkpoints[4] + timedelta(microseconds=1000)
    start, end = (
        moment.replace(microsecond=moment.microsecond // 1000 * 1000) for moment in (start, end)
    )
    ranged = await _all_pages(
        api,
        f"{LEDGER}/accounts/{escrow}/entries",
        key,
        **{"from": format_time(start), "to": format_time(end)},
    )
    assert [entry["phase"] for entry in ranged] == ["PENDING", "VOID_PENDING"]
    backwards = await api.get(
        f"{LEDGER}/accounts/{escrow}/entries",
        key,
        **{"from": format_time(end), "to": format_time(start)},
    )
    assert backwards.status_code == 400
    assert backwards.json()["error"]["code"] == "INVALID_REQUEST"


async def test_transfers_journal_filters_and_pending_status(
    api: Api, books: tuple[History, str]
) -> None:
    history, key = books
    conn = await asyncpg.connect(api.dsn)
    try:
        truth = await committed_transfers(conn, history.marketplace_id)
    finally:
        await conn.close()
    journal = await _all_pages(api, f"{LEDGER}/transfers", key, limit=3)
    assert [transfer["id"] for transfer in journal] == [t["id"] for t in truth]
    assert [parse_amount(transfer["amount"]) for transfer in journal] == [
        t["amount"] for t in truth
    ]
    pending = [t for t in journal if t["phase"] == "PENDING"]
    assert [t["pending_status"] for t in pending] == ["POSTED", "VOIDED", "OPEN"]
    assert all(t["pending_status"] is None for t in journal if t["phase"] != "PENDING")
    fees = history.accounts[1]
    touching = await _all_pages(api, f"{LEDGER}/transfers", key, account_id=fees)
    assert [t["credit_account"]["id"] for t in touching] == [fees]
    assert touching[0]["credit_account"]["code"] == "fees:platform"
    posting = next(t for t in journal if t["phase"] == "POST_PENDING")
    one = await api.get(f"{LEDGER}/transfers/{posting['id']}", key)
    assert one.json() == posting
    assert one.json()["pending_id"] == pending[0]["id"]
    # The totals of the journal are the ledger's counters.
    posted = counters(truth)
    assert sum(p[0] for p in posted.values()) == sum(p[1] for p in posted.values())


async def test_unknown_ids_other_tenants_and_scopes(api: Api, books: tuple[History, str]) -> None:
    history, key = books
    _, stranger = await api.tenant(["support"])
    account, transfer_answer = history.accounts[2], await api.get(f"{LEDGER}/transfers", key)
    transfer = transfer_answer.json()["data"][0]["id"]
    for who in (stranger, key):
        missing_account = "acc_" + "0" * 32 if who is key else account
        missing_transfer = "trf_" + "0" * 32 if who is key else transfer
        answer = await api.get(f"{LEDGER}/accounts/{missing_account}", who)
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, "ACCOUNT_NOT_FOUND")
        answer = await api.get(f"{LEDGER}/accounts/{missing_account}/entries", who)
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, "ACCOUNT_NOT_FOUND")
        answer = await api.get(f"{LEDGER}/transfers/{missing_transfer}", who)
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, "TRANSFER_NOT_FOUND")
    assert (await api.get(f"{LEDGER}/transfers", stranger)).json()["data"] == []
    assert (await api.get(f"{LEDGER}/accounts", stranger)).json()["data"] == []
    _, reader = await api.tenant(["read"])
    denied = await api.get(f"{LEDGER}/accounts", reader)
    assert (denied.status_code, denied.json()["error"]["code"]) == (403, "INSUFFICIENT_SCOPE")
