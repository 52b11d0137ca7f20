"""Airtm withdrawals over HTTP on the sandbox (api.md 3.8, 3.14, 5.6).

The Airtm simulator is driven directly (recipient accounts, the enterprise balance, payouts
completing or failing); the API learns the outcome by ``refresh``. The hold placed at creation
is posted on completion and voided on failure or cancel, so ``available`` tells the story.
"""

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from flows.users import link_airtm
from ledger import run_in_transaction
from providers.sandbox.airtm_state import AirtmState
from tests.api.support import running_api_on_sandbox
from tests.api.test_orders_support import ACTOR, USDC, Market, code, new_market

pytestmark = pytest.mark.db

WD = "/withdrawals"
PAYEE = "payee@example.com"


@pytest.fixture
async def market(db_dsn: str, pool: asyncpg.Pool) -> AsyncIterator[Market]:
    async with running_api_on_sandbox(db_dsn, wait_s=3.0) as api:
        api.sandbox.airtm.fund(1_000 * USDC)
        api.sandbox.airtm.add_user(PAYEE)
        yield await new_market(api, pool)


def _airtm(market: Market) -> AirtmState:
    return market.sandbox_api.sandbox.airtm


async def _user(market: Market, credit: str = "100") -> str:
    """A user with ``credit`` USD on the ledger (an Airtm payout needs no wallet)."""
    user = await market.user()
    await market.credit(user, credit)
    return user


def _body(user: str, amount: str, **fields: Any) -> dict[str, Any]:
    return {"user_id": user, "amount": amount, "destination_type": "airtm_balance", **fields}


async def _ok(market: Market, path: str, body: Any = None, status: int = 200) -> dict[str, Any]:
    response = await market.post(path, body)
    assert response.status_code == status, response.text
    return dict(response.json())


async def test_create_commit_and_complete(market: Market) -> None:
    user = await _user(market)
    created = await market.post(WD, _body(user, "40", destination_ref=PAYEE, description="May"))
    assert created.status_code == 201, created.text
    withdrawal = created.json()
    assert created.headers["location"] == f"/api/v1{WD}/{withdrawal['id']}"
    assert withdrawal["status"] == "WITHDRAWAL_CREATED"
    assert (withdrawal["destination_type"], withdrawal["destination_ref"]) == (
        "airtm_balance",
        PAYEE,
    )
    assert withdrawal["committed"] is False
    assert withdrawal["memo"] is None
    assert withdrawal["transaction_hash"] is None
    payout_id = withdrawal["airtm_payout_id"]
    payout = _airtm(market).payout(payout_id)
    assert (payout.code, payout.status.value) == (withdrawal["id"], "CREATED")
    assert await market.balance(user) == {
        "available": "60.00",
        "reserved": "40.00",
        "total": "100.00",
    }

    path = f"{WD}/{withdrawal['id']}"
    committed = await _ok(market, f"{path}/commit")
    assert (committed["status"], committed["committed"]) == ("WITHDRAWAL_COMMITTED", True)
    assert _airtm(market).payout(payout_id).status.value == "COMMITTED"
    again = await market.post(f"{path}/commit")
    assert (again.status_code, code(again)) == (409, "WITHDRAWAL_NOT_COMMITTABLE")
    late_cancel = await market.post(f"{path}/cancel")
    assert (late_cancel.status_code, code(late_cancel)) == (409, "INVALID_STATE")
    assert late_cancel.json()["error"]["details"]["allowed_states"] == [
        "WITHDRAWAL_CREATED",
        "WITHDRAWAL_PENDING_USER_ACTION",
    ]
    unchanged = await _ok(market, f"{path}/refresh")
    assert unchanged["status"] == "WITHDRAWAL_COMMITTED"

    _airtm(market).payout_completes(payout_id)
    completed = await _ok(market, f"{path}/refresh")
    assert completed["status"] == "WITHDRAWAL_COMPLETED"
    assert completed["completed_at"] is not None
    assert await market.balance(user) == {
        "available": "60.00",
        "reserved": "0.00",
        "total": "60.00",
    }
    twice = await _ok(market, f"{path}/refresh")
    assert twice == completed
    assert await market.posted(f"user:{user}") == 60 * USDC
    listed = await market.get(WD, destination_type="airtm_balance", status="WITHDRAWAL_COMPLETED")
    assert [item["id"] for item in listed.json()["data"]] == [withdrawal["id"]]


