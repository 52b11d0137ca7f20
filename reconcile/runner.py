"""One reconciliation run: create it RUNNING, gather, compare, store, finish, emit, publish.

:func:`start_run` commits the RUNNING row (one per marketplace at a time:
``RECONCILIATION_ALREADY_RUNNING``); :func:`execute_run` does the work outside any database
transaction, then stores the items, closes the run and writes ``reconciliation.completed`` (and
``reconciliation.drift_detected`` when something did not match) in one transaction, and sets
the gauges. When the first pass finds a break, a second pass confirms it (see
:func:`reconcile.compare.confirmed`): only what breaks twice is reported. A run never moves
money. A failure ends the run FAILED with a short error and the event; it never raises.

:func:`execute_run` owns the run while it works (``reconcile.store``: a session advisory lock on
a connection kept for the run, then ``claimed_at``), so a start elsewhere can tell a live run
(refused) from one whose process died (closed FAILED at once, and the new run goes ahead).
"""

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Final, cast

import asyncpg
import msgspec

from common.money import format_signed_amount
from flows.events import emit
from ledger.db import run_in_transaction
from reconcile import metrics, store
from reconcile.compare import (
    SOURCES,
    CompareSettings,
    Discrepancy,
    Drift,
    compare,
    confirmed,
    drift_of,
    unmatched_of,
)
from reconcile.gather import ChainReader, Gathered, gather
from reconcile.store import RunRow

__all__ = ["RunSettings", "execute_run", "reconcile_once", "start_run"]

_log = logging.getLogger(__name__)
_ERROR_LENGTH_MAX: Final = 500


class RunSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Age limits and the run's bookkeeping settings (seconds)."""

    asset: str = "USD"
    currency: str = "USD"
    clearing_max_age_s: int = 3600
    operation_max_age_s: int = 3600
    # A RUNNING run no process claimed within this long lost its starter (dead between the
    # commit and the launch, which normally follow each other at once) and is closed as FAILED.
    # A claimed run is closed as soon as its owner's lock is free, whatever its age.
    stale_run_s: int = 60
    # Read both sides again before reporting a break (filters money in flight).
    confirm_breaks: bool = True


async def start_run(
    pool: asyncpg.Pool,
    marketplace_id: str,
    *,
    trigger: str,
    sources: list[str] | None = None,
    settings: RunSettings | None = None,
) -> RunRow:
    """Commit a RUNNING run, closing first a RUNNING one whose process is gone (FAILED).

    Raises:
        ReconciliationAlreadyRunning: the marketplace already has one running (alive).
    """
    chosen = settings or RunSettings()
    wanted: list[str] = [source for source in SOURCES if source in set(sources or SOURCES)]

    async def work(conn: asyncpg.Connection) -> RunRow:
        await store.abandon_stale_runs(conn, marketplace_id, chosen.stale_run_s)
        return await store.insert_run(conn, marketplace_id, trigger=trigger, sources=wanted)

    return await run_in_transaction(pool, work)


def _drift_data(drift: list[Drift], currency: str) -> list[dict[str, Any]]:
    return [
        {
            "currency": currency,
            "source": row.source,
            "account_class": row.account_class,
            "amount": format_signed_amount(row.amount),
        }
        for row in drift
    ]


async def _emit(conn: asyncpg.Connection, run: RunRow, drift: list[Drift], currency: str) -> None:
    data = {
        "run_id": run.id,
        "status": run.status,
        "trigger": run.trigger,
        "discrepancies": run.discrepancies,
        "drift": _drift_data(drift, currency),
    }
    common = {
        "marketplace_id": run.marketplace_id,
        "resource_type": "reconciliation_run",
        "resource_id": run.id,
    }
    await emit(conn, type="reconciliation.completed", data=data, **common)
    if run.discrepancies:
        breaking = [row for row in drift if row.unmatched]
        await emit(
            conn,
            type="reconciliation.drift_detected",
            data={**data, "drift": _drift_data(breaking, currency)},
            **common,
        )


async def _checked(
    pool: asyncpg.Pool, reader: ChainReader, run: RunRow, settings: RunSettings
) -> tuple[Gathered, list[Discrepancy]]:
    """Gather and compare, with a confirmation pass when the first one breaks."""
    compare_settings = CompareSettings(
        sources=frozenset(run.sources),
        clearing_max_age_s=settings.clearing_max_age_s,
        operation_max_age_s=settings.operation_max_age_s,
    )

    async def one_pass() -> tuple[Gathered, list[Discrepancy]]:
        gathered = await gather(
            pool,
            reader,
            run.marketplace_id,
            settings.asset,
            operation_max_age_s=settings.operation_max_age_s,
        )
        return gathered, compare(gathered.ledger, gathered.chain, compare_settings)

    gathered, items = await one_pass()
    if settings.confirm_breaks and unmatched_of(items):
        gathered, again = await one_pass()
        items = confirmed(items, again)
    return gathered, items


