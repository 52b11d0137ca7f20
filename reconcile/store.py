"""Reconciliation runs and items in the database (tables in schema.sql, "Reconciliation").

A run row is written RUNNING before anything is read; the partial unique index
``reconciliation_runs_one_running`` allows one RUNNING run per marketplace, so a second start
is ``RECONCILIATION_ALREADY_RUNNING``. Items are written with the run's end, in the transaction
that also writes its events.

Who owns a RUNNING run: the process executing it holds a session advisory lock on the run id
(:func:`lock_run`, on a connection it keeps for the whole run) and then stamps ``claimed_at``
(:func:`claim_run`). The lock ends with that process's connection, so a claimed run whose lock
is free has lost its process, and the next start closes it FAILED at once
(:func:`abandon_stale_runs`); a live run's lock is never free, so two live runs never overlap.
A run nobody claimed (its starter died between the commit and the launch) is closed once it is
older than the grace given.
"""

from datetime import datetime
from typing import Any, Final, LiteralString

import asyncpg
import msgspec

from common.errors import ReconciliationAlreadyRunning
from common.ids import new_id
from reconcile.compare import Discrepancy, Drift

__all__ = [
    "ItemRow",
    "RunRow",
    "abandon_stale_runs",
    "claim_run",
    "finish_run",
    "get_run",
    "insert_run",
    "latest_run",
    "list_items",
    "list_runs",
    "lock_run",
    "unlock_run",
]

_RUN_COLUMNS: Final = """
    marketplace_id, id, status, trigger, sources, ledger_position, ledger_as_of, stellar_ledger,
    items_checked, matched, discrepancies, drift, error, created_at, finished_at
"""
_ITEM_COLUMNS: Final = (
    "marketplace_id",
    "id",
    "run_id",
    "source",
    "kind",
    "status",
    "account_class",
    "resource_type",
    "resource_id",
    "account_id",
    "external_ref",
    "ledger_amount",
    "external_amount",
    "difference",
    "detail",
    "created_at",
)


class RunRow(msgspec.Struct, frozen=True, kw_only=True):
    """A ``reconciliation_runs`` row; ``drift`` holds ``{currency, source, account_class,
    amount}`` objects with integer amounts.
    """

    marketplace_id: str
    id: str
    status: str
    trigger: str
    sources: list[str]
    ledger_position: int | None
    ledger_as_of: datetime
    stellar_ledger: int | None
    items_checked: int
    matched: int
    discrepancies: int
    drift: list[dict[str, Any]]
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class ItemRow(msgspec.Struct, frozen=True, kw_only=True):
    """A ``reconciliation_items`` row."""

    marketplace_id: str
    id: str
    run_id: str
    source: str
    kind: str
    status: str
    account_class: str
    resource_type: str | None
    resource_id: str | None
    account_id: str | None
    external_ref: str | None
    ledger_amount: int | None
    external_amount: int | None
    difference: int | None
    detail: str
    created_at: datetime


# Run locks use the two-key advisory space (apart from the one-key locks of other modules): the
# class 5391182 (0x52434E, "RCN") and the hash of the run id.
LOCK_RUN: Final[LiteralString] = "SELECT pg_try_advisory_lock(5391182, hashtext($1))"
UNLOCK_RUN: Final[LiteralString] = "SELECT pg_advisory_unlock(5391182, hashtext($1))"

# A claimed run is abandoned when its owner's lock is free (taken here for the transaction, which
# only succeeds when no session holds it); an unclaimed one when older than the grace. CASE keeps
# the lock attempt off unclaimed rows, whose owner may be about to lock them.
ABANDON_STALE: Final[LiteralString] = """
UPDATE reconciliation_runs
SET status = 'FAILED', error = 'abandoned: the process running it stopped', finished_at = now()
WHERE marketplace_id = $1 AND status = 'RUNNING' AND CASE
    WHEN claimed_at IS NULL THEN created_at < now() - make_interval(secs => $2)
    ELSE pg_try_advisory_xact_lock(5391182, hashtext(id))
END
"""