async def test_linked_account_commit_at_once_then_airtm_fails_it(market: Market) -> None:
    user = await _user(market)
    unlinked = await market.post(WD, _body(user, "5"))
    assert (unlinked.status_code, code(unlinked)) == (422, "AIRTM_USER_NOT_LINKED")
    account = _airtm(market).users[PAYEE.casefold()]

    async def link(conn: asyncpg.Connection) -> None:
        await link_airtm(
            conn,
            marketplace_id=market.marketplace_id,
            user_id=user,
            airtm_user_id=account.id,
            airtm_email=PAYEE,
            actor=ACTOR,
        )

    await run_in_transaction(market.pool, link)
    created = await _ok(market, WD, _body(user, "25.50", commit=True), status=201)
    assert (created["status"], created["committed"]) == ("WITHDRAWAL_COMMITTED", True)
    assert created["destination_ref"] == PAYEE
    assert created["airtm_payout_id"] is not None
    assert await market.balance(user) == {
        "available": "74.50",
        "reserved": "25.50",
        "total": "100.00",
    }
    _airtm(market).payout_fails(created["airtm_payout_id"], "REJECTED", "compliance")
    failed = await _ok(market, f"{WD}/{created['id']}/refresh")
    assert failed["status"] == "WITHDRAWAL_FAILED"
    assert (failed["failure_code"], failed["failure_reason"]) == ("REJECTED", "compliance")
    assert await market.balance(user) == {
        "available": "100.00",
        "reserved": "0.00",
        "total": "100.00",
    }


async def test_cancel_in_created_and_in_pending_user_action(market: Market) -> None:
    user = await _user(market)
    first = await _ok(market, WD, _body(user, "10", destination_ref=PAYEE), status=201)
    canceled = await _ok(market, f"{WD}/{first['id']}/cancel", {"reason": "changed my mind"})
    assert canceled["status"] == "WITHDRAWAL_CANCELED"
    assert _airtm(market).payout(first["airtm_payout_id"]).status.value == "CANCELED"
    twice = await market.post(f"{WD}/{first['id']}/cancel")
    assert (twice.status_code, code(twice)) == (409, "INVALID_STATE")

    # An email without an Airtm account: the committed payout waits for the recipient.
    stranger = "new.person@example.com"
    body = _body(user, "30", destination_ref=stranger, commit=True)
    pending = await _ok(market, WD, body, status=201)
    assert pending["status"] == "WITHDRAWAL_PENDING_USER_ACTION"
    assert _airtm(market).payout(pending["airtm_payout_id"]).status.value == "PENDING"
    assert (await market.balance(user))["reserved"] == "30.00"
    dropped = await _ok(market, f"{WD}/{pending['id']}/cancel")
    assert dropped["status"] == "WITHDRAWAL_CANCELED"
    assert _airtm(market).payout(pending["airtm_payout_id"]).status.value == "CANCELED"
    assert await market.balance(user) == {
        "available": "100.00",
        "reserved": "0.00",
        "total": "100.00",
    }

    # The recipient signs up before the cancel arrives: Airtm refuses, 409 after a refresh.
    third = await _ok(
        market, WD, _body(user, "5", destination_ref="late@example.com", commit=True), status=201
    )
    _airtm(market).sign_up("late@example.com")
    refused = await market.post(f"{WD}/{third['id']}/cancel")
    assert (refused.status_code, code(refused)) == (409, "INVALID_STATE")
    assert _airtm(market).payout(third["airtm_payout_id"]).status.value == "COMMITTED"
    assert (await market.balance(user))["reserved"] == "5.00"


