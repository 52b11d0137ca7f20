"""Prometheus gauges of reconciliation, on prometheus-client's default registry.

``GET /metrics`` renders the default registry, so these appear there by themselves. Names follow
api.md 3.1 with the ``offerhub_`` prefix. Labels are bounded: ``marketplace`` (the tenant; runs
are per marketplace, so without it two tenants would overwrite each other's values),
``currency``, ``source`` and ``account_class`` from the fixed sets of :mod:`reconcile.compare`;
never a user, order or account id.

A run sets every (source, account class) of the sources it checked, zero included, so a break
that was fixed disappears from the gauges at the next run.
"""

from collections.abc import Iterable
from typing import Final

from prometheus_client import Gauge

from reconcile.compare import Drift

__all__ = [
    "DRIFT",
    "DRIFT_RATIO",
    "LAST_SUCCESS",
    "RUN_DURATION",
    "UNMATCHED",
    "record_failure",
    "record_run",
]

_LABELS: Final = ["marketplace", "currency", "source", "account_class"]

DRIFT: Final = Gauge(
    "offerhub_recon_drift",
    "Signed drift (ledger minus external) found by the last reconciliation run, in minor units "
    "(1e-7 USD).",
    _LABELS,
)
DRIFT_RATIO: Final = Gauge(
    "offerhub_recon_drift_ratio",
    "Absolute drift divided by the absolute ledger amount checked, per source and account class.",
    _LABELS,
)
UNMATCHED: Final = Gauge(
    "offerhub_recon_unmatched_items",
    "Items of the last reconciliation run that did not match.",
    _LABELS,
)
LAST_SUCCESS: Final = Gauge(
    "offerhub_recon_last_success_timestamp_seconds",
    "Unix time at which a reconciliation run last completed, per source checked.",
    ["marketplace", "source"],
)
RUN_DURATION: Final = Gauge(
    "offerhub_recon_run_duration_seconds",
    "Wall time of the last reconciliation run (gather, compare and store).",
    ["marketplace"],
)


def record_run(
    marketplace_id: str,
    currency: str,
    drift: Iterable[Drift],
    *,
    sources: Iterable[str],
    finished_at_s: float,
    duration_s: float,
) -> None:
    """Publish a completed run: drift, ratio and unmatched per class, success per source."""
    for row in drift:
        labels = (marketplace_id, currency, row.source, row.account_class)
        DRIFT.labels(*labels).set(row.amount)
        ratio = (
            abs(row.amount) / row.checked_amount if row.checked_amount else float(row.amount != 0)
        )
        DRIFT_RATIO.labels(*labels).set(ratio)
        UNMATCHED.labels(*labels).set(row.unmatched)
    for source in sources:
        LAST_SUCCESS.labels(marketplace_id, source).set(finished_at_s)
    RUN_DURATION.labels(marketplace_id).set(duration_s)


def record_failure(marketplace_id: str, duration_s: float) -> None:
    """A failed run only updates its duration: the last success time stays, and ages."""
    RUN_DURATION.labels(marketplace_id).set(duration_s)
