"""Withdrawals: the hold, completion, failure and cancel postings, commit, errors, reads."""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from stellar_sdk import Keypair

from common.errors import (
    AirtmUserNotLinked,
    AppError,
    InsufficientFunds,
    InvalidAmount,
    InvalidTransition,
    UserNotFound,
    ValidationFailed,
    WalletNotReady,
    WithdrawalDestinationInvalid,
    WithdrawalNotCommittable,
    WithdrawalNotFound,
)
from flows.withdrawals import (
    WithdrawalStarted,
    apply_provider_status,
    cancel_withdrawal,
    commit_withdrawal,
    create_withdrawal,
    get_withdrawal,
    list_withdrawals,
)
from providers.stellar.port import AccountState
from tests.db.test_withdrawals_support import (
    ACTOR,
    PROVIDER,
    TX_HASH,
    USD,
    Shop,
    User,
    make_shop,
)

pytestmark = pytest.mark.db


@pytest.fixture(name="shop")
async def shop_fixture(pool: asyncpg.Pool) -> Shop:
    return await make_shop(pool)


async def _create(shop: Shop, user: User, amount: int, **fields: Any) -> WithdrawalStarted:
    fields.setdefault("destination_type", "crypto")
    if fields["destination_type"] == "crypto":
        fields.setdefault("destination_ref", Keypair.random().public_key)
    else:
        fields.setdefault("destination_ref", None)
    async with shop.pool.acquire() as conn, conn.transaction():
        return await create_withdrawal(
            conn,
            shop.steps.registry,
            marketplace_id=shop.marketplace_id,
            user_id=user.id,
            amount_minor=amount,
            actor=ACTOR,
            **fields,
        )


