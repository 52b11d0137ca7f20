"""Provider news: Airtm statuses and chain outcomes move a withdrawal forward, never back."""

import re
from typing import Any, Final

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stellar_sdk import Keypair

from common.errors import InvalidRequest
from flows.withdrawal_status import StatusUpdate, airtm_target, plan_path
from flows.withdrawals import WithdrawalStarted, apply_provider_status, create_withdrawal
from statemachines import WithdrawalStatus as S
from tests.db.test_withdrawals_support import (
    ACTOR,
    PROVIDER,
    TX_HASH,
    USD,
    Shop,
    make_shop,
)

pytestmark = pytest.mark.db

# How far along each status is; PENDING and PENDING_USER_ACTION are peers (Airtm moves either way).
RANK: Final = {
    S.WITHDRAWAL_CREATED: 0,
    S.WITHDRAWAL_COMMITTED: 1,
    S.WITHDRAWAL_PENDING: 2,
    S.WITHDRAWAL_PENDING_USER_ACTION: 2,
    S.WITHDRAWAL_COMPLETED: 3,
    S.WITHDRAWAL_FAILED: 3,
    S.WITHDRAWAL_CANCELED: 3,
}
AIRTM_STATUSES: Final = [
    "CREATED",
    "COMMITTED",
    "PROCESSING",
    "SIGNED",
    "PENDING",
    "BRIDGE_USER_SIGNUP_PENDING",
    "COMPLETED",
    "FAILED",
    "CANCELED",
    "ERROR",
    "SOMETHING_NEW",
    "completed",
]


@pytest.fixture(name="shop")
async def shop_fixture(pool: asyncpg.Pool) -> Shop:
    return await make_shop(pool)


async def _airtm(shop: Shop, amount: int = 10 * USD, *, commit: bool = False) -> tuple[str, str]:
    """An Airtm withdrawal (payout creation done); returns (user id, withdrawal id)."""
    user = await shop.user(funded=amount, wallet=False, airtm_email="ana@example.com")
    async with shop.pool.acquire() as conn, conn.transaction():
        started: WithdrawalStarted = await create_withdrawal(
            conn,
            shop.steps.registry,
            marketplace_id=shop.marketplace_id,
            user_id=user.id,
            amount_minor=amount,
            destination_type="airtm_balance",
            destination_ref=None,
            commit=commit,
            actor=ACTOR,
        )
    return user.id, started.withdrawal.id


async def _apply(shop: Shop, withdrawal_id: str, **news: Any) -> StatusUpdate:
    async with shop.pool.acquire() as conn, conn.transaction():
        return await apply_provider_status(
            conn,
            marketplace_id=shop.marketplace_id,
            withdrawal_id=withdrawal_id,
            actor=PROVIDER,
            **news,
        )


def test_airtm_statuses_map_as_api_md_says() -> None:
    assert airtm_target("created") == S.WITHDRAWAL_CREATED
    assert airtm_target("COMMITTED") == S.WITHDRAWAL_COMMITTED
    assert airtm_target("PROCESSING") == S.WITHDRAWAL_PENDING
    assert airtm_target("COSMOEM_COMPLETED") == S.WITHDRAWAL_PENDING
    assert airtm_target("PENDING") == S.WITHDRAWAL_PENDING_USER_ACTION
    assert airtm_target("Completed") == S.WITHDRAWAL_COMPLETED
    assert airtm_target("FAILED") == S.WITHDRAWAL_FAILED
    assert airtm_target("CANCELED") == S.WITHDRAWAL_CANCELED
    for unmapped in ("ERROR", "BRIDGE_FAILED", "BRIDGE_MAX_RETRIES_REACHED", "NEW_THING"):
        assert airtm_target(unmapped) is None


