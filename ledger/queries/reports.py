"""Statements that read the ledger for reports, exports and the ledger routes (read-only).

Every statement filters on ``marketplace_id`` first. Times are transfer times (``created_at``,
copied onto each entry); ranges are ``[from, to)``. Signed balances are taken from the account's
normal side: ``credits - debits`` for credit-normal accounts, ``debits - credits`` otherwise.
"""

from typing import Final, LiteralString

__all__ = [
    "COUNTERS_BEFORE",
    "COUNT_ENTRIES",
    "SELECT_ACCOUNTS_PAGE",
    "SELECT_ACCOUNT_AT",
    "SELECT_ACCOUNT_ENTRIES",
    "SELECT_ACCOUNT_NOW",
    "SELECT_GL_ENTRIES",
    "SELECT_GL_ENTRIES_OF_ACCOUNT",
    "SELECT_JOURNAL",
    "SELECT_POSITION",
    "SELECT_TRANSFER",
    "SELECT_TRANSFERS_PAGE",
    "SET_WHOLE_RESULT_PLANS",
    "TRIAL_BALANCE_AT",
    "TRIAL_BALANCE_NOW",
]

# Where the snapshot stands: a time every visible transfer is at or before (clock_timestamp()
# runs after the snapshot was taken, and a transfer is committed after its created_at), the
# last visible transfer (ledger_transfers_by_sequence) and the isolation level, to assert it.
SELECT_POSITION: Final[LiteralString] = """
SELECT
    clock_timestamp() AS as_of,
    coalesce(
        (SELECT max(sequence) FROM ledger_transfers WHERE marketplace_id = $1), 0
    ) AS sequence,
    current_setting('transaction_isolation') AS isolation,
    current_setting('transaction_read_only') AS read_only
"""

# Cursors of this transaction read their whole result: plan for total time (LOCAL: it ends
# with the transaction, so a pooled connection goes back unchanged).
SET_WHOLE_RESULT_PLANS: Final[LiteralString] = """
SET LOCAL cursor_tuple_fraction = 1.0
"""

# The trial balance from the counters: exact for the whole snapshot (ledger_accounts_code_key).
TRIAL_BALANCE_NOW: Final[LiteralString] = """
SELECT
    a.id, a.code, a.type::text, a.asset,
    a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending,
    CASE a.normal_side
        WHEN 'CREDIT' THEN a.credits_posted - a.debits_posted
        ELSE a.debits_posted - a.credits_posted END AS balance
FROM ledger_accounts AS a
WHERE a.marketplace_id = $1 AND a.asset = $2
ORDER BY a.code COLLATE "C"
"""

# The trial balance at a past time: each account's latest entry at or before it
# (ledger_entries_by_time); accounts opened later are left out, unmoved ones count zero.
TRIAL_BALANCE_AT: Final[LiteralString] = """
SELECT
    a.id, a.code, a.type::text, a.asset,
    coalesce(e.debits_posted, 0), coalesce(e.credits_posted, 0),
    coalesce(e.debits_pending, 0), coalesce(e.credits_pending, 0),
    coalesce(CASE a.normal_side
        WHEN 'CREDIT' THEN e.credits_posted - e.debits_posted
        ELSE e.debits_posted - e.credits_posted END, 0) AS balance
FROM ledger_accounts AS a
LEFT JOIN LATERAL (
    SELECT x.debits_posted, x.credits_posted, x.debits_pending, x.credits_pending
    FROM ledger_entries AS x
    WHERE x.marketplace_id = a.marketplace_id AND x.account_id = a.id AND x.created_at <= $3
    ORDER BY x.created_at DESC, x.version DESC
    LIMIT 1
) AS e ON true
WHERE a.marketplace_id = $1 AND a.asset = $2 AND a.created_at <= $3
ORDER BY a.code COLLATE "C"
"""

# A page of accounts in code order after (code, id), with optional filters; codes are compared
# bytewise so the order does not depend on the server's locale.
SELECT_ACCOUNTS_PAGE: Final[LiteralString] = """
SELECT
    a.id, a.marketplace_id, a.code, a.asset, a.type, a.normal_side,
    a.debits_must_not_exceed_credits, a.credits_must_not_exceed_debits, a.version,
    a.user_id, a.order_id, a.created_at,
    a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted
FROM ledger_accounts AS a
WHERE a.marketplace_id = $1
    AND ($2::ledger_account_type IS NULL OR a.type = $2)
    AND ($3::text IS NULL OR a.code = $3)
    AND ($4::text IS NULL OR a.user_id = $4)
    AND ($5::text IS NULL OR a.order_id = $5)
    AND ($6::text IS NULL OR a.asset = $6)
    AND ($7::text IS NULL OR (a.code COLLATE "C", a.id) > ($7 COLLATE "C", $8::text))
ORDER BY a.code COLLATE "C", a.id
LIMIT $9
"""

