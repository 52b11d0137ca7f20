"""Wire types of the ledger and report routes (api.md 3.12, 4): accounts, entries, transfers,
the trial balance and account statements, with the functions that render domain rows.

Amounts are decimal strings; balances (``balance``, ``available``, ``balance_after``,
statement balances) are signed from the account's normal side.
"""

from datetime import datetime

import msgspec

from api.schemas.common import ResponseStruct
from common.money import format_amount, format_signed_amount
from common.times import format_time
from ledger.report_types import AccountStatement as StatementRow
from ledger.report_types import StatementLine, TransferView
from ledger.report_types import TrialBalance as TrialBalanceRow
from ledger.types import Account, AccountBalance

__all__ = [
    "AccountRef",
    "AccountStatement",
    "LedgerAccount",
    "LedgerEntry",
    "Transfer",
    "TrialBalance",
    "TrialBalanceLine",
    "TrialBalanceTotals",
    "account_out",
    "entry_out",
    "statement_out",
    "transfer_out",
    "trial_balance_out",
]


class AccountRef(ResponseStruct, frozen=True):
    """An account named by id and code."""

    id: str
    code: str


class LedgerAccount(ResponseStruct, frozen=True):
    """A ledger account with its counters and balances (at ``as_of`` when asked)."""

    id: str
    code: str
    type: str
    currency: str
    user_id: str | None
    order_id: str | None
    normal_side: str
    flags: list[str]
    debits_posted: str
    credits_posted: str
    debits_pending: str
    credits_pending: str
    balance: str
    available: str
    as_of: str | None
    created_at: str


class LedgerEntry(ResponseStruct, frozen=True):
    """One side of a transfer seen from an account, with the account's balance after it."""

    transfer_id: str
    timestamp: str
    code: str
    phase: str
    side: str
    amount: str
    counterparty: AccountRef
    balance_after: str
    debits_pending_after: str
    credits_pending_after: str
    external_ref: str | None
    description: str | None


class Transfer(ResponseStruct, frozen=True):
    """A ledger transfer (one journal line)."""

    id: str
    timestamp: str
    code: str
    phase: str
    pending_id: str | None
    pending_status: str | None
    debit_account: AccountRef
    credit_account: AccountRef
    amount: str
    currency: str
    linked_group: str | None
    order_id: str | None
    user_id: str | None
    external_ref: str | None
    description: str | None


class TrialBalanceLine(ResponseStruct, frozen=True):
    """One account, or every USER / ESCROW account aggregated (``account_id`` null)."""

    account_id: str | None
    code: str
    type: str
    accounts: int
    debits_posted: str
    credits_posted: str
    debits_pending: str
    credits_pending: str
    balance: str


class TrialBalanceTotals(ResponseStruct, frozen=True):
    """The sums of the four counters over every account."""

    debits_posted: str
    credits_posted: str
    debits_pending: str
    credits_pending: str


class TrialBalance(ResponseStruct, frozen=True):
    """The trial balance of one currency at ``as_of``."""

    as_of: str
    currency: str
    lines: list[TrialBalanceLine]
    totals: TrialBalanceTotals
    balanced: bool


class AccountStatement(ResponseStruct, frozen=True):
    """An account over ``[from, to)``: posted balances around it, posted movements in it."""

    account: AccountRef
    currency: str
    from_: str = msgspec.field(name="from")
    to: str
    opening_balance: str
    closing_balance: str
    total_debits: str
    total_credits: str
    entry_count: int


def account_out(account: Account, as_of: datetime | None = None) -> LedgerAccount:
    """Render an account (its counters as read, at ``as_of`` if given)."""
    balance = AccountBalance.from_counters(
        account.normal_side,
        account.debits_pending,
        account.debits_posted,
        account.credits_pending,
        account.credits_posted,
    )
    flags = [
        name
        for name, is_set in (
            ("DEBITS_MUST_NOT_EXCEED_CREDITS", account.debits_must_not_exceed_credits),
            ("CREDITS_MUST_NOT_EXCEED_DEBITS", account.credits_must_not_exceed_debits),
        )
        if is_set
    ]
    return LedgerAccount(
        id=account.id,
        code=account.code,
        type=account.type.value,
        currency=account.asset,
        user_id=account.user_id,
        order_id=account.order_id,
        normal_side=account.normal_side.value,
        flags=flags,
        debits_posted=format_amount(account.debits_posted),
        credits_posted=format_amount(account.credits_posted),
        debits_pending=format_amount(account.debits_pending),
        credits_pending=format_amount(account.credits_pending),
        balance=format_signed_amount(balance.posted),
        available=format_signed_amount(balance.available),
        as_of=None if as_of is None else format_time(as_of),
        created_at=format_time(account.created_at),
    )


def entry_out(line: StatementLine) -> LedgerEntry:
    """Render one entry of an account."""
    return LedgerEntry(
        transfer_id=line.transfer_id,
        timestamp=format_time(line.created_at),
        code=line.code,
        phase=line.phase,
        side=line.side,
        amount=format_amount(line.amount),
        counterparty=AccountRef(id=line.counterparty_id, code=line.counterparty_code),
        balance_after=format_signed_amount(line.balance_after),
        debits_pending_after=format_amount(line.debits_pending_after),
        credits_pending_after=format_amount(line.credits_pending_after),
        external_ref=line.external_ref,
        description=line.description,
    )


def transfer_out(transfer: TransferView) -> Transfer:
    """Render one transfer."""
    return Transfer(
        id=transfer.id,
        timestamp=format_time(transfer.created_at),
        code=transfer.code,
        phase=transfer.phase,
        pending_id=transfer.pending_id,
        pending_status=transfer.pending_status,
        debit_account=AccountRef(id=transfer.debit_account_id, code=transfer.debit_account_code),
        credit_account=AccountRef(id=transfer.credit_account_id, code=transfer.credit_account_code),
        amount=format_amount(transfer.amount),
        currency=transfer.asset,
        linked_group=transfer.linked_group,
        order_id=transfer.order_id,
        user_id=transfer.user_id,
        external_ref=transfer.external_ref,
        description=transfer.description,
    )


def trial_balance_out(balance: TrialBalanceRow) -> TrialBalance:
    """Render the JSON trial balance."""
    lines = [
        TrialBalanceLine(
            account_id=line.account_id,
            code=line.code,
            type=line.type,
            accounts=line.accounts,
            debits_posted=format_amount(line.debits_posted),
            credits_posted=format_amount(line.credits_posted),
            debits_pending=format_amount(line.debits_pending),
            credits_pending=format_amount(line.credits_pending),
            balance=format_signed_amount(line.balance),
        )
        for line in balance.lines
    ]
    totals = TrialBalanceTotals(
        debits_posted=format_amount(balance.debits_posted),
        credits_posted=format_amount(balance.credits_posted),
        debits_pending=format_amount(balance.debits_pending),
        credits_pending=format_amount(balance.credits_pending),
    )
    return TrialBalance(
        as_of=format_time(balance.as_of),
        currency=balance.currency,
        lines=lines,
        totals=totals,
        balanced=balance.balanced,
    )


def statement_out(statement: StatementRow) -> AccountStatement:
    """Render an account statement's summary."""
    return AccountStatement(
        account=AccountRef(id=statement.account_id, code=statement.account_code),
        currency=statement.currency,
        from_=format_time(statement.start),
        to=format_time(statement.end),
        opening_balance=format_signed_amount(statement.opening_balance),
        closing_balance=format_signed_amount(statement.closing_balance),
        total_debits=format_amount(statement.total_debits),
        total_credits=format_amount(statement.total_credits),
        entry_count=statement.entry_count,
    )