CLAIM_RUN: Final[LiteralString] = (
    """
UPDATE reconciliation_runs SET claimed_at = now()
WHERE marketplace_id = $1 AND id = $2 AND status = 'RUNNING'
RETURNING"""
    + _RUN_COLUMNS
)

INSERT_RUN: Final[LiteralString] = (
    """
INSERT INTO reconciliation_runs (marketplace_id, id, trigger, sources, ledger_as_of)
VALUES ($1, $2, $3, $4, now())
ON CONFLICT (marketplace_id) WHERE status = 'RUNNING' DO NOTHING
RETURNING"""
    + _RUN_COLUMNS
)

RUNNING_RUN: Final[LiteralString] = """
SELECT id FROM reconciliation_runs WHERE marketplace_id = $1 AND status = 'RUNNING'
"""

FINISH_RUN: Final[LiteralString] = (
    """
UPDATE reconciliation_runs SET
    status = $3, ledger_position = $4, ledger_as_of = coalesce($5, ledger_as_of),
    stellar_ledger = $6, items_checked = $7, matched = $8, discrepancies = $9, drift = $10,
    error = $11, finished_at = now()
WHERE marketplace_id = $1 AND id = $2 AND status = 'RUNNING'
RETURNING"""
    + _RUN_COLUMNS
)

GET_RUN: Final[LiteralString] = (
    "SELECT" + _RUN_COLUMNS + "FROM reconciliation_runs WHERE marketplace_id = $1 AND id = $2"
)

LATEST_RUN: Final[LiteralString] = (
    "SELECT"
    + _RUN_COLUMNS
    + "FROM reconciliation_runs WHERE marketplace_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1"
)

# Newest first, strictly after the cursor position (reconciliation_runs_by_created).
LIST_RUNS: Final[LiteralString] = (
    "SELECT"
    + _RUN_COLUMNS
    + """FROM reconciliation_runs
WHERE marketplace_id = $1
    AND ($2::text[] IS NULL OR status = ANY($2))
    AND ($3::text IS NULL OR trigger = $3)
    AND ($4::timestamptz IS NULL OR created_at >= $4)
    AND ($5::timestamptz IS NULL OR created_at < $5)
    AND ($6::timestamptz IS NULL OR (created_at, id) < ($6, $7))
ORDER BY created_at DESC, id DESC
LIMIT $8"""
)

# A run's items, newest first like every list (reconciliation_items_by_run).
LIST_ITEMS: Final[LiteralString] = (
    "SELECT "
    + ", ".join(_ITEM_COLUMNS)
    + """
FROM reconciliation_items
WHERE marketplace_id = $1 AND run_id = $2
    AND status = ANY($3)
    AND ($4::text IS NULL OR kind = $4)
    AND ($5::text IS NULL OR source = $5)
    AND ($6::timestamptz IS NULL OR (created_at, id) < ($6, $7))
ORDER BY created_at DESC, id DESC
LIMIT $8"""
)


def _run(row: asyncpg.Record | None) -> RunRow | None:
    return None if row is None else msgspec.convert(dict(row), RunRow)


async def abandon_stale_runs(
    conn: asyncpg.Connection, marketplace_id: str, unclaimed_s: float
) -> None:
    """Close FAILED the RUNNING runs whose process is gone (see the module docstring).

    A claimed run goes at once when its lock is free; an unclaimed one once it is older than
    ``unclaimed_s``.
    """
    await conn.execute(ABANDON_STALE, marketplace_id, float(unclaimed_s))


async def lock_run(conn: asyncpg.Connection, run_id: str) -> bool:
    """Take the run's session lock on ``conn`` (kept for the run); False when another holds it."""
    return bool(await conn.fetchval(LOCK_RUN, run_id))


async def unlock_run(conn: asyncpg.Connection, run_id: str) -> None:
    """Give the run's session lock back."""
    await conn.execute(UNLOCK_RUN, run_id)


async def claim_run(conn: asyncpg.Connection, marketplace_id: str, run_id: str) -> RunRow | None:
    """Stamp a RUNNING run claimed by the lock holder; None when it is no longer RUNNING."""
    return _run(await conn.fetchrow(CLAIM_RUN, marketplace_id, run_id))