async def _in_tx(shop: Shop, work: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
    async with shop.pool.acquire() as conn, conn.transaction():
        return await work(conn)


async def test_crypto_withdrawal_holds_commits_and_starts_the_payment(shop: Shop) -> None:
    user = await shop.user(funded=100 * USD)
    destination = Keypair.random().public_key
    started = await _create(
        shop, user, 30 * USD, destination_ref=destination, memo="invoice 7", description="rent"
    )
    row = started.withdrawal
    assert (row.status, row.committed, row.memo) == ("WITHDRAWAL_COMMITTED", True, "invoice 7")
    user_balance = await shop.balance(f"user:{user.id}")
    assert (user_balance.available, user_balance.reserved) == (70 * USD, 30 * USD)
    assert await shop.counters("clearing:withdrawals") == (0, 0, 30 * USD, 0)
    [hold] = await shop.transfers(user.id)
    assert hold["code"] == "withdrawal_hold"
    assert hold["phase"] == "PENDING"
    assert (hold["debit"], hold["credit"]) == (f"user:{user.id}", "clearing:withdrawals")
    assert await shop.event_types(row.id) == ["withdrawal.created", "withdrawal.committed"]
    [reserved] = await shop.events(user.id)
    assert reserved.type == "balance.reserved"
    assert reserved.data | {"transfer_id": None} == {
        "user_id": user.id,
        "amount": "30.00",
        "currency": "USD",
        "order_id": None,
        "withdrawal_id": row.id,
        "transfer_id": None,
        "available": "70.00",
        "reserved": "30.00",
    }
    assert started.operation is not None
    assert started.operation.kind == "WITHDRAWAL_PAYMENT"
    wallet_id = await shop.pool.fetchval("SELECT id FROM wallets WHERE user_id = $1", user.id)
    assert started.operation.payload == {
        "withdrawal_id": row.id,
        "wallet_id": wallet_id,
        "destination": destination,
        "amount_minor": 30 * USD,
        "memo": "invoice 7",
    }
    assert await shop.transitions(row.id) == [
        ("WITHDRAWAL_CREATED", "WITHDRAWAL_COMMITTED", "commit")
    ]
    await shop.assert_books_balance()


async def test_completion_posts_the_hold_and_settles_to_the_chain(shop: Shop) -> None:
    user = await shop.user(funded=100 * USD)
    row = (await _create(shop, user, 40 * USD)).withdrawal

    update = await _in_tx(
        shop,
        lambda conn: apply_provider_status(
            conn,
            marketplace_id=shop.marketplace_id,
            withdrawal_id=row.id,
            chain_outcome="confirmed",
            transaction_hash=TX_HASH,
            actor=PROVIDER,
        ),
    )
    assert update.outcome == "applied"
    assert update.events == ["process", "complete"]
    done = update.withdrawal
    assert done.status == "WITHDRAWAL_COMPLETED"
    assert done.transaction_hash == TX_HASH
    assert done.completed_at is not None
    user_balance = await shop.balance(f"user:{user.id}")
    assert (user_balance.posted, user_balance.available, user_balance.reserved) == (
        60 * USD,
        60 * USD,
        0,
    )
    # Clearing is back to zero; the outside world mirrors the money that left.
    assert await shop.counters("clearing:withdrawals") == (0, 40 * USD, 0, 40 * USD)
    assert (await shop.balance("clearing:withdrawals")).posted == 0
    assert (await shop.balance("external:stellar")).posted == 60 * USD
    _hold, post, settle = await shop.transfers(user.id)
    assert (post["code"], post["phase"], post["pending_id"]) == (
        "withdrawal_complete",
        "POST_PENDING",
        done.hold_transfer_id,
    )
    assert (settle["code"], settle["phase"], settle["debit"], settle["credit"]) == (
        "withdrawal_settle",
        "SINGLE",
        "clearing:withdrawals",
        "external:stellar",
    )
    assert post["linked_group"] is not None
    assert post["linked_group"] == settle["linked_group"]
    assert settle["external_ref"] == TX_HASH
    assert await shop.event_types(row.id) == [
        "withdrawal.created",
        "withdrawal.committed",
        "withdrawal.pending",
        "withdrawal.completed",
    ]
    released = (await shop.events(user.id))[-1]
    assert released.type == "balance.released"
    assert released.data["reason"] == "withdrawal_completed"
    assert released.data["returned_to_available"] is False
    assert (released.data["available"], released.data["reserved"]) == ("60.00", "0.00")
    completed = (await shop.events(row.id))[-1]
    assert completed.data["transaction_hash"] == TX_HASH
    assert completed.data["completed_at"].endswith("Z")
    await shop.assert_books_balance()


async def test_failure_voids_the_hold(shop: Shop) -> None:
    user = await shop.user(funded=50 * USD)
    row = (await _create(shop, user, 50 * USD)).withdrawal
    update = await _in_tx(
        shop,
        lambda conn: apply_provider_status(
            conn,
            marketplace_id=shop.marketplace_id,
            withdrawal_id=row.id,
            chain_outcome="failed",
            transaction_hash=TX_HASH,
            failure_code="op_no_trust",
            failure_reason="destination lacks a USDC trustline",
            actor=PROVIDER,
        ),
    )
    failed = update.withdrawal
    assert (failed.status, failed.failure_code) == ("WITHDRAWAL_FAILED", "op_no_trust")
    user_balance = await shop.balance(f"user:{user.id}")
    assert (user_balance.available, user_balance.reserved) == (50 * USD, 0)
    assert await shop.counters("clearing:withdrawals") == (0, 0, 0, 0)
    assert [t["code"] for t in await shop.transfers(user.id)] == [
        "withdrawal_hold",
        "withdrawal_void",
    ]
    assert (await shop.event_types(row.id))[-1] == "withdrawal.failed"
    assert (await shop.events(row.id))[-1].data == {
        "withdrawal_id": row.id,
        "user_id": user.id,
        "amount": "50.00",
        "reason": "destination lacks a USDC trustline",
        "error_code": "op_no_trust",
    }
    released = (await shop.events(user.id))[-1]
    assert (released.data["reason"], released.data["returned_to_available"]) == (
        "withdrawal_failed",
        True,
    )
    await shop.assert_books_balance()


async def test_airtm_withdrawal_created_then_canceled(shop: Shop) -> None:
    user = await shop.user(funded=80 * USD, wallet=False, airtm_email="ana@example.com")
    started = await _create(shop, user, 25 * USD, destination_type="airtm_balance")
    row = started.withdrawal
    assert (row.status, row.committed, row.destination_ref) == (
        "WITHDRAWAL_CREATED",
        False,
        "ana@example.com",
    )
    assert started.operation is not None
    assert started.operation.payload == {
        "withdrawal_id": row.id,
        "email": "ana@example.com",
        "amount_minor": 25 * USD,
        "commit": False,
        "notes": None,
    }

    async def cancel(conn: asyncpg.Connection) -> Any:
        return await cancel_withdrawal(
            conn,
            marketplace_id=shop.marketplace_id,
            withdrawal_id=row.id,
            reason="changed my mind",
            actor=ACTOR,
        )

    # The payout is still being created: a cancel now would race it.
    with pytest.raises(InvalidTransition) as raised:
        await _in_tx(shop, cancel)
    assert raised.value.details["operation_id"] == started.operation.id
    assert await shop.run_worker() == 1
    created = await _in_tx(
        shop,
        lambda conn: get_withdrawal(conn, marketplace_id=shop.marketplace_id, withdrawal_id=row.id),
    )
    assert (created.status, created.airtm_payout_id) == ("WITHDRAWAL_CREATED", "po_" + row.id)

    canceled = await _in_tx(shop, cancel)
    assert canceled.status == "WITHDRAWAL_CANCELED"
    user_balance = await shop.balance(f"user:{user.id}")
    assert (user_balance.available, user_balance.reserved) == (80 * USD, 0)
    assert (await shop.event_types(row.id))[-1] == "withdrawal.canceled"
    assert (await shop.events(row.id))[-1].data == {
        "withdrawal_id": row.id,
        "user_id": user.id,
        "amount": "25.00",
        "canceled_by": "api",
        "refunded_to_balance": True,
        "reason": "changed my mind",
    }
    released = (await shop.events(user.id))[-1]
    assert (released.type, released.data["reason"]) == ("balance.released", "withdrawal_canceled")
    await shop.assert_books_balance()
    # Terminal: a second cancel is refused with the machine's details.
    with pytest.raises(InvalidTransition) as again:
        await _in_tx(shop, cancel)
    assert again.value.details["allowed_states"] == [
        "WITHDRAWAL_CREATED",
        "WITHDRAWAL_PENDING_USER_ACTION",
    ]


async def test_airtm_commit_later_or_at_once(shop: Shop) -> None:
    user = await shop.user(funded=80 * USD, wallet=False, airtm_email="ana@example.com")
    later = (await _create(shop, user, 10 * USD, destination_type="airtm_balance")).withdrawal
    await shop.run_worker()

    async def commit(conn: asyncpg.Connection) -> WithdrawalStarted:
        return await commit_withdrawal(
            conn,
            shop.steps.registry,
            marketplace_id=shop.marketplace_id,
            withdrawal_id=later.id,
            actor=ACTOR,
        )

    committed = await _in_tx(shop, commit)
    assert (committed.withdrawal.status, committed.withdrawal.committed) == (
        "WITHDRAWAL_COMMITTED",
        True,
    )
    assert committed.operation is not None
    assert committed.operation.payload["commit"] is True
    assert (await shop.event_types(later.id))[-1] == "withdrawal.committed"
    with pytest.raises(WithdrawalNotCommittable):
        await _in_tx(shop, commit)

    at_once = await _create(
        shop, user, 10 * USD, destination_type="airtm_balance", commit=True, description="d"
    )
    assert at_once.withdrawal.status == "WITHDRAWAL_COMMITTED"
    assert at_once.operation is not None
    assert (at_once.operation.payload["commit"], at_once.operation.payload["notes"]) == (True, "d")
    assert await shop.event_types(at_once.withdrawal.id) == [
        "withdrawal.created",
        "withdrawal.committed",
    ]


async def test_crypto_withdrawals_are_not_committable_nor_cancelable(shop: Shop) -> None:
    user = await shop.user(funded=10 * USD)
    row = (await _create(shop, user, 1 * USD)).withdrawal
    with pytest.raises(WithdrawalNotCommittable):
        await _in_tx(
            shop,
            lambda conn: commit_withdrawal(
                conn,
                shop.steps.registry,
                marketplace_id=shop.marketplace_id,
                withdrawal_id=row.id,
                actor=ACTOR,
            ),
        )
    with pytest.raises(InvalidTransition) as raised:
        await _in_tx(
            shop,
            lambda conn: cancel_withdrawal(
                conn, marketplace_id=shop.marketplace_id, withdrawal_id=row.id, actor=ACTOR
            ),
        )
    assert raised.value.details["current_state"] == "WITHDRAWAL_COMMITTED"


async def test_cancel_while_airtm_waits_on_the_recipient(shop: Shop) -> None:
    user = await shop.user(funded=20 * USD, wallet=False, airtm_email="ana@example.com")
    row = (await _create(shop, user, 20 * USD, destination_type="airtm_balance")).withdrawal
    await shop.run_worker()
    update = await _in_tx(
        shop,
        lambda conn: apply_provider_status(
            conn,
            marketplace_id=shop.marketplace_id,
            withdrawal_id=row.id,
            airtm_status="pending",
            actor=PROVIDER,
        ),
    )
    assert update.withdrawal.status == "WITHDRAWAL_PENDING_USER_ACTION"
    canceled = await _in_tx(
        shop,
        lambda conn: cancel_withdrawal(
            conn, marketplace_id=shop.marketplace_id, withdrawal_id=row.id, actor=ACTOR
        ),
    )
    assert canceled.status == "WITHDRAWAL_CANCELED"
    assert (await shop.balance(f"user:{user.id}")).available == 20 * USD
    await shop.assert_books_balance()


def _on_chain(*, exists: bool = True, trustline: bool = True, memo: bool = False) -> AccountState:
    return AccountState(
        account_id=Keypair.random().public_key,
        exists=exists,
        usdc=0 if trustline else None,
        memo_required=memo,
    )


# (error class, expected details subset, user kwargs, create kwargs)
ERRORS: list[tuple[type[AppError], dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    (InvalidAmount, {}, {}, {"amount": 0}),
    (
        InsufficientFunds,
        {"available": "10.00", "requested": "10.0000001"},
        {},
        {"amount": 10 * USD + 1},
    ),
    (InsufficientFunds, {"available": "0.00"}, {"funded": 0}, {}),
    (UserNotFound, {"field": "user_id"}, {"missing": True}, {}),
    (WithdrawalDestinationInvalid, {"reason": "invalid_address"}, {}, {"destination_ref": "G1"}),
    (WithdrawalDestinationInvalid, {"reason": "own_wallet"}, {}, {"own": True}),
    (WalletNotReady, {}, {"active": False}, {}),
    (WalletNotReady, {}, {"wallet": False}, {}),
    (
        WithdrawalDestinationInvalid,
        {"reason": "account_not_found"},
        {},
        {"destination_account": _on_chain(exists=False)},
    ),
    (
        WithdrawalDestinationInvalid,
        {"reason": "no_trustline"},
        {},
        {"destination_account": _on_chain(trustline=False)},
    ),
    (ValidationFailed, {}, {}, {"destination_account": _on_chain(memo=True)}),
    (ValidationFailed, {}, {}, {"memo": "x" * 29}),
    (ValidationFailed, {}, {}, {"destination_ref": None}),
    (ValidationFailed, {}, {}, {"destination_type": "bank"}),
    (ValidationFailed, {}, {}, {"description": "d" * 256}),
    (ValidationFailed, {}, {"airtm": True}, {"destination_type": "airtm_balance", "memo": "m"}),
    (AirtmUserNotLinked, {}, {}, {"destination_type": "airtm_balance"}),
    (
        WithdrawalDestinationInvalid,
        {"reason": "invalid_email"},
        {},
        {"destination_type": "airtm_balance", "destination_ref": "not-an-email"},
    ),
    (
        InvalidAmount,
        {},
        {"airtm": True},
        {"destination_type": "airtm_balance", "amount": 5 * USD + 1},
    ),
]


@pytest.mark.parametrize(("error", "details", "user_kwargs", "create_kwargs"), ERRORS)
async def test_every_refusal_writes_nothing(
    shop: Shop,
    error: type[AppError],
    details: dict[str, Any],
    user_kwargs: dict[str, Any],
    create_kwargs: dict[str, Any],
) -> None:
    missing = user_kwargs.pop("missing", False)
    airtm = user_kwargs.pop("airtm", False)
    user_kwargs.setdefault("funded", 10 * USD)
    user = await shop.user(airtm_email="ana@example.com" if airtm else None, **user_kwargs)
    if missing:
        user = User(id="usr_" + "0" * 32, public_key=None)
    fields = dict(create_kwargs)
    amount = fields.pop("amount", 5 * USD)
    if fields.pop("own", False):
        fields["destination_ref"] = user.public_key
    before = await shop.footprint()
    with pytest.raises(error) as raised:
        await _create(shop, user, amount, **fields)
    assert raised.value.details.items() >= details.items()
    assert await shop.footprint() == before
    await shop.assert_books_balance()


async def test_insufficient_funds_details(shop: Shop) -> None:
    user = await shop.user(funded=10 * USD)
    await _create(shop, user, 4 * USD)
    with pytest.raises(InsufficientFunds) as raised:
        await _create(shop, user, 7 * USD)
    assert raised.value.details == {
        "user_id": user.id,
        "available": "6.00",
        "requested": "7.00",
        "currency": "USD",
    }


async def test_unknown_withdrawal_is_not_found_in_every_action(shop: Shop) -> None:
    user = await shop.user(funded=10 * USD)
    row = (await _create(shop, user, 1 * USD)).withdrawal
    other = await make_shop(shop.pool)
    actions: list[Callable[[asyncpg.Connection], Awaitable[Any]]] = [
        lambda conn: get_withdrawal(
            conn, marketplace_id=other.marketplace_id, withdrawal_id=row.id
        ),
        lambda conn: cancel_withdrawal(
            conn, marketplace_id=other.marketplace_id, withdrawal_id=row.id, actor=ACTOR
        ),
        lambda conn: commit_withdrawal(
            conn,
            shop.steps.registry,
            marketplace_id=other.marketplace_id,
            withdrawal_id=row.id,
            actor=ACTOR,
        ),
        lambda conn: apply_provider_status(
            conn,
            marketplace_id=other.marketplace_id,
            withdrawal_id=row.id,
            chain_outcome="confirmed",
            actor=PROVIDER,
        ),
    ]
    for action in actions:
        with pytest.raises(WithdrawalNotFound):
            await _in_tx(shop, action)


async def test_list_filters_and_pages_newest_first(shop: Shop) -> None:
    alice = await shop.user(funded=100 * USD, airtm_email="alice@example.com")
    bob = await shop.user(funded=100 * USD)
    rows = []
    for index in range(5):
        rows.append((await _create(shop, alice, (index + 1) * USD)).withdrawal)
    airtm = (await _create(shop, alice, 1 * USD, destination_type="airtm_balance")).withdrawal
    other = (await _create(shop, bob, 1 * USD)).withdrawal

    async def page(**filters: Any) -> Any:
        async with shop.pool.acquire() as conn:
            return await list_withdrawals(conn, marketplace_id=shop.marketplace_id, **filters)

    everything = await page(limit=100)
    assert [w.id for w in everything.withdrawals] == [
        w.id for w in sorted([*rows, airtm, other], key=lambda w: (w.created_at, w.id))[::-1]
    ]
    first = await page(user_id=alice.id, destination_type="crypto", limit=3)
    assert first.has_more
    assert len(first.withdrawals) == 3
    last = first.withdrawals[-1]
    second = await page(
        user_id=alice.id, destination_type="crypto", limit=3, after=(last.created_at, last.id)
    )
    assert not second.has_more
    assert {w.id for w in first.withdrawals + second.withdrawals} == {w.id for w in rows}
    created = await page(statuses=["WITHDRAWAL_CREATED"])
    assert [w.id for w in created.withdrawals] == [airtm.id]
    assert (await page(user_id=bob.id)).withdrawals == [other]
    assert (await page(created_after=other.created_at + timedelta(seconds=1))).withdrawals == []
    assert (await page(created_before=rows[0].created_at)).withdrawals == []
