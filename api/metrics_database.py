"""Gauges read from the database when ``/metrics`` is scraped: a few bounded, indexed queries.

They run in one read-only REPEATABLE READ transaction (one consistent picture) under a timeout
and a ``statement_timeout``; if the database is slow or down, the scrape still answers, with
``offerhub_metrics_database_up 0`` and these gauges left without samples.

* ``offerhub_ledger_imbalance{currency}``: per currency, the sum over marketplaces of how far
  debits and credits (pending and posted, each) are apart, from ``ledger_zero_sum_violations_v1``.
  Must be 0: the schema refuses an unbalanced commit, so anything else is a bug.
* ``offerhub_operations_in_flight{kind}``, ``..._with_errors{kind}`` (running operations whose
  last attempt failed and which wait for a retry), ``..._oldest_age_seconds{kind}`` (since the
  oldest running one started) and ``..._overdue_seconds{kind}`` (how long the longest-due one has
  waited for a worker: it grows when no runner claims work).
* ``offerhub_outbox_lag_seconds``: age of the oldest committed event that event readers still hold
  back because a transaction that began earlier is open (the SSE rule of ``flows/event_stream``:
  events whose writer xid is not below the snapshot's xmin wait); 0 when nothing is held back. Only
  the newest 10,000 events are looked at, through the primary key.
* ``offerhub_webhook_backlog`` (pending deliveries), ``offerhub_webhook_delivery_lag_seconds``
  (age of the oldest pending one) and ``offerhub_webhook_overdue_seconds`` (longest wait past its
  due time): only once the ``webhook_deliveries`` table exists.
"""

import asyncio
import logging
from typing import Final, cast

import asyncpg
from prometheus_client.core import GaugeMetricFamily

__all__ = ["database_snapshot"]

logger = logging.getLogger("offerhub.api.metrics")

# api.md 1.6: USD is the one currency; it is always exported, at 0 when the books balance.
_CURRENCIES: Final = ("USD",)
_EVENTS_LOOKED_AT: Final = 10_000

_IMBALANCE: Final = """
SELECT asset, sum(abs(pending_difference) + abs(posted_difference))::float8 AS difference
FROM ledger_zero_sum_violations_v1()
GROUP BY asset
"""

_OPERATIONS: Final = """
WITH running AS (
    SELECT kind, count(*) AS running, count(last_error) AS with_errors,
        min(created_at) AS oldest, min(next_attempt_at) AS earliest_due
    FROM operations
    WHERE status = 'RUNNING'
    GROUP BY kind
)
SELECT k.kind::text AS kind, coalesce(r.running, 0) AS running,
    coalesce(r.with_errors, 0) AS with_errors,
    coalesce(extract(epoch FROM now() - r.oldest), 0)::float8 AS oldest_age_s,
    greatest(coalesce(extract(epoch FROM now() - r.earliest_due), 0), 0)::float8 AS overdue_s
FROM unnest(enum_range(NULL::operation_kind)) AS k (kind)
LEFT JOIN running AS r ON r.kind = k.kind
ORDER BY k.kind
"""

_OUTBOX_LAG: Final = """
SELECT coalesce(extract(epoch FROM now() - min(e.occurred_at)), 0)::float8
FROM (SELECT occurred_at, writer_xid FROM events ORDER BY sequence DESC LIMIT $1) AS e
WHERE e.writer_xid >= pg_snapshot_xmin(pg_current_snapshot())
"""

_WEBHOOKS: Final = """
SELECT count(*) AS pending,
    coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_s,
    greatest(coalesce(extract(epoch FROM now() - min(next_attempt_at)), 0), 0)::float8 AS overdue_s
FROM webhook_deliveries
WHERE status = 'PENDING'
"""


