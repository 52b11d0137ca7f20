"""Top-ups against real PostgreSQL: creation, each payin outcome, its events and postings."""

import asyncpg
import pytest

from common.errors import InvalidAmount, InvalidTransition, TopUpNotFound, UserNotFound
from flows.queries.topups import undelivered_total_minor
from flows.topups import (
    TopUp,
    cancel_topup,
    record_payin_creation_failed,
)
from providers.airtm.port import Payin
from tests.db.test_topups_support import (
    API,
    USD,
    World,
    make_market,
    make_user,
    payin_of,
    tx,
    types,
    world_fixture,
)

pytestmark = pytest.mark.db
__all__ = ["world_fixture"]


async def test_create_writes_the_row_and_topup_created(world: World) -> None:
    topup = await world.topup(25 * USD + 1_500_000, awaiting=False)
    assert topup.status == "TOPUP_CREATED"
    assert topup.id.startswith("topup_")
    assert (topup.amount_minor, topup.currency, topup.metadata) == (
        251_500_000,
        "USD",
        {"cart": "c1"},
    )
    [event] = await world.events(topup.id)
    assert (event.type, event.resource_type) == ("topup.created", "topup")
    assert event.data == {
        "topup_id": topup.id,
        "user_id": world.user_id,
        "amount": "25.15",
        "currency": "USD",
    }


@pytest.mark.parametrize("amount_minor", [0, -USD, USD + 1, 12_345])
async def test_create_refuses_amounts_airtm_cannot_carry(world: World, amount_minor: int) -> None:
    with pytest.raises(InvalidAmount):
        await world.topup(amount_minor, awaiting=False)