# One account with its current counters (ledger_accounts_pkey).
SELECT_ACCOUNT_NOW: Final[LiteralString] = """
SELECT
    a.id, a.marketplace_id, a.code, a.asset, a.type, a.normal_side,
    a.debits_must_not_exceed_credits, a.credits_must_not_exceed_debits, a.version,
    a.user_id, a.order_id, a.created_at,
    a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted
FROM ledger_accounts AS a
WHERE a.marketplace_id = $1 AND a.id = $2
"""

# One account with its counters as of a time: the latest entry at or before it
# (ledger_accounts_pkey, ledger_entries_by_time); zero counters before its first entry.
SELECT_ACCOUNT_AT: Final[LiteralString] = """
SELECT
    a.id, a.marketplace_id, a.code, a.asset, a.type, a.normal_side,
    a.debits_must_not_exceed_credits, a.credits_must_not_exceed_debits, a.version,
    a.user_id, a.order_id, a.created_at,
    coalesce(e.debits_pending, 0) AS debits_pending,
    coalesce(e.debits_posted, 0) AS debits_posted,
    coalesce(e.credits_pending, 0) AS credits_pending,
    coalesce(e.credits_posted, 0) AS credits_posted
FROM ledger_accounts AS a
LEFT JOIN LATERAL (
    SELECT x.debits_pending, x.debits_posted, x.credits_pending, x.credits_posted
    FROM ledger_entries AS x
    WHERE x.marketplace_id = a.marketplace_id AND x.account_id = a.id AND x.created_at <= $3
    ORDER BY x.created_at DESC, x.version DESC
    LIMIT 1
) AS e ON true
WHERE a.marketplace_id = $1 AND a.id = $2
"""

# An account's counters just before a time (opening and closing of a statement).
COUNTERS_BEFORE: Final[LiteralString] = """
SELECT x.debits_pending, x.debits_posted, x.credits_pending, x.credits_posted
FROM ledger_entries AS x
WHERE x.marketplace_id = $1 AND x.account_id = $2 AND x.created_at < $3
ORDER BY x.created_at DESC, x.version DESC
LIMIT 1
"""

# How many entries an account has in [from, to) (ledger_entries_by_time).
COUNT_ENTRIES: Final[LiteralString] = """
SELECT count(*) FROM ledger_entries AS x
WHERE x.marketplace_id = $1 AND x.account_id = $2 AND x.created_at >= $3 AND x.created_at < $4
"""

# An account's entries in [from, to) after a version, oldest first, each with its transfer,
# counterparty and signed posted balance (ledger_entries_pkey). LIMIT NULL reads them all.
SELECT_ACCOUNT_ENTRIES: Final[LiteralString] = """
SELECT
    e.version, e.transfer_id, e.created_at, t.code, t.phase::text AS phase, e.side::text AS side,
    t.amount, cp.id AS counterparty_id, cp.code AS counterparty_code,
    CASE a.normal_side
        WHEN 'CREDIT' THEN e.credits_posted - e.debits_posted
        ELSE e.debits_posted - e.credits_posted END AS balance_after,
    e.debits_pending AS debits_pending_after, e.credits_pending AS credits_pending_after,
    t.external_ref, t.description
FROM ledger_entries AS e
JOIN ledger_accounts AS a ON a.marketplace_id = e.marketplace_id AND a.id = e.account_id
JOIN ledger_transfers AS t ON t.marketplace_id = e.marketplace_id AND t.id = e.transfer_id
JOIN ledger_accounts AS cp ON cp.marketplace_id = e.marketplace_id
    AND cp.id = CASE e.side WHEN 'DEBIT' THEN t.credit_account_id ELSE t.debit_account_id END
WHERE e.marketplace_id = $1 AND e.account_id = $2
    AND ($3::timestamptz IS NULL OR e.created_at >= $3)
    AND ($4::timestamptz IS NULL OR e.created_at < $4)
    AND e.version > $5
ORDER BY e.version
LIMIT $6
"""

