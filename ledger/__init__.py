"""The double-entry ledger on PostgreSQL: accounts, transfers (pending/post/void/linked/batch),
balances, history, and the database plumbing (schema, pool, transactions, local server).
"""

from ledger.accounts import (
    AccountNotFound,
    AccountSpec,
    escrow_account,
    get_account,
    get_account_by_code,
    open_account,
    system_account,
    user_account,
)
from ledger.balances import account_entries, balance, balance_at
from ledger.db import (
    LedgerInvariantViolation,
    TransferRaced,
    create_pool,
    run_in_transaction,
    translate_database_errors,
)
from ledger.expiry import expire_pending_transfers
from ledger.schema import SCHEMA_SQL, SCHEMA_VERSION, SchemaMismatch, migrate
from ledger.transfers import create_transfers
from ledger.types import (
    Account,
    AccountBalance,
    AccountType,
    Entry,
    Side,
    Transfer,
    TransferOutcome,
    TransferPhase,
    TransferResult,
)

__all__ = [
    "SCHEMA_SQL",
    "SCHEMA_VERSION",
    "Account",
    "AccountBalance",
    "AccountNotFound",
    "AccountSpec",
    "AccountType",
    "Entry",
    "LedgerInvariantViolation",
    "SchemaMismatch",
    "Side",
    "Transfer",
    "TransferOutcome",
    "TransferPhase",
    "TransferRaced",
    "TransferResult",
    "account_entries",
    "balance",
    "balance_at",
    "create_pool",
    "create_transfers",
    "escrow_account",
    "expire_pending_transfers",
    "get_account",
    "get_account_by_code",
    "migrate",
    "open_account",
    "run_in_transaction",
    "system_account",
    "translate_database_errors",
    "user_account",
]
