"""The ledger, finance reports, reconciliation and the audit log (``support`` scope; running a
reconciliation needs ``admin``) (api.md 3.11-3.13)."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from offerhub_client._call import M, Resource, endpoint, paginated
from offerhub_client.models.common import Page
from offerhub_client.models.ledger import (
    AccountStatement,
    AuditEntry,
    AuditVerification,
    LedgerAccount,
    LedgerEntry,
    ReconciliationItem,
    ReconciliationRun,
    RunCreate,
    Transfer,
    TrialBalance,
)

__all__ = ["Audit", "Ledger", "Reconciliation", "Reports"]

When = datetime | str | None
Export = Literal["csv", "parquet"]
Source = Literal["ledger", "stellar", "trustless_work", "airtm"]


class Ledger(Resource[M]):
    """``client.ledger``: accounts, their entries, and the journal of transfers."""

    @endpoint("GET", "/ledger/accounts", Page[LedgerAccount])
    @staticmethod
    def accounts(
        *,
        type: str | None = None,
        code: str | None = None,
        user_id: str | None = None,
        order_id: str | None = None,
        currency: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of accounts, by code."""
        return locals()

    accounts_all = paginated(accounts)

    @endpoint("GET", "/ledger/accounts/{account_id}", LedgerAccount)
    @staticmethod
    def account(account_id: str, *, as_of: When = None) -> dict[str, Any]:
        """One account's counters and balances (at ``as_of``)."""
        return locals()

    @endpoint("GET", "/ledger/accounts/{account_id}/entries", Page[LedgerEntry])
    @staticmethod
    def entries(
        account_id: str,
        *,
        from_: When = None,
        to: When = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of the account's entries, oldest first, with the running balance."""
        return locals()

    entries_all = paginated(entries)

    @endpoint("GET", "/ledger/transfers", Page[Transfer])
    @staticmethod
    def transfers(
        *,
        account_id: str | None = None,
        order_id: str | None = None,
        user_id: str | None = None,
        code: str | None = None,
        from_: When = None,
        to: When = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of the journal, oldest first."""
        return locals()

    transfers_all = paginated(transfers)

    @endpoint("GET", "/ledger/transfers/{transfer_id}", Transfer)
    @staticmethod
    def transfer(transfer_id: str) -> dict[str, Any]:
        """One transfer."""
        return locals()


class Reports(Resource[M]):
    """``client.reports``: trial balance, statements, and CSV / Parquet exports (bytes)."""

    @endpoint("GET", "/reports/trial-balance", TrialBalance)
    @staticmethod
    def trial_balance(*, as_of: When = None, currency: str | None = None) -> dict[str, Any]:
        """Every account's counters at ``as_of`` (default now); ``balanced`` must be True."""
        return locals()

    @endpoint("GET", "/reports/trial-balance", bytes)
    @staticmethod
    def trial_balance_export(
        *, format: Export, as_of: When = None, currency: str | None = None
    ) -> dict[str, Any]:
        """The trial balance as a CSV or Parquet file."""
        return locals()

    @endpoint("GET", "/reports/account-statement", AccountStatement)
    @staticmethod
    def account_statement(*, account_id: str, from_: When, to: When) -> dict[str, Any]:
        """An account over ``[from_, to)``: opening, closing, totals."""
        return locals()

    @endpoint("GET", "/reports/account-statement", bytes)
    @staticmethod
    def account_statement_export(
        *, account_id: str, from_: When, to: When, format: Export
    ) -> dict[str, Any]:
        """The statement with its lines, as a CSV or Parquet file."""
        return locals()

    @endpoint("GET", "/reports/journal", bytes)
    @staticmethod
    def journal(*, from_: When, to: When, format: Export) -> dict[str, Any]:
        """Every transfer in ``[from_, to)`` as a CSV or Parquet file."""
        return locals()

    @endpoint("GET", "/reports/entries", bytes)
    @staticmethod
    def entries(
        *, from_: When, to: When, format: Export, account_id: str | None = None
    ) -> dict[str, Any]:
        """General-ledger detail (one row per entry) as a CSV or Parquet file."""
        return locals()


class Reconciliation(Resource[M]):
    """``client.reconciliation``: runs comparing the ledger with the chain and providers."""

    @endpoint("POST", "/reconciliation/runs", ReconciliationRun, body=RunCreate)
    @staticmethod
    def run(
        *, sources: Sequence[Source] | None = None, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Start a run (``admin``): the finished run, or 202 with it ``RUNNING``."""
        return locals()

    @endpoint("GET", "/reconciliation/runs", Page[ReconciliationRun])
    @staticmethod
    def runs(
        *,
        status: str | None = None,
        trigger: str | None = None,
        created_after: When = None,
        created_before: When = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of runs, newest first."""
        return locals()

    runs_all = paginated(runs)

    @endpoint("GET", "/reconciliation/runs/latest", ReconciliationRun)
    @staticmethod
    def latest() -> dict[str, Any]:
        """The most recent run, running or not."""
        return locals()

    @endpoint("GET", "/reconciliation/runs/{run_id}", ReconciliationRun)
    @staticmethod
    def get(run_id: str) -> dict[str, Any]:
        """One run."""
        return locals()

    @endpoint("GET", "/reconciliation/runs/{run_id}/items", Page[ReconciliationItem])
    @staticmethod
    def items(
        run_id: str,
        *,
        status: str | None = None,
        kind: str | None = None,
        source: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of a run's items (default: every status but ``MATCHED``)."""
        return locals()

    items_all = paginated(items)


class Audit(Resource[M]):
    """``client.audit``: the append-only, hash-chained audit log."""

    @endpoint("GET", "/audit/logs", Page[AuditEntry])
    @staticmethod
    def logs(
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        action: str | None = None,
        actor_type: str | None = None,
        actor_id: str | None = None,
        request_id: str | None = None,
        from_: When = None,
        to: When = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of entries, newest first."""
        return locals()

    logs_all = paginated(logs)

    @endpoint("GET", "/audit/logs/verify", AuditVerification)
    @staticmethod
    def verify(*, from_: When = None, to: When = None) -> dict[str, Any]:
        """Recompute the hash chain."""
        return locals()