async def insert_run(
    conn: asyncpg.Connection,
    marketplace_id: str,
    *,
    trigger: str,
    sources: list[str],
    run_id: str | None = None,
) -> RunRow:
    """Write a RUNNING run (a fresh id unless ``run_id`` is given).

    Raises:
        ReconciliationAlreadyRunning: the marketplace has a RUNNING run (``details.run_id``).
    """
    row = await conn.fetchrow(
        INSERT_RUN, marketplace_id, run_id or new_id("rcn_"), trigger, sources
    )
    if row is None:
        running = await conn.fetchval(RUNNING_RUN, marketplace_id)
        raise ReconciliationAlreadyRunning(run_id=running)
    run = _run(row)
    assert run is not None
    return run


def _drift_json(drift: list[Drift], currency: str) -> list[dict[str, Any]]:
    return [
        {
            "currency": currency,
            "source": d.source,
            "account_class": d.account_class,
            "amount": d.amount,
        }
        for d in drift
    ]


async def finish_run(
    conn: asyncpg.Connection,
    run: RunRow,
    *,
    status: str,
    items: list[Discrepancy],
    drift: list[Drift],
    currency: str,
    ledger_position: int | None,
    ledger_as_of: datetime | None,
    stellar_ledger: int | None,
    error: str | None = None,
) -> RunRow | None:
    """Close the run (COMPLETED or FAILED) and store its items, in the caller's transaction.

    Returns None, storing nothing, when the run was no longer RUNNING: it was abandoned while
    its owner had lost its lock (a dropped connection), and another run may have started.
    """
    matched = sum(1 for item in items if item.status == "MATCHED")
    row = await conn.fetchrow(
        FINISH_RUN,
        run.marketplace_id,
        run.id,
        status,
        ledger_position,
        ledger_as_of,
        stellar_ledger,
        len(items),
        matched,
        len(items) - matched,
        _drift_json(drift, currency),
        error,
    )
    finished = _run(row)
    if finished is None:
        return None
    now = await conn.fetchval("SELECT now()")
    records = [
        (
            run.marketplace_id,
            new_id("rci_"),
            run.id,
            item.source,
            item.kind,
            item.status,
            item.account_class,
            item.resource_type,
            item.resource_id,
            item.account_id,
            item.external_ref,
            item.ledger_amount,
            item.external_amount,
            item.difference,
            item.detail,
            now,
        )
        for item in items
    ]
    if records:
        await conn.copy_records_to_table(
            "reconciliation_items", records=records, columns=_ITEM_COLUMNS
        )
    return finished


async def get_run(conn: asyncpg.Connection, marketplace_id: str, run_id: str) -> RunRow | None:
    """One run of the marketplace, or None."""
    return _run(await conn.fetchrow(GET_RUN, marketplace_id, run_id))


async def latest_run(conn: asyncpg.Connection, marketplace_id: str) -> RunRow | None:
    """The most recent run of the marketplace (running or not), or None."""
    return _run(await conn.fetchrow(LATEST_RUN, marketplace_id))


async def list_runs(
    conn: asyncpg.Connection,
    marketplace_id: str,
    *,
    statuses: list[str] | None,
    trigger: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[RunRow]:
    """Runs newest first, filtered, strictly after the ``after`` position."""
    rows = await conn.fetch(
        LIST_RUNS,
        marketplace_id,
        statuses,
        trigger,
        created_after,
        created_before,
        *(after or (None, None)),
        limit,
    )
    return [msgspec.convert(dict(row), RunRow) for row in rows]


async def list_items(
    conn: asyncpg.Connection,
    marketplace_id: str,
    run_id: str,
    *,
    statuses: list[str],
    kind: str | None,
    source: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[ItemRow]:
    """A run's items, newest first, filtered, strictly after the ``after`` position."""
    rows = await conn.fetch(
        LIST_ITEMS, marketplace_id, run_id, statuses, kind, source, *(after or (None, None)), limit
    )
    return [msgspec.convert(dict(row), ItemRow) for row in rows]