async def test_airtm_refusals(market: Market) -> None:
    user = await _user(market)
    _airtm(market).add_user("frozen@example.com", status="inactive")
    inactive = await market.post(WD, _body(user, "10", destination_ref="frozen@example.com"))
    assert (inactive.status_code, code(inactive)) == (422, "AIRTM_USER_INVALID")
    details = inactive.json()["error"]["details"]
    assert details["reason"] == "USER_INACTIVE"
    failed = (await market.get(f"{WD}/{details['withdrawal_id']}")).json()
    assert failed["status"] == "WITHDRAWAL_FAILED"
    assert failed["failure_code"] == "415060"
    assert await market.balance(user) == {
        "available": "100.00",
        "reserved": "0.00",
        "total": "100.00",
    }

    # More than the enterprise holds at Airtm: Airtm refuses, the hold is voided.
    rich = await _user(market, "5000")
    broke = await market.post(WD, _body(rich, "2000", destination_ref=PAYEE))
    assert (broke.status_code, code(broke)) == (502, "PROVIDER_ERROR")
    assert broke.json()["error"]["details"]["provider_code"] == "415016"
    assert (await market.balance(rich))["available"] == "5000.00"

    for amount, expected in (("1.001", "INVALID_AMOUNT"), ("0", "INVALID_AMOUNT")):
        response = await market.post(WD, _body(user, amount, destination_ref=PAYEE))
        assert (response.status_code, code(response)) == (400, expected)
    for destination in ("not-an-email", "a@b"):
        response = await market.post(WD, _body(user, "1", destination_ref=destination))
        assert (response.status_code, code(response)) == (422, "WITHDRAWAL_DESTINATION_INVALID")
        assert response.json()["error"]["details"]["reason"] == "invalid_email"
    memo = await market.post(WD, _body(user, "1", destination_ref=PAYEE, memo="x"))
    assert (memo.status_code, code(memo)) == (400, "VALIDATION_ERROR")
    poor = await market.post(WD, _body(user, "100.01", destination_ref=PAYEE))
    assert (poor.status_code, code(poor)) == (422, "INSUFFICIENT_FUNDS")


async def test_airtm_unreachable_answers_202_and_a_refresh_catches_up(market: Market) -> None:
    user = await _user(market)
    faults = market.sandbox_api.sandbox.faults
    faults.add("airtm", "*", "/payouts", "status:503", count=50)
    created = await market.post(WD, _body(user, "12", destination_ref=PAYEE))
    assert created.status_code == 202, created.text
    withdrawal = created.json()
    assert (withdrawal["status"], withdrawal["airtm_payout_id"]) == ("WITHDRAWAL_CREATED", None)
    assert created.headers["location"] == f"/api/v1{WD}/{withdrawal['id']}"
    busy = await market.post(f"{WD}/{withdrawal['id']}/cancel")
    assert (busy.status_code, code(busy)) == (409, "INVALID_STATE")
    down = await market.post(f"{WD}/{withdrawal['id']}/refresh")
    assert (down.status_code, code(down)) == (503, "PROVIDER_UNAVAILABLE")
    faults.clear()
    refreshed = await _ok(market, f"{WD}/{withdrawal['id']}/refresh")
    assert refreshed["status"] == "WITHDRAWAL_CREATED"
    assert (await market.balance(user))["reserved"] == "12.00"


async def test_other_marketplaces_cannot_touch_a_payout(market: Market) -> None:
    user = await _user(market)
    created = await _ok(market, WD, _body(user, "3", destination_ref=PAYEE), status=201)
    _, other = await market.api.tenant(["*"])
    path = f"/api/v1{WD}/{created['id']}"
    for action in ("commit", "refresh", "cancel"):
        response = await market.api.post(f"{path}/{action}", other)
        assert (response.status_code, code(response)) == (404, "WITHDRAWAL_NOT_FOUND"), action
    assert _airtm(market).payout(created["airtm_payout_id"]).status.value == "CREATED"
    assert (await market.get(f"{WD}/{created['id']}")).json()["status"] == "WITHDRAWAL_CREATED"
