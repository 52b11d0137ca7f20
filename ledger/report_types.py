"""Value types of the ledger reports: export columns, positions, summaries and read rows.

Amounts are integer minor units; signed balances are taken from the account's normal side.
"""

import dataclasses
import enum
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple, TypeAlias

import asyncpg
import msgspec

__all__ = [
    "ENTRIES_COLUMNS",
    "JOURNAL_COLUMNS",
    "STATEMENT_COLUMNS",
    "TRIAL_BALANCE_COLUMNS",
    "AccountStatement",
    "Column",
    "ColumnKind",
    "LedgerPosition",
    "Report",
    "Row",
    "StatementLine",
    "TransferView",
    "TrialBalance",
    "TrialBalanceLine",
]

# A row of an export, in its column order: a database record or a tuple built in Python.
Row: TypeAlias = Sequence[Any] | asyncpg.Record


class ColumnKind(enum.StrEnum):
    """How an export renders a column's values (``None`` is always an empty cell / null)."""

    TEXT = "TEXT"
    AMOUNT = "AMOUNT"  # non-negative minor units
    SIGNED_AMOUNT = "SIGNED_AMOUNT"  # minor units that may be negative (balances)
    TIME = "TIME"  # an aware datetime


class Column(NamedTuple):
    """One column of an export: its header name and its kind."""

    name: str
    kind: ColumnKind


_T, _A, _S, _TIME = ColumnKind.TEXT, ColumnKind.AMOUNT, ColumnKind.SIGNED_AMOUNT, ColumnKind.TIME

# The export columns of api.md 3.12, in order.
TRIAL_BALANCE_COLUMNS: Final = tuple(
    Column(name, kind)
    for name, kind in (
        ("account_id", _T),
        ("account_code", _T),
        ("account_type", _T),
        ("currency", _T),
        ("debits_posted", _A),
        ("credits_posted", _A),
        ("debits_pending", _A),
        ("credits_pending", _A),
        ("balance", _S),
    )
)
STATEMENT_COLUMNS: Final = tuple(
    Column(name, kind)
    for name, kind in (
        ("row_type", _T),
        ("timestamp", _TIME),
        ("transfer_id", _T),
        ("code", _T),
        ("description", _T),
        ("debit", _A),
        ("credit", _A),
        ("balance", _S),
    )
)
JOURNAL_COLUMNS: Final = tuple(
    Column(name, kind)
    for name, kind in (
        ("transfer_id", _T),
        ("timestamp", _TIME),
        ("phase", _T),
        ("code", _T),
        ("debit_account_id", _T),
        ("debit_account_code", _T),
        ("credit_account_id", _T),
        ("credit_account_code", _T),
        ("amount", _A),
        ("currency", _T),
        ("pending_id", _T),
        ("linked_group", _T),
        ("order_id", _T),
        ("user_id", _T),
        ("external_ref", _T),
        ("description", _T),
    )
)
ENTRIES_COLUMNS: Final = tuple(
    Column(name, kind)
    for name, kind in (
        ("transfer_id", _T),
        ("timestamp", _TIME),
        ("account_id", _T),
        ("account_code", _T),
        ("side", _T),
        ("amount", _A),
        ("currency", _T),
        ("phase", _T),
        ("code", _T),
        ("counterparty_account_code", _T),
        ("balance_after", _S),
        ("debits_pending_after", _A),
        ("credits_pending_after", _A),
        ("order_id", _T),
        ("external_ref", _T),
    )
)


class LedgerPosition(msgspec.Struct, frozen=True, kw_only=True):
    """Where a read snapshot stands: every transfer it sees is at or before ``as_of``, and
    ``sequence`` is the last one it sees (0: none)."""

    as_of: datetime
    sequence: int


@dataclasses.dataclass(frozen=True)
class Report:
    """A streamed report: its columns, the snapshot it reads, and its rows in chunks.

    ``as_of`` is the time the report stands at (the snapshot's, or an earlier requested one).
    The chunks must be consumed (or closed) inside the snapshot's transaction.
    """

    name: str
    columns: tuple[Column, ...]
    as_of: datetime
    chunks: AsyncGenerator[Sequence[Row], None]


class TrialBalanceLine(msgspec.Struct, frozen=True, kw_only=True):
    """One line of the JSON trial balance: an account, or all USER / ESCROW accounts."""

    account_id: str | None
    code: str
    type: str
    accounts: int
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int
    balance: int


class TrialBalance(msgspec.Struct, frozen=True, kw_only=True):
    """The trial balance of one currency at ``as_of``; ``balanced`` when posted and pending
    debits each equal their credits."""

    as_of: datetime
    currency: str
    lines: list[TrialBalanceLine]
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int
    balanced: bool


class AccountStatement(msgspec.Struct, frozen=True, kw_only=True):
    """An account over ``[start, end)``: posted balances around it and posted movements in it."""

    account_id: str
    account_code: str
    currency: str
    start: datetime
    end: datetime
    opening_balance: int
    closing_balance: int
    total_debits: int
    total_credits: int
    entry_count: int


class StatementLine(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of an account, with its transfer, counterparty and counters after it."""

    version: int
    transfer_id: str
    created_at: datetime
    code: str
    phase: str
    side: str
    amount: int
    counterparty_id: str
    counterparty_code: str
    balance_after: int
    debits_pending_after: int
    credits_pending_after: int
    external_ref: str | None
    description: str | None


class TransferView(msgspec.Struct, frozen=True, kw_only=True):
    """A committed transfer with its accounts' codes and, when pending, how it ended."""

    id: str
    sequence: int
    created_at: datetime
    code: str
    phase: str
    pending_id: str | None
    pending_status: str | None
    debit_account_id: str
    debit_account_code: str
    credit_account_id: str
    credit_account_code: str
    amount: int
    asset: str
    linked_group: str | None
    order_id: str | None
    user_id: str | None
    external_ref: str | None
    description: str | None