async def test_create_refuses_an_unknown_user(world: World, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        other_market = await make_market(conn)
        foreign_user = await make_user(conn, other_market)
    world.user_id = foreign_user
    with pytest.raises(UserNotFound) as error:
        await world.topup(awaiting=False)
    assert error.value.details["field"] == "user_id"


async def test_created_to_confirmed_skipping_processing_credits_once(world: World) -> None:
    topup = await world.topup()
    assert topup.status == "TOPUP_AWAITING_USER_CONFIRMATION"
    assert topup.confirmation_uri == f"https://airtm.test/checkout/{topup.id}"
    assert topup.expires_at is not None
    assert topup.expires_at.isoformat().startswith("2026-01-27T10:00:00")

    applied = await world.news(topup, "CONFIRMED")
    assert applied.changed
    assert applied.ignored is None
    done = applied.topup
    assert done.status == "TOPUP_SUCCEEDED"
    assert done.completed_at is not None
    assert done.credit_transfer_id is not None
    assert done.delivered_at is None

    events = await world.events(topup.id)
    assert types(events) == ["topup.created", "topup.confirmation_required", "topup.succeeded"]
    assert events[1].data == {
        "topup_id": topup.id,
        "user_id": world.user_id,
        "confirmation_uri": topup.confirmation_uri,
        "expires_at": "2026-01-27T10:00:00.000Z",
    }
    assert events[2].data == {
        "topup_id": topup.id,
        "user_id": world.user_id,
        "amount": "25.00",
        "currency": "USD",
        "airtm_payin_id": done.airtm_payin_id,
        "transfer_id": done.credit_transfer_id,
    }
    [credited] = await world.events(world.user_id)
    assert (credited.type, credited.resource_type) == ("balance.credited", "balance")
    assert credited.data == {
        "user_id": world.user_id,
        "amount": "25.00",
        "currency": "USD",
        "source": "topup",
        "source_id": topup.id,
        "transfer_id": done.credit_transfer_id,
        "transaction_hash": None,
        "available": "25.00",
        "reserved": "0.00",
    }
    # The user is ahead of the wallet by exactly what clearing:topups shows.
    assert await world.posted(f"user:{world.user_id}") == 25 * USD
    assert await world.posted("clearing:topups") == -25 * USD
    assert await world.posted("treasury:airtm") == 25 * USD
    assert await world.posted("external:airtm") == 25 * USD
    async with world.pool.acquire() as conn:
        assert await undelivered_total_minor(conn, world.marketplace_id, world.user_id) == 25 * USD
    [operation] = await world.fetch(
        "SELECT * FROM operations WHERE kind = 'TOPUP_DELIVERY' AND resource_id = $1", topup.id
    )
    assert operation["id"] == applied.delivery_operation_id
    assert (operation["status"], operation["step"], operation["resource_type"]) == (
        "RUNNING",
        "deliver",
        "topup",
    )
    assert operation["payload"] == {
        "topup_id": topup.id,
        "user_id": world.user_id,
        "user_wallet_id": None,
        "amount_minor": 25 * USD,
    }
    await world.books_balance()


async def test_airtm_fee_is_borne_by_the_platform(world: World) -> None:
    topup = await world.topup(100 * USD)
    done = (await world.news(topup, "confirmed", fee=3 * USD // 2)).topup
    assert (done.status, done.provider_fee_minor) == ("TOPUP_SUCCEEDED", 3 * USD // 2)
    assert await world.posted(f"user:{world.user_id}") == 100 * USD
    assert await world.posted("treasury:airtm") == 100 * USD - 3 * USD // 2
    assert await world.posted("clearing:topups") == -100 * USD
    await world.books_balance()


async def test_processing_then_bridge_canceled(world: World) -> None:
    topup = await world.topup()
    processing = await world.news(topup, "PROCESSING")
    assert processing.topup.status == "TOPUP_PROCESSING"
    canceled = await world.news(topup, "BRIDGE_CANCELED", reason="bridge gave up")
    assert canceled.topup.status == "TOPUP_CANCELED"
    assert canceled.topup.completed_at is not None
    assert canceled.topup.failure_reason == "bridge gave up"
    events = await world.events(topup.id)
    assert types(events)[2:] == ["topup.processing", "topup.canceled"]
    assert events[2].data["airtm_payin_id"] == canceled.topup.airtm_payin_id
    assert events[3].data == {
        "topup_id": topup.id,
        "user_id": world.user_id,
        "amount": "25.00",
        "canceled_by": "provider",
        "reason": "bridge gave up",
    }
    assert await world.events(world.user_id) == []
    assert await world.fetch("SELECT * FROM ledger_transfers") == []


async def test_failed_and_expired_payins(world: World) -> None:
    failed = await world.news(await world.topup(), "BRIDGE_FAILED", reason="PAYMENT_DECLINED")
    assert (failed.topup.status, failed.topup.failure_code) == ("TOPUP_FAILED", "BRIDGE_FAILED")
    [*_, event] = await world.events(failed.topup.id)
    assert event.type == "topup.failed"
    assert event.data == {
        "topup_id": failed.topup.id,
        "user_id": world.user_id,
        "amount": "25.00",
        "reason": "PAYMENT_DECLINED",
        "error_code": "BRIDGE_FAILED",
        "airtm_payin_id": failed.topup.airtm_payin_id,
    }
    expired = await world.news(await world.topup(), "CANCELED", reason="EXPIRED")
    [*_, event] = await world.events(expired.topup.id)
    assert (event.type, event.data["canceled_by"]) == ("topup.canceled", "expiry")
    assert await world.fetch("SELECT * FROM ledger_transfers") == []


async def test_duplicates_and_late_news_change_nothing(world: World) -> None:
    topup = await world.topup()
    assert (await world.news(topup, "CREATED")).ignored == "duplicate"
    assert (await world.news(topup, "PROCESSING")).changed
    assert (await world.news(topup, "processing")).ignored == "duplicate"
    assert (await world.news(topup, "CREATED")).ignored == "out_of_order"
    assert (await world.news(topup, "SUCCEEDED")).topup.status == "TOPUP_SUCCEEDED"
    assert (await world.news(topup, "CONFIRMED")).ignored == "terminal"
    late = await world.news(topup, "PROCESSING")
    assert (late.ignored, late.needs_attention) == ("terminal", False)
    conflict = await world.news(topup, "FAILED")
    assert (conflict.ignored, conflict.needs_attention) == ("terminal_conflict", True)
    unknown = await world.news(topup, "ON_HOLD")
    assert (unknown.ignored, unknown.needs_attention) == ("unknown_status", True)
    stored = await world.get(topup.id)
    assert (stored.status, stored.airtm_status) == ("TOPUP_SUCCEEDED", "ON_HOLD")
    assert types(await world.events(topup.id)) == [
        "topup.created",
        "topup.confirmation_required",
        "topup.processing",
        "topup.succeeded",
    ]
    assert types(await world.events(world.user_id)) == ["balance.credited"]
    assert await world.posted(f"user:{world.user_id}") == 25 * USD
    await world.books_balance()


async def test_unknown_status_on_an_open_topup_leaves_it(world: World) -> None:
    topup = await world.topup()
    unknown = await world.news(topup, "REVIEWING")
    assert (unknown.changed, unknown.ignored) == (False, "unknown_status")
    assert (await world.get(topup.id)).status == "TOPUP_AWAITING_USER_CONFIRMATION"


async def test_news_before_the_payin_was_recorded_walks_forward(world: World) -> None:
    topup = await world.topup(awaiting=False)
    applied = await world.news(topup, "CONFIRMED")
    assert applied.topup.status == "TOPUP_SUCCEEDED"
    assert types(await world.events(topup.id)) == [
        "topup.created",
        "topup.confirmation_required",
        "topup.succeeded",
    ]
    transitions = await world.fetch(
        "SELECT from_status, to_status, event, actor_type FROM state_transitions "
        "WHERE resource_id = $1 ORDER BY id",
        topup.id,
    )
    assert [tuple(row) for row in transitions] == [
        ("TOPUP_CREATED", "TOPUP_AWAITING_USER_CONFIRMATION", "await_confirmation", "PROVIDER"),
        ("TOPUP_AWAITING_USER_CONFIRMATION", "TOPUP_SUCCEEDED", "confirm", "PROVIDER"),
    ]


async def test_a_payin_that_is_not_this_topups_is_ignored(world: World) -> None:
    topup = await world.topup()
    wrong_amount = payin_of(topup, "CONFIRMED")
    wrong_amount = Payin(
        **{**{f: getattr(wrong_amount, f) for f in Payin.__struct_fields__}, "amount_minor": USD}
    )
    assert (await world.apply(topup, wrong_amount)).ignored == "mismatch"
    other = await world.topup()
    assert (await world.apply(topup, payin_of(other, "CONFIRMED"))).ignored == "mismatch"
    assert (await world.get(topup.id)).status == "TOPUP_AWAITING_USER_CONFIRMATION"
    assert await world.fetch("SELECT * FROM ledger_transfers") == []


async def test_payin_creation_failure(world: World) -> None:
    topup = await world.topup(awaiting=False)

    async def failed(conn: asyncpg.Connection) -> TopUp:
        return await record_payin_creation_failed(
            conn,
            marketplace_id=world.marketplace_id,
            topup_id=topup.id,
            error_code="415053",
            reason="US users cannot pay in",
            actor=API,
        )

    done = await tx(world.pool, failed)
    assert (done.status, done.failure_code, done.airtm_payin_id) == ("TOPUP_FAILED", "415053", None)
    [*_, event] = await world.events(topup.id)
    assert (event.type, event.data["error_code"], event.data["airtm_payin_id"]) == (
        "topup.failed",
        "415053",
        None,
    )
    with pytest.raises(InvalidTransition):
        await tx(world.pool, failed)


async def test_cancel_only_before_processing(world: World) -> None:
    async def cancel(topup_id: str, market: str | None = None) -> TopUp:
        async def run(conn: asyncpg.Connection) -> TopUp:
            return await cancel_topup(
                conn,
                marketplace_id=market or world.marketplace_id,
                topup_id=topup_id,
                reason="changed my mind",
                actor=API,
            )

        return await tx(world.pool, run)

    created = await world.topup(awaiting=False)
    assert (await cancel(created.id)).status == "TOPUP_CANCELED"
    awaiting = await world.topup()
    canceled = await cancel(awaiting.id)
    assert (canceled.status, canceled.failure_reason) == ("TOPUP_CANCELED", "changed my mind")
    [*_, event] = await world.events(awaiting.id)
    assert (event.type, event.data["canceled_by"], event.data["reason"]) == (
        "topup.canceled",
        "api",
        "changed my mind",
    )
    processing = await world.topup()
    await world.news(processing, "PROCESSING")
    with pytest.raises(InvalidTransition) as error:
        await cancel(processing.id)
    assert error.value.details == {
        "resource_type": "topup",
        "resource_id": processing.id,
        "current_state": "TOPUP_PROCESSING",
        "allowed_states": ["TOPUP_CREATED", "TOPUP_AWAITING_USER_CONFIRMATION"],
    }
    async with world.pool.acquire() as conn:
        other_market = await make_market(conn)
    with pytest.raises(TopUpNotFound):
        await cancel(awaiting.id, other_market)