def test_paths_only_go_forward() -> None:
    assert plan_path(S.WITHDRAWAL_CREATED, S.WITHDRAWAL_COMPLETED) == ["commit", "complete"]
    assert plan_path(S.WITHDRAWAL_COMMITTED, S.WITHDRAWAL_COMPLETED, via_pending=True) == [
        "process",
        "complete",
    ]
    assert plan_path(S.WITHDRAWAL_PENDING, S.WITHDRAWAL_COMMITTED) is None
    assert plan_path(S.WITHDRAWAL_COMMITTED, S.WITHDRAWAL_CREATED) is None
    assert plan_path(S.WITHDRAWAL_PENDING_USER_ACTION, S.WITHDRAWAL_PENDING) == ["process"]
    assert plan_path(S.WITHDRAWAL_CREATED, S.WITHDRAWAL_CANCELED) == ["cancel"]
    assert plan_path(S.WITHDRAWAL_PENDING, S.WITHDRAWAL_CANCELED) == ["cancel_by_provider"]
    for final in (S.WITHDRAWAL_COMPLETED, S.WITHDRAWAL_FAILED, S.WITHDRAWAL_CANCELED):
        for target in S:
            assert plan_path(final, target) is None


async def test_a_status_several_steps_ahead_applies_each_step_in_order(shop: Shop) -> None:
    user_id, withdrawal_id = await _airtm(shop)
    await shop.run_worker()
    update = await _apply(shop, withdrawal_id, airtm_status="PENDING", airtm_payout_id="po_x")
    assert update.events == ["commit", "require_user_action"]
    assert await shop.transitions(withdrawal_id) == [
        ("WITHDRAWAL_CREATED", "WITHDRAWAL_COMMITTED", "commit"),
        ("WITHDRAWAL_COMMITTED", "WITHDRAWAL_PENDING_USER_ACTION", "require_user_action"),
    ]
    # The payout id stored by the creation operation wins over a different one in the news.
    assert update.withdrawal.airtm_payout_id == "po_" + withdrawal_id
    update = await _apply(shop, withdrawal_id, airtm_status="COMPLETED")
    assert update.events == ["complete"]
    events = await shop.events(withdrawal_id)
    assert [event.type for event in events] == [
        "withdrawal.created",
        "withdrawal.committed",
        "withdrawal.pending_user_action",
        "withdrawal.completed",
    ]
    assert events[2].data["action_required"] == "airtm_signup_or_verification"
    assert events[3].data["airtm_payout_id"] == "po_" + withdrawal_id
    assert (await shop.balance(f"user:{user_id}")).posted == 0
    assert (await shop.balance("clearing:withdrawals")).posted == 0
    # external:airtm is debit-normal: money that left shows as a negative balance.
    assert (await shop.balance("external:airtm")).posted == -10 * USD
    settle = (await shop.transfers(user_id))[-1]
    assert (settle["code"], settle["credit"], settle["external_ref"]) == (
        "withdrawal_settle",
        "external:airtm",
        "po_" + withdrawal_id,
    )
    await shop.assert_books_balance()


async def test_stale_unknown_and_late_news_change_nothing(shop: Shop) -> None:
    user_id, withdrawal_id = await _airtm(shop, commit=True)
    assert (await _apply(shop, withdrawal_id, airtm_status="PROCESSING")).events == ["process"]
    for stale in ("COMMITTED", "CREATED"):
        update = await _apply(shop, withdrawal_id, airtm_status=stale)
        assert (update.outcome, update.withdrawal.status) == ("stale", "WITHDRAWAL_PENDING")
    for unknown in ("ERROR", "BRIDGE_MAX_RETRIES_REACHED", "MYSTERY"):
        update = await _apply(shop, withdrawal_id, airtm_status=unknown)
        assert (update.outcome, update.withdrawal.status) == ("unrecognized", "WITHDRAWAL_PENDING")
    failed = await _apply(
        shop, withdrawal_id, airtm_status="FAILED", failure_reason="recipient blocked"
    )
    assert failed.events == ["fail"]
    assert (failed.withdrawal.failure_code, failed.withdrawal.failure_reason) == (
        "payout_failed",
        "recipient blocked",
    )
    before = await shop.footprint()
    for late in ("COMPLETED", "CANCELED", "PROCESSING"):
        update = await _apply(shop, withdrawal_id, airtm_status=late)
        assert (update.outcome, update.withdrawal.status) == ("final", "WITHDRAWAL_FAILED")
    assert await shop.footprint() == before
    assert (await shop.balance(f"user:{user_id}")).available == 10 * USD
    await shop.assert_books_balance()