# Transfers with their accounts' codes and, if pending, how they ended
# (ledger_transfers_pending_resolved_once); the WHERE clause is the caller's.
_TRANSFERS_WITH_ACCOUNTS: Final[LiteralString] = """
SELECT
    t.id, t.sequence, t.created_at, t.code, t.phase::text AS phase, t.pending_id,
    CASE WHEN t.phase = 'PENDING' THEN CASE r.phase
        WHEN 'POST_PENDING' THEN 'POSTED' WHEN 'VOID_PENDING' THEN 'VOIDED'
        WHEN 'EXPIRE_PENDING' THEN 'EXPIRED' ELSE 'OPEN' END END AS pending_status,
    t.debit_account_id, d.code AS debit_account_code,
    t.credit_account_id, c.code AS credit_account_code,
    t.amount, t.asset, t.linked_group, t.order_id, t.user_id, t.external_ref, t.description
FROM ledger_transfers AS t
JOIN ledger_accounts AS d ON d.marketplace_id = t.marketplace_id AND d.id = t.debit_account_id
JOIN ledger_accounts AS c ON c.marketplace_id = t.marketplace_id AND c.id = t.credit_account_id
LEFT JOIN LATERAL (
    SELECT q.phase FROM ledger_transfers AS q
    WHERE q.marketplace_id = t.marketplace_id AND q.pending_id = t.id
    LIMIT 1
) AS r ON t.phase = 'PENDING'
"""

# One transfer (ledger_transfers_pkey).
SELECT_TRANSFER: Final[LiteralString] = (
    _TRANSFERS_WITH_ACCOUNTS
    + """WHERE t.marketplace_id = $1 AND t.id = $2
"""
)

# A page of the journal, oldest first after a sequence, with optional filters
# (ledger_transfers_by_sequence).
SELECT_TRANSFERS_PAGE: Final[LiteralString] = (
    _TRANSFERS_WITH_ACCOUNTS
    + """WHERE t.marketplace_id = $1
    AND ($2::text IS NULL OR t.debit_account_id = $2 OR t.credit_account_id = $2)
    AND ($3::text IS NULL OR t.order_id = $3)
    AND ($4::text IS NULL OR t.user_id = $4)
    AND ($5::text IS NULL OR t.code = $5)
    AND ($6::timestamptz IS NULL OR t.created_at >= $6)
    AND ($7::timestamptz IS NULL OR t.created_at < $7)
    AND t.sequence > $8
ORDER BY t.sequence
LIMIT $9
"""
)

# The journal export: one row per transfer in [from, to), in the export's column order.
SELECT_JOURNAL: Final[LiteralString] = """
SELECT
    t.id, t.created_at, t.phase::text, t.code,
    t.debit_account_id, d.code, t.credit_account_id, c.code,
    t.amount, t.asset, t.pending_id, t.linked_group, t.order_id, t.user_id, t.external_ref,
    t.description
FROM ledger_transfers AS t
JOIN ledger_accounts AS d ON d.marketplace_id = t.marketplace_id AND d.id = t.debit_account_id
JOIN ledger_accounts AS c ON c.marketplace_id = t.marketplace_id AND c.id = t.credit_account_id
WHERE t.marketplace_id = $1 AND t.created_at >= $2 AND t.created_at < $3
ORDER BY t.sequence
"""

# The general-ledger detail: one row per posting in [from, to), in the export's column order.
_GL_ENTRIES: Final[LiteralString] = """
SELECT
    t.id, t.created_at, e.account_id, a.code, e.side::text, t.amount, t.asset, t.phase::text,
    t.code, cp.code,
    CASE a.normal_side
        WHEN 'CREDIT' THEN e.credits_posted - e.debits_posted
        ELSE e.debits_posted - e.credits_posted END,
    e.debits_pending, e.credits_pending, t.order_id, t.external_ref
FROM ledger_entries AS e
JOIN ledger_accounts AS a ON a.marketplace_id = e.marketplace_id AND a.id = e.account_id
JOIN ledger_transfers AS t ON t.marketplace_id = e.marketplace_id AND t.id = e.transfer_id
JOIN ledger_accounts AS cp ON cp.marketplace_id = e.marketplace_id
    AND cp.id = CASE e.side WHEN 'DEBIT' THEN t.credit_account_id ELSE t.debit_account_id END
WHERE e.marketplace_id = $1 AND e.created_at >= $2 AND e.created_at < $3
"""

# Every account's postings, transfer order, debit first (ledger_side lists DEBIT first).
SELECT_GL_ENTRIES: Final[LiteralString] = (
    _GL_ENTRIES
    + """ORDER BY e.transfer_sequence, e.side
"""
)

# The same for one account (ledger_entries_by_time).
SELECT_GL_ENTRIES_OF_ACCOUNT: Final[LiteralString] = (
    _GL_ENTRIES
    + """    AND e.account_id = $4
ORDER BY e.transfer_sequence, e.side
"""
)