async def _finish(
    pool: asyncpg.Pool,
    run: RunRow,
    settings: RunSettings,
    *,
    status: str,
    items: list[Discrepancy],
    gathered: Gathered | None,
    error: str | None,
) -> tuple[RunRow | None, list[Drift]]:
    """Close the run with its items and events; None when it was closed meanwhile."""
    drift = drift_of(items, run.sources) if status == "COMPLETED" else []

    async def work(conn: asyncpg.Connection) -> RunRow | None:
        finished = await store.finish_run(
            conn,
            run,
            status=status,
            items=items,
            drift=drift,
            currency=settings.currency,
            ledger_position=None if gathered is None else gathered.ledger.position,
            ledger_as_of=None if gathered is None else gathered.ledger.as_of,
            stellar_ledger=None if gathered is None else gathered.chain.ledger,
            error=error,
        )
        if finished is not None:
            await _emit(conn, finished, drift, settings.currency)
        return finished

    return await run_in_transaction(pool, work), drift


async def _current(pool: asyncpg.Pool, run: RunRow) -> RunRow:
    async with pool.acquire() as proxy:
        found = await store.get_run(cast(asyncpg.Connection, proxy), run.marketplace_id, run.id)
    assert found is not None, "a run vanished"
    return found


@contextlib.asynccontextmanager
async def _owned(pool: asyncpg.Pool, run: RunRow) -> AsyncIterator[RunRow | None]:
    """Own ``run`` for the block: lock it on a connection kept till the end, then claim it.

    Yields the claimed row, or None when another process owns the run or it is not RUNNING.
    """
    async with pool.acquire() as proxy:
        holder = cast(asyncpg.Connection, proxy)
        if not await store.lock_run(holder, run.id):
            yield None
            return
        try:
            yield await store.claim_run(holder, run.marketplace_id, run.id)
        finally:
            # A dropped connection took the lock with it (the pool's reset also unlocks all).
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await store.unlock_run(holder, run.id)


async def execute_run(
    pool: asyncpg.Pool, reader: ChainReader, run: RunRow, settings: RunSettings | None = None
) -> RunRow:
    """Do a started run to its end (COMPLETED or FAILED) and return the closed row.

    When another process owns the run, or it was closed already, nothing is done: the row is
    returned as it is now.
    """
    chosen = settings or RunSettings()
    async with _owned(pool, run) as claimed:
        if claimed is None:
            return await _current(pool, run)
        return await _execute(pool, reader, claimed, chosen)


async def _execute(
    pool: asyncpg.Pool, reader: ChainReader, run: RunRow, settings: RunSettings
) -> RunRow:
    started = time.monotonic()
    try:
        gathered, items = await _checked(pool, reader, run, settings)
    except Exception as error:
        # A provider outage or a bug: the run fails visibly; the service keeps serving.
        _log.exception("reconciliation run %s failed", run.id)
        message = f"{type(error).__name__}: {error}"[:_ERROR_LENGTH_MAX]
        failed, _ = await _finish(
            pool, run, settings, status="FAILED", items=[], gathered=None, error=message
        )
        metrics.record_failure(run.marketplace_id, time.monotonic() - started)
        return failed or await _dropped(pool, run)
    finished, drift = await _finish(
        pool, run, settings, status="COMPLETED", items=items, gathered=gathered, error=None
    )
    if finished is None:
        return await _dropped(pool, run)
    metrics.record_run(
        run.marketplace_id,
        settings.currency,
        drift,
        sources=run.sources,
        finished_at_s=time.time(),
        duration_s=time.monotonic() - started,
    )
    return finished


async def _dropped(pool: asyncpg.Pool, run: RunRow) -> RunRow:
    # Our lock went with a dropped connection and a new start closed the run: keep its verdict.
    _log.warning("reconciliation run %s was closed while it ran; its result is dropped", run.id)
    return await _current(pool, run)


async def reconcile_once(
    pool: asyncpg.Pool,
    reader: ChainReader,
    marketplace_id: str,
    *,
    trigger: str = "MANUAL",
    sources: list[str] | None = None,
    settings: RunSettings | None = None,
) -> RunRow:
    """Start and execute one run (raises ReconciliationAlreadyRunning when one is running)."""
    run = await start_run(pool, marketplace_id, trigger=trigger, sources=sources, settings=settings)
    return await execute_run(pool, reader, run, settings)
