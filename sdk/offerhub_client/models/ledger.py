"""The ledger, finance reports, reconciliation and the audit log (api.md 3.11-3.13, 4).

Balances here are signed from the account's normal side (``balance``, ``available``,
``balance_after``, statement balances, reconciliation differences).
"""

from typing import Any, Literal

import msgspec

from offerhub_client.models.common import Amount, Body, Model, Time

__all__ = [
    "AccountRef",
    "AccountStatement",
    "AuditActor",
    "AuditEntry",
    "AuditError",
    "AuditVerification",
    "Drift",
    "LedgerAccount",
    "LedgerEntry",
    "ReconciliationItem",
    "ReconciliationRun",
    "RunCreate",
    "RunSummary",
    "Transfer",
    "TrialBalance",
    "TrialBalanceLine",
    "TrialBalanceTotals",
]


class AccountRef(Model, frozen=True, kw_only=True):
    """An account named by id and code (``user:usr_...``, ``fees:platform``, ...)."""

    id: str
    code: str


class LedgerAccount(Model, frozen=True, kw_only=True):
    """A ledger account with its four counters and balances (at ``as_of`` when asked)."""

    id: str
    code: str
    type: str
    currency: str
    user_id: str | None = None
    order_id: str | None = None
    normal_side: str
    flags: list[str]
    debits_posted: Amount
    credits_posted: Amount
    debits_pending: Amount
    credits_pending: Amount
    balance: Amount
    available: Amount
    as_of: Time | None = None
    created_at: Time


class LedgerEntry(Model, frozen=True, kw_only=True):
    """One side of a transfer seen from an account, with the running balance."""

    transfer_id: str
    timestamp: Time
    code: str
    phase: str
    side: str
    amount: Amount
    counterparty: AccountRef
    balance_after: Amount
    debits_pending_after: Amount
    credits_pending_after: Amount
    external_ref: str | None = None
    description: str | None = None


class Transfer(Model, frozen=True, kw_only=True):
    """A ledger transfer (one journal line)."""

    id: str
    timestamp: Time
    code: str
    phase: str
    pending_id: str | None = None
    pending_status: str | None = None
    debit_account: AccountRef
    credit_account: AccountRef
    amount: Amount
    currency: str
    linked_group: str | None = None
    order_id: str | None = None
    user_id: str | None = None
    external_ref: str | None = None
    description: str | None = None


class TrialBalanceLine(Model, frozen=True, kw_only=True):
    """One account, or all USER / ESCROW accounts aggregated (``account_id`` None)."""

    account_id: str | None = None
    code: str
    type: str
    accounts: int
    debits_posted: Amount
    credits_posted: Amount
    debits_pending: Amount
    credits_pending: Amount
    balance: Amount


class TrialBalanceTotals(Model, frozen=True, kw_only=True):
    """The four counters summed over every account."""

    debits_posted: Amount
    credits_posted: Amount
    debits_pending: Amount
    credits_pending: Amount


class TrialBalance(Model, frozen=True, kw_only=True):
    """The trial balance of one currency at ``as_of``; ``balanced`` must be True."""

    as_of: Time
    currency: str
    lines: list[TrialBalanceLine]
    totals: TrialBalanceTotals
    balanced: bool


class AccountStatement(Model, frozen=True, kw_only=True):
    """An account over ``[from, to)``: opening and closing balances, movements."""

    account: AccountRef
    currency: str
    from_: Time = msgspec.field(name="from")
    to: Time
    opening_balance: Amount
    closing_balance: Amount
    total_debits: Amount
    total_credits: Amount
    entry_count: int


class RunSummary(Model, frozen=True, kw_only=True):
    """What a reconciliation run checked."""

    items_checked: int
    matched: int
    discrepancies: int


class Drift(Model, frozen=True, kw_only=True):
    """Signed drift (ledger - external) of a source and account class."""

    currency: str
    source: str
    account_class: str
    amount: Amount


class ReconciliationRun(Model, frozen=True, kw_only=True):
    """A reconciliation run (scheduled or manual)."""

    id: str
    status: str
    trigger: str
    sources: list[str]
    ledger_as_of: Time
    stellar_ledger: int | None = None
    summary: RunSummary
    drift: list[Drift]
    error: str | None = None
    created_at: Time
    finished_at: Time | None = None


class ReconciliationItem(Model, frozen=True, kw_only=True):
    """One check of a run: matched, or a discrepancy to fix through the normal flows."""

    id: str
    run_id: str
    source: str
    kind: str
    status: str
    account_class: str
    resource_type: str | None = None
    resource_id: str | None = None
    account_id: str | None = None
    external_ref: str | None = None
    ledger_amount: Amount | None = None
    external_amount: Amount | None = None
    difference: Amount | None = None
    detail: str
    created_at: Time


class AuditActor(Model, frozen=True, kw_only=True):
    """Who made a change."""

    type: str
    id: str | None = None


class AuditError(Model, frozen=True, kw_only=True):
    """Why an audited change failed."""

    code: str
    message: str


class AuditEntry(Model, frozen=True, kw_only=True):
    """One entry of the marketplace's hash-chained audit log."""

    id: str
    chain_index: int
    occurred_at: Time
    marketplace_id: str
    action: str
    actor: AuditActor
    resource_type: str
    resource_id: str
    before: Any = None
    after: Any = None
    result: str
    error: AuditError | None = None
    request_id: str | None = None
    idempotency_key: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    prev_hash: str
    hash: str


class AuditVerification(Model, frozen=True, kw_only=True):
    """Whether the audit chain recomputes, and where it first breaks."""

    valid: bool
    entries_checked: int
    first_invalid_id: str | None = None
    head_hash: str | None = None


class RunCreate(Body, frozen=True, kw_only=True):
    """``POST /reconciliation/runs`` (admin)."""

    sources: list[Literal["ledger", "stellar", "trustless_work", "airtm"]] | None = None