async def test_provider_cancel_of_a_committed_payout(shop: Shop) -> None:
    user_id, withdrawal_id = await _airtm(shop, commit=True)
    update = await _apply(shop, withdrawal_id, airtm_status="CANCELED", failure_reason="expired")
    assert update.events == ["cancel_by_provider"]
    event = (await shop.events(withdrawal_id))[-1]
    assert (event.type, event.data["canceled_by"]) == ("withdrawal.canceled", "provider")
    assert update.withdrawal.failure_reason == "expired"
    assert (await shop.balance(f"user:{user_id}")).available == 10 * USD


async def test_chain_outcomes(shop: Shop) -> None:
    user = await shop.user(funded=10 * USD)
    async with shop.pool.acquire() as conn, conn.transaction():
        started = await create_withdrawal(
            conn,
            shop.steps.registry,
            marketplace_id=shop.marketplace_id,
            user_id=user.id,
            amount_minor=4 * USD,
            destination_type="crypto",
            destination_ref=Keypair.random().public_key,
            actor=ACTOR,
        )
    withdrawal_id = started.withdrawal.id
    with pytest.raises(InvalidRequest):
        await _apply(shop, withdrawal_id, airtm_status="COMPLETED")
    with pytest.raises(InvalidRequest):
        await _apply(shop, withdrawal_id)
    submitted = await _apply(
        shop, withdrawal_id, chain_outcome="submitted", transaction_hash=TX_HASH
    )
    assert submitted.events == ["process"]
    pending = (await shop.events(withdrawal_id))[-1]
    assert (pending.type, pending.data["transaction_hash"]) == ("withdrawal.pending", TX_HASH)
    confirmed = await _apply(shop, withdrawal_id, chain_outcome="confirmed")
    assert confirmed.events == ["complete"]
    assert confirmed.withdrawal.transaction_hash == TX_HASH
    assert (await shop.balance("external:stellar")).posted == 6 * USD
    again = await _apply(shop, withdrawal_id, chain_outcome="failed")
    assert again.outcome == "final"
    await shop.assert_books_balance()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(news=st.lists(st.sampled_from(AIRTM_STATUSES), min_size=1, max_size=8))
async def test_any_order_of_airtm_news_only_moves_forward(
    pool: asyncpg.Pool, news: list[str]
) -> None:
    # A new marketplace per example: fixtures are not reset between hypothesis examples.
    shop = await make_shop(pool)
    user_id, withdrawal_id = await _airtm(shop)
    status = S.WITHDRAWAL_CREATED
    for text in news:
        update = await _apply(shop, withdrawal_id, airtm_status=text)
        new = S(update.withdrawal.status)
        assert RANK[new] >= RANK[status]
        if RANK[status] == 3:
            assert new == status
        target = airtm_target(text)
        if update.outcome == "applied":
            assert new == target
        status = new
    transitions = await shop.transitions(withdrawal_id)
    # The transition log is one unbroken chain from CREATED to where the row is.
    chain = ["WITHDRAWAL_CREATED", *[t[1] for t in transitions]]
    assert [t[0] for t in transitions] == chain[:-1]
    assert chain[-1] == status
    user = await shop.balance(f"user:{user_id}")
    clearing = await shop.counters("clearing:withdrawals")
    if status == S.WITHDRAWAL_COMPLETED:
        assert (user.posted, user.reserved) == (0, 0)
        assert clearing == (0, 10 * USD, 0, 10 * USD)
    elif status in (S.WITHDRAWAL_FAILED, S.WITHDRAWAL_CANCELED):
        assert (user.available, user.reserved) == (10 * USD, 0)
        assert clearing == (0, 0, 0, 0)
    else:
        assert (user.available, user.reserved) == (0, 10 * USD)
    types = await shop.event_types(withdrawal_id)
    assert types.count("withdrawal.committed") <= 1
    assert sum(t.endswith(("completed", "failed", "canceled")) for t in types) <= 1
    await shop.assert_books_balance()


async def test_the_status_check_lists_exactly_the_machine_labels(pool: asyncpg.Pool) -> None:
    definition = await pool.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conname = 'withdrawals_status_values'"
    )
    labels = set(re.findall(r"'([A-Z_]+)'", definition))
    assert labels == {status.value for status in S}
