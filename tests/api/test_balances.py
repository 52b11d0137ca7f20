"""Balances over HTTP (api.md 3.4): the ledger balance, as_of, and the audited adjustment."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.schemas import format_time
from common.ids import new_id
from common.money import format_amount, parse_amount
from tests.api.support import SandboxApi, running_api_on_sandbox
from tests.api.test_users import USERS

pytestmark = pytest.mark.db


@pytest.fixture
async def sandbox_api(db_dsn: str) -> AsyncIterator[SandboxApi]:
    """The app with its sandbox runtime and background runner."""
    async with running_api_on_sandbox(db_dsn) as running:
        yield running


async def _user(api: SandboxApi, key: str, external_id: str) -> str:
    answer = await api.post(USERS, key, {"external_user_id": external_id})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def _adjust(
    api: SandboxApi, key: str, user_id: str, direction: str, amount: Any, **extra: Any
) -> httpx.Response:
    body = {"direction": direction, "amount": amount, "reason": "support case 42", **extra}
    return await api.post(f"{USERS}/{user_id}/balance/adjustments", key, body)


async def _events(dsn: str, marketplace_id: str) -> list[tuple[str, dict[str, Any]]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT type, data::text FROM events WHERE marketplace_id = $1 AND type LIKE"
            " 'balance.%' ORDER BY sequence",
            marketplace_id,
        )
    finally:
        await conn.close()
    return [(row["type"], json.loads(row["data"])) for row in rows]


async def test_adjustments_move_the_balance_exactly_and_are_audited(
    sandbox_api: SandboxApi,
) -> None:
    api = sandbox_api
    marketplace_id, admin = await api.tenant(["admin"])
    user_id = await _user(api, admin, "adjusted")
    fresh = (await api.get(f"{USERS}/{user_id}/balance", admin)).json()
    assert fresh == {
        "user_id": user_id,
        "currency": "USD",
        "available": "0.00",
        "reserved": "0.00",
        "total": "0.00",
        "pending_deposits": "0.00",
        "as_of": None,
        "updated_at": fresh["updated_at"],
    }

    credit = await _adjust(api, admin, user_id, "CREDIT", "100", reference="case-42")
    assert credit.status_code == 201, credit.text
    assert credit.headers["location"] == f"{USERS}/{user_id}/balance"
    body = credit.json()
    assert body["id"].startswith("trf_")
    assert (body["direction"], body["amount"], body["currency"]) == ("CREDIT", "100.00", "USD")
    assert (body["reason"], body["reference"]) == ("support case 42", "case-42")
    assert body["counter_account"] == "fees:platform"
    assert body["created_by"].startswith("key_")
    assert body["balance"]["available"] == "100.00"
    # Rendered times are truncated to milliseconds: one more is after the credit's instant.
    between = format_time(datetime.fromisoformat(body["created_at"]) + timedelta(milliseconds=1))
    await asyncio.sleep(0.01)

    debit = await _adjust(
        api, admin, user_id, "DEBIT", "30.1234567", counter_account="external:airtm"
    )
    assert debit.status_code == 201, debit.text
    assert debit.json()["reference"] is None
    assert debit.json()["counter_account"] == "external:airtm"
    assert debit.json()["balance"]["available"] == "69.8765433"
    now = (await api.get(f"{USERS}/{user_id}/balance", admin)).json()
    assert (now["available"], now["reserved"], now["total"]) == ("69.8765433", "0.00", "69.8765433")
    assert now["updated_at"] == debit.json()["created_at"]

    then = (await api.get(f"{USERS}/{user_id}/balance", admin, as_of=between)).json()
    assert then["available"] == "100.00"
    assert then["as_of"] == between
    before = (
        await api.get(f"{USERS}/{user_id}/balance", admin, as_of="2020-01-01T00:00:00+02:00")
    ).json()
    assert before["available"] == "0.00"
    assert before["as_of"] == "2019-12-31T22:00:00.000Z"

    too_much = await _adjust(api, admin, user_id, "DEBIT", "69.8765434")
    assert too_much.status_code == 422
    error = too_much.json()["error"]
    assert error["code"] == "INSUFFICIENT_FUNDS"
    assert error["details"] == {
        "user_id": user_id,
        "available": "69.8765433",
        "requested": "69.8765434",
        "currency": "USD",
    }
    assert (await api.get(f"{USERS}/{user_id}/balance", admin)).json()["available"] == now[
        "available"
    ]

    events = await _events(api.dsn, marketplace_id)
    assert [kind for kind, _ in events] == ["balance.credited", "balance.debited"]
    credited, debited = events[0][1], events[1][1]
    assert credited["source"] == "adjustment"
    assert credited["transfer_id"] == body["id"]
    assert (credited["amount"], credited["available"]) == ("100.00", "100.00")
    assert debited["destination"] == "adjustment"
    assert (debited["amount"], debited["available"]) == ("30.1234567", "69.8765433")


async def test_a_refused_debit_is_stored_and_replayed(sandbox_api: SandboxApi) -> None:
    api = sandbox_api
    _, admin = await api.tenant(["admin"])
    user_id = await _user(api, admin, "poor")
    path = f"{USERS}/{user_id}/balance/adjustments"
    body = {"direction": "DEBIT", "amount": "1", "reason": "r"}
    refused = await api.post(path, admin, body, idempotency_key="debit-1")
    assert refused.status_code == 422
    assert (await _adjust(api, admin, user_id, "CREDIT", "5")).status_code == 201
    replay = await api.post(path, admin, body, idempotency_key="debit-1")
    assert replay.status_code == 422
    assert replay.headers["idempotency-replayed"] == "true"
    assert replay.json() == refused.json()
    assert (await api.get(f"{USERS}/{user_id}/balance", admin)).json()["available"] == "5.00"


async def test_bad_adjustments_are_400_and_need_admin(sandbox_api: SandboxApi) -> None:
    api = sandbox_api
    marketplace_id, admin = await api.tenant(["admin"])
    user_id = await _user(api, admin, "strict")
    cases: list[tuple[dict[str, Any], str, set[str]]] = [
        ({"amount": "-1"}, "INVALID_AMOUNT_FORMAT", {"amount"}),
        ({"amount": "1e5"}, "INVALID_AMOUNT_FORMAT", {"amount"}),
        ({"amount": 1.5}, "INVALID_AMOUNT_FORMAT", {"amount"}),
        ({"amount": "0.00000001"}, "INVALID_AMOUNT_FORMAT", {"amount"}),
        ({"amount": "0"}, "INVALID_AMOUNT", {"amount"}),
        ({"currency": "EUR"}, "INVALID_CURRENCY", {"currency"}),
        ({"direction": "SIDEWAYS"}, "VALIDATION_ERROR", {"direction"}),
        ({"reason": ""}, "VALIDATION_ERROR", {"reason"}),
        ({"reason": "x" * 501}, "VALIDATION_ERROR", {"reason"}),
        ({"reference": "x" * 256}, "VALIDATION_ERROR", {"reference"}),
        ({"counter_account": "escrow:x"}, "VALIDATION_ERROR", {"counter_account"}),
        ({"colour": "red"}, "VALIDATION_ERROR", {"colour"}),
    ]
    valid = {"direction": "CREDIT", "amount": "1", "reason": "r"}
    for change, code, fields in cases:
        answer = await api.post(f"{USERS}/{user_id}/balance/adjustments", admin, valid | change)
        assert answer.status_code == 400, (change, answer.text)
        assert answer.json()["error"]["code"] == code, change
        reported = {item["field"] for item in answer.json()["error"]["details"]["fields"]}
        assert reported == fields, change
    missing = await api.post(f"{USERS}/{user_id}/balance/adjustments", admin, {})
    assert {item["field"] for item in missing.json()["error"]["details"]["fields"]} == {
        "direction",
        "amount",
        "reason",
    }
    writer = await api.new_key(marketplace_id, ["write", "read", "support"])
    denied = await _adjust(api, writer, user_id, "CREDIT", "1")
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "INSUFFICIENT_SCOPE"
    bad_time = await api.get(f"{USERS}/{user_id}/balance", admin, as_of="yesterday")
    assert bad_time.status_code == 400
    assert bad_time.json()["error"]["details"]["fields"][0]["field"] == "query.as_of"
    assert (await api.get(f"{USERS}/{user_id}/balance", admin)).json()["available"] == "0.00"


async def test_the_reference_raw_balance_routes_do_not_exist(sandbox_api: SandboxApi) -> None:
    api = sandbox_api
    _, admin = await api.tenant(["admin"])
    user_id = await _user(api, admin, "raw")
    body = {"amount": "10", "reason": "r"}
    for action in ("credit", "debit", "reserve", "release", "sync", "verify"):
        posted = await api.post(f"{USERS}/{user_id}/balance/{action}", admin, body)
        assert posted.status_code == 404, action
        assert posted.json()["error"]["code"] == "NOT_FOUND"
        fetched = await api.get(f"{USERS}/{user_id}/balance/{action}", admin)
        assert fetched.json()["error"]["code"] == "NOT_FOUND"
    assert (await api.get(f"{USERS}/{user_id}/balance", admin)).json()["available"] == "0.00"


# Amounts as the wire carries them: up to 12 integer digits, up to 7 decimals.
wire_amounts = st.integers(1, 10**9 * 10**7).map(format_amount)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=st.lists(st.tuples(st.booleans(), wire_amounts), min_size=1, max_size=6))
async def test_any_series_of_adjustments_lands_exactly(
    sandbox_api: SandboxApi, plan: list[tuple[bool, str]]
) -> None:
    """Credits add, debits within available subtract, debits beyond it change nothing."""
    api = sandbox_api
    _, admin = await api.tenant(["admin"])  # a new marketplace per example
    user_id = await _user(api, admin, "prop")
    expected = 0
    for is_credit, amount in plan:
        minor = parse_amount(amount)
        answer = await _adjust(api, admin, user_id, "CREDIT" if is_credit else "DEBIT", amount)
        if is_credit or minor <= expected:
            assert answer.status_code == 201, answer.text
            expected += minor if is_credit else -minor
            assert answer.json()["balance"]["available"] == format_amount(expected)
        else:
            assert answer.status_code == 422
            assert answer.json()["error"]["details"]["available"] == format_amount(expected)
    balance = (await api.get(f"{USERS}/{user_id}/balance", admin)).json()
    assert balance["available"] == balance["total"] == format_amount(expected)


async def test_pending_deposits_count_top_ups_in_processing_now_and_as_of(
    sandbox_api: SandboxApi,
) -> None:
    api = sandbox_api
    marketplace_id, admin = await api.tenant(["admin"])
    user_id = await _user(api, admin, "topped")
    now = datetime.now(UTC)
    created, processing = now - timedelta(hours=1), now - timedelta(minutes=30)
    conn = await asyncpg.connect(api.dsn)
    try:
        # A top-up the payer is paying (set up as the top-up flow leaves it).
        topup_id = new_id("topup_")
        await conn.execute(
            "INSERT INTO topups (marketplace_id, id, user_id, amount_minor, status, return_url,"
            " cancel_url, airtm_payin_id, created_at) VALUES ($1, $2, $3, $4,"
            " 'TOPUP_PROCESSING', 'https://r', 'https://c', 'payin-1', $5)",
            marketplace_id,
            topup_id,
            user_id,
            25 * 10_000_000,
            created,
        )
        for from_status, to_status, at in [
            ("TOPUP_CREATED", "TOPUP_AWAITING_USER_CONFIRMATION", created),
            ("TOPUP_AWAITING_USER_CONFIRMATION", "TOPUP_PROCESSING", processing),
        ]:
            await conn.execute(
                "INSERT INTO state_transitions (marketplace_id, resource_type, resource_id,"
                " from_status, to_status, event, actor_type, occurred_at)"
                " VALUES ($1, 'topup', $2, $3, $4, 'test', 'SYSTEM', $5)",
                marketplace_id,
                topup_id,
                from_status,
                to_status,
                at,
            )
    finally:
        await conn.close()
    path = f"{USERS}/{user_id}/balance"
    current = (await api.get(path, admin)).json()
    assert (current["pending_deposits"], current["available"], current["total"]) == (
        "25.00",
        "0.00",
        "0.00",
    )
    awaiting = await api.get(path, admin, as_of=format_time(processing - timedelta(seconds=1)))
    assert awaiting.json()["pending_deposits"] == "0.00"
    paying = await api.get(path, admin, as_of=format_time(processing + timedelta(seconds=1)))
    assert paying.json()["pending_deposits"] == "25.00"
    # The balance an adjustment answers with is the same read, pending deposits included.
    adjusted = await _adjust(api, admin, user_id, "CREDIT", "1")
    assert adjusted.status_code == 201, adjusted.text
    assert adjusted.json()["balance"]["pending_deposits"] == "25.00"
