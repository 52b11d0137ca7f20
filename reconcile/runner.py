"""One reconciliation run: create it RUNNING, gather, compare, store, finish, emit, publish.

:func:`start_run` commits the RUNNING row (one per marketplace at a time:
``RECONCILIATION_ALREADY_RUNNING``); :func:`execute_run` does the work outside any database
transaction, then stores the items, closes the run and writes ``reconciliation.completed`` (and
``reconciliation.drift_detected`` when something did not match) in one transaction, and sets
the gauges. When the first pass finds a break, a second pass confirms it (see
:func:`reconcile.compare.confirmed`): only what breaks twice is reported. A run never moves
money. A failure ends the run FAILED with a short error and the event; it never raises.
"""

import logging
import time
from typing import Any, Final

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
    # A RUNNING run older than this belongs to a dead process and is closed as FAILED.
    stale_run_s: int = 3600
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
    """Commit a RUNNING run.

    Raises:
        ReconciliationAlreadyRunning: the marketplace already has one running.
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
) -> tuple[RunRow, list[Drift]]:
    drift = drift_of(items, run.sources) if status == "COMPLETED" else []

    async def work(conn: asyncpg.Connection) -> RunRow:
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
        await _emit(conn, finished, drift, settings.currency)
        return finished

    return await run_in_transaction(pool, work), drift


async def execute_run(
    pool: asyncpg.Pool, reader: ChainReader, run: RunRow, settings: RunSettings | None = None
) -> RunRow:
    """Do a started run to its end (COMPLETED or FAILED) and return the closed row."""
    chosen = settings or RunSettings()
    started = time.monotonic()
    try:
        gathered, items = await _checked(pool, reader, run, chosen)
    except Exception as error:
        # A provider outage or a bug: the run fails visibly; the service keeps serving.
        _log.exception("reconciliation run %s failed", run.id)
        message = f"{type(error).__name__}: {error}"[:_ERROR_LENGTH_MAX]
        failed, _ = await _finish(
            pool, run, chosen, status="FAILED", items=[], gathered=None, error=message
        )
        metrics.record_failure(run.marketplace_id, time.monotonic() - started)
        return failed
    finished, drift = await _finish(
        pool, run, chosen, status="COMPLETED", items=items, gathered=gathered, error=None
    )
    metrics.record_run(
        run.marketplace_id,
        chosen.currency,
        drift,
        sources=run.sources,
        finished_at_s=time.time(),
        duration_s=time.monotonic() - started,
    )
    return finished


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
