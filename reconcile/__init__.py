"""Reconciliation of the ledger against the chain and providers, and the Prometheus metrics.

Sits on top with the API; imports flows, ledger and providers.
"""

from reconcile.compare import KINDS, SOURCES, STATUSES, Discrepancy, compare
from reconcile.gather import ChainReader, chain_reader
from reconcile.runner import RunSettings, execute_run, reconcile_once, start_run
from reconcile.scheduler import Reconciler
from reconcile.store import ItemRow, RunRow, get_run, latest_run, list_items, list_runs

__all__ = [
    "KINDS",
    "SOURCES",
    "STATUSES",
    "ChainReader",
    "Discrepancy",
    "ItemRow",
    "Reconciler",
    "RunRow",
    "RunSettings",
    "chain_reader",
    "compare",
    "execute_run",
    "get_run",
    "latest_run",
    "list_items",
    "list_runs",
    "reconcile_once",
    "start_run",
]
