"""Payin news in any order, at once, and the reads: forward only, one credit, keyset pages."""

import asyncio
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import InvalidTransition
from flows.topups import find_topup_for_payin, get_topup, list_topups, restart_topup_delivery
from flows.transitions import SYSTEM
from tests.db.test_topups_support import USD, World, make_user, tx, types, world_fixture

pytestmark = pytest.mark.db
__all__ = ["world_fixture"]


async def test_confirmed_twice_at_once_credits_once(world: World, pool: asyncpg.Pool) -> None:
    topup = await world.topup()
    # A third transaction holds the row so that both appliers are in flight together.
    blocker = await pool.acquire()
    try:
        release = blocker.transaction()
        await release.start()
        await blocker.execute("SELECT 1 FROM topups WHERE id = $1 FOR UPDATE", topup.id)
        first = asyncio.create_task(world.news(topup, "CONFIRMED"))
        second = asyncio.create_task(world.news(topup, "confirmed"))
        await asyncio.sleep(0.2)
        waiting = await blocker.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        assert waiting == 2
        await release.rollback()
    finally:
        await pool.release(blocker)
    results = await asyncio.gather(first, second)
    assert sorted(r.changed for r in results) == [False, True]
    assert {r.ignored for r in results} == {None, "terminal"}
    assert await world.posted(f"user:{world.user_id}") == 25 * USD
    credits = await world.fetch("SELECT * FROM ledger_transfers WHERE code = 'topup'")
    assert len(credits) == 2  # the Airtm inflow and the user's credit, once each
    assert types(await world.events(world.user_id)) == ["balance.credited"]
    deliveries = await world.fetch("SELECT * FROM operations WHERE kind = 'TOPUP_DELIVERY'")
    assert len(deliveries) == 1
    await world.books_balance()


async def test_list_filters_and_keyset_pages(world: World, pool: asyncpg.Pool) -> None:
    made = [await world.topup(awaiting=False) for _ in range(5)]
    await world.news(made[1], "CONFIRMED")
    async with pool.acquire() as conn:
        other_user = await make_user(conn, world.marketplace_id)
    world.user_id = other_user
    mine = await world.topup(awaiting=False)

    async with pool.acquire() as conn:
        seen: list[str] = []
        after = None
        while True:
            page = await list_topups(
                conn, marketplace_id=world.marketplace_id, after=after, limit=2
            )
            seen += [t.id for t in page.topups]
            if not page.has_more:
                break
            last = page.topups[-1]
            after = (last.created_at, last.id)
        newest_first = sorted([*made, mine], key=lambda t: (t.created_at, t.id), reverse=True)
        assert seen == [t.id for t in newest_first]
        by_user = await list_topups(conn, marketplace_id=world.marketplace_id, user_id=other_user)
        assert [t.id for t in by_user.topups] == [mine.id]
        succeeded = await list_topups(
            conn, marketplace_id=world.marketplace_id, statuses=["TOPUP_SUCCEEDED"]
        )
        assert [t.id for t in succeeded.topups] == [made[1].id]
        window = await list_topups(
            conn,
            marketplace_id=world.marketplace_id,
            created_after=made[1].created_at,
            created_before=made[3].created_at,
        )
        assert [t.id for t in window.topups] == [made[2].id, made[1].id]
        found = await find_topup_for_payin(conn, payin_id=None, code=made[1].id)
        assert found is not None
        assert found.id == made[1].id
        stored = await get_topup(conn, marketplace_id=world.marketplace_id, topup_id=made[1].id)
        by_payin = await find_topup_for_payin(conn, payin_id=stored.airtm_payin_id, code=None)
        assert by_payin == stored


async def test_restart_delivery_needs_a_succeeded_undelivered_topup(world: World) -> None:
    topup = await world.topup()

    async def restart(conn: asyncpg.Connection) -> Any:
        return await restart_topup_delivery(
            conn, marketplace_id=world.marketplace_id, topup_id=topup.id, actor=SYSTEM
        )

    with pytest.raises(InvalidTransition):
        await tx(world.pool, restart)
    applied = await world.news(topup, "CONFIRMED")
    # While the first delivery runs, a restart joins it.
    assert (await tx(world.pool, restart)).id == applied.delivery_operation_id


# -- any order of news -------------------------------------------------------------------

_STATUSES = [
    "CREATED",
    "PROCESSING",
    "CONFIRMED",
    "SUCCEEDED",
    "FAILED",
    "BRIDGE_FAILED",
    "CANCELED",
    "BRIDGE_CANCELED",
    "ON_HOLD",
]
_TARGET = {
    "CREATED": ("TOPUP_AWAITING_USER_CONFIRMATION", None),
    "PROCESSING": ("TOPUP_PROCESSING", "topup.processing"),
    "CONFIRMED": ("TOPUP_SUCCEEDED", "topup.succeeded"),
    "SUCCEEDED": ("TOPUP_SUCCEEDED", "topup.succeeded"),
    "FAILED": ("TOPUP_FAILED", "topup.failed"),
    "BRIDGE_FAILED": ("TOPUP_FAILED", "topup.failed"),
    "CANCELED": ("TOPUP_CANCELED", "topup.canceled"),
    "BRIDGE_CANCELED": ("TOPUP_CANCELED", "topup.canceled"),
}
_RANK = {
    "TOPUP_AWAITING_USER_CONFIRMATION": 1,
    "TOPUP_PROCESSING": 2,
    "TOPUP_SUCCEEDED": 3,
    "TOPUP_FAILED": 3,
    "TOPUP_CANCELED": 3,
}


def _expected(news: list[str]) -> tuple[str, list[str]]:
    """The reference model: forward moves only, final statuses stick."""
    status, events = "TOPUP_AWAITING_USER_CONFIRMATION", []
    for raw in news:
        if raw not in _TARGET or _RANK[status] == 3:
            continue
        target, event = _TARGET[raw]
        if _RANK[target] > _RANK[status]:
            status = target
            assert event is not None
            events.append(event)
    return status, events


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(news=st.lists(st.sampled_from(_STATUSES), max_size=6))
async def test_any_order_of_news_moves_forward_and_credits_at_most_once(
    world: World, news: list[str]
) -> None:
    topup = await world.topup()
    for raw in news:
        await world.news(topup, raw)
    status, expected_events = _expected(news)
    assert (await world.get(topup.id)).status == status
    events = types(await world.events(topup.id))
    assert events == ["topup.created", "topup.confirmation_required", *expected_events]
    credits = await world.fetch(
        "SELECT amount FROM ledger_transfers WHERE code = 'topup' AND user_id = $1 "
        "AND external_ref = $2",
        world.user_id,
        (await world.get(topup.id)).airtm_payin_id,
    )
    assert len(credits) == (2 if status == "TOPUP_SUCCEEDED" else 0)
    await world.books_balance()