class _Snapshot:
    """The families of one scrape, declared up front so their names are always exported."""

    def __init__(self) -> None:
        self.up = GaugeMetricFamily(
            "offerhub_metrics_database_up",
            "1 when the scrape-time database reads succeeded, 0 when they failed or timed out.",
        )
        self.imbalance = _labelled(
            "offerhub_ledger_imbalance",
            "Minor units by which debits and credits differ per currency (must be 0).",
            "currency",
        )
        self.in_flight = _labelled(
            "offerhub_operations_in_flight", "Durable operations running, by kind.", "kind"
        )
        self.with_errors = _labelled(
            "offerhub_operations_with_errors",
            "Running operations whose last attempt failed (waiting for a retry), by kind.",
            "kind",
        )
        self.oldest_age = _labelled(
            "offerhub_operations_oldest_age_seconds",
            "Age of the oldest running operation, by kind (0 when none runs).",
            "kind",
        )
        self.overdue = _labelled(
            "offerhub_operations_overdue_seconds",
            "How long the longest-due running operation has waited for a worker, by kind.",
            "kind",
        )
        self.outbox_lag = GaugeMetricFamily(
            "offerhub_outbox_lag_seconds",
            "Age of the oldest committed event held back from readers by an older open "
            "transaction (0 when none is).",
        )
        self.webhook_backlog = GaugeMetricFamily(
            "offerhub_webhook_backlog", "Outbound webhook deliveries pending."
        )
        self.webhook_lag = GaugeMetricFamily(
            "offerhub_webhook_delivery_lag_seconds",
            "Age of the oldest pending outbound webhook delivery (0 when none is pending).",
        )
        self.webhook_overdue = GaugeMetricFamily(
            "offerhub_webhook_overdue_seconds",
            "How long the longest-due pending webhook delivery has waited past its due time.",
        )

    def families(self) -> list[GaugeMetricFamily]:
        """Every family, in exposition order."""
        return [
            self.up,
            self.imbalance,
            self.in_flight,
            self.with_errors,
            self.oldest_age,
            self.overdue,
            self.outbox_lag,
            self.webhook_backlog,
            self.webhook_lag,
            self.webhook_overdue,
        ]


def _labelled(name: str, documentation: str, label: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=[label])


async def _read_ledger_and_operations(conn: asyncpg.Connection, snapshot: _Snapshot) -> None:
    differences = dict.fromkeys(_CURRENCIES, 0.0)
    for row in await conn.fetch(_IMBALANCE):
        differences[row["asset"]] = row["difference"]
    for currency, difference in sorted(differences.items()):
        snapshot.imbalance.add_metric([currency], difference)
    for row in await conn.fetch(_OPERATIONS):
        snapshot.in_flight.add_metric([row["kind"]], row["running"])
        snapshot.with_errors.add_metric([row["kind"]], row["with_errors"])
        snapshot.oldest_age.add_metric([row["kind"]], row["oldest_age_s"])
        snapshot.overdue.add_metric([row["kind"]], row["overdue_s"])
    snapshot.outbox_lag.add_metric([], await conn.fetchval(_OUTBOX_LAG, _EVENTS_LOOKED_AT))


async def _read_webhooks(conn: asyncpg.Connection, snapshot: _Snapshot) -> None:
    if not await conn.fetchval("SELECT to_regclass('webhook_deliveries') IS NOT NULL"):
        return
    try:
        # A savepoint: a table of another shape must not spoil the other readings.
        async with conn.transaction():
            row = await conn.fetchrow(_WEBHOOKS)
    except asyncpg.PostgresError as error:
        logger.warning("webhook metrics unavailable: %s", type(error).__name__)
        return
    assert row is not None
    snapshot.webhook_backlog.add_metric([], row["pending"])
    snapshot.webhook_lag.add_metric([], row["oldest_s"])
    snapshot.webhook_overdue.add_metric([], row["overdue_s"])


async def database_snapshot(pool: asyncpg.Pool, timeout_s: float) -> list[GaugeMetricFamily]:
    """Read the scrape-time gauges within ``timeout_s``; on failure only ``..._database_up 0``."""
    snapshot = _Snapshot()
    statement_timeout_ms = str(max(1, int(timeout_s * 1000)))
    try:
        async with (
            asyncio.timeout(timeout_s),
            pool.acquire() as proxy,
            proxy.transaction(isolation="repeatable_read", readonly=True),
        ):
            conn = cast(asyncpg.Connection, proxy)  # the proxy forwards every method
            await conn.execute(
                "SELECT set_config('statement_timeout', $1, true)", statement_timeout_ms
            )
            await _read_ledger_and_operations(conn, snapshot)
            await _read_webhooks(conn, snapshot)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        logger.warning("metrics: database reads failed: %s", type(error).__name__)
        fresh = _Snapshot()
        fresh.up.add_metric([], 0)
        return fresh.families()
    snapshot.up.add_metric([], 1)
    return snapshot.families()
