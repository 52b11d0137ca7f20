"""SQL of the ledger side of a run, one statement per constant (read in one snapshot)."""

from typing import Final, LiteralString

__all__ = [
    "BOUND_BREACHES",
    "CLEARING",
    "ESCROWS",
    "PLATFORM_POSTED",
    "POSITION",
    "STUCK_OPERATIONS",
    "UNBOOKED_TRANSACTIONS",
    "USERS",
    "ZERO_SUM",
]

# The pinned ledger position: the last transfer sequence of the marketplace, and the
# snapshot's time (now() is the transaction start: the same instant for every read below).
POSITION: Final[LiteralString] = """
SELECT coalesce(max(sequence), 0)::bigint AS position, now() AS as_of
FROM ledger_transfers WHERE marketplace_id = $1
"""

# Every user with a wallet or a user account (or both), its posted balance and the top-ups
# credited but not delivered on chain yet (topups_undelivered).
USERS: Final[LiteralString] = """
WITH accounts AS (
    SELECT id, user_id, credits_posted - debits_posted AS posted
    FROM ledger_accounts
    WHERE marketplace_id = $1 AND asset = $2 AND type = 'USER'
),
owned AS (
    SELECT user_id, public_key FROM wallets WHERE marketplace_id = $1
),
undelivered AS (
    SELECT user_id, sum(amount_minor)::bigint AS amount
    FROM topups
    WHERE marketplace_id = $1 AND credit_transfer_id IS NOT NULL AND delivered_at IS NULL
    GROUP BY user_id
)
SELECT coalesce(w.user_id, a.user_id) AS user_id, a.id AS account_id, w.public_key,
    coalesce(a.posted, 0)::bigint AS posted, coalesce(u.amount, 0)::bigint AS undelivered_topups
FROM accounts AS a
FULL JOIN owned AS w ON w.user_id = a.user_id
LEFT JOIN undelivered AS u ON u.user_id = coalesce(w.user_id, a.user_id)
ORDER BY 1
"""

# Deployed escrows (a contract id, not FAILED) with their escrow:<ord> posted balance. The
# account is a LATERAL key lookup (ledger_accounts_code_key): as a plain join on the computed
# code the planner filtered a full scan per escrow (measured: 6.6 s for 10,000 escrows).
ESCROWS: Final[LiteralString] = """
SELECT e.id AS escrow_id, e.order_id, e.contract_id, e.status, a.id AS account_id,
    coalesce(a.posted, 0)::bigint AS posted
FROM escrows AS e
LEFT JOIN LATERAL (
    SELECT q.id, q.credits_posted - q.debits_posted AS posted
    FROM ledger_accounts AS q
    WHERE q.marketplace_id = e.marketplace_id AND q.asset = $2 AND q.code = 'escrow:' || e.order_id
    LIMIT 1
) AS a ON true
WHERE e.marketplace_id = $1 AND e.contract_id IS NOT NULL AND e.status <> 'FAILED'
ORDER BY e.id
"""

# The platform wallet backs fees:platform and treasury:stellar of every marketplace.
PLATFORM_POSTED: Final[LiteralString] = """
SELECT coalesce(sum(credits_posted - debits_posted), 0)::bigint
FROM ledger_accounts
WHERE asset = $1 AND code IN ('fees:platform', 'treasury:stellar')
"""

# Clearing accounts and, when their posted balance is not zero, the time of the first entry
# after the last one that left it at zero.
CLEARING: Final[LiteralString] = """
SELECT a.code, a.id AS account_id, (a.credits_posted - a.debits_posted)::bigint AS posted,
    CASE WHEN a.credits_posted <> a.debits_posted THEN (
        SELECT min(e.created_at) FROM ledger_entries AS e
        WHERE e.marketplace_id = a.marketplace_id AND e.account_id = a.id
            AND e.version > coalesce((
                SELECT max(z.version) FROM ledger_entries AS z
                WHERE z.marketplace_id = a.marketplace_id AND z.account_id = a.id
                    AND z.credits_posted = z.debits_posted
            ), 0)
    ) END AS nonzero_since
FROM ledger_accounts AS a
WHERE a.marketplace_id = $1 AND a.asset = $2 AND a.type = 'CLEARING'
ORDER BY a.code
"""

# Debits minus credits over the marketplace's accounts of the asset, pending and posted.
ZERO_SUM: Final[LiteralString] = """
SELECT coalesce(sum(debits_pending) - sum(credits_pending), 0)::bigint AS pending_difference,
    coalesce(sum(debits_posted) - sum(credits_posted), 0)::bigint AS posted_difference
FROM ledger_accounts WHERE marketplace_id = $1 AND asset = $2
"""

# Bounded accounts over their bound (the table's checks make this empty unless bypassed).
BOUND_BREACHES: Final[LiteralString] = """
SELECT id AS account_id, code,
    CASE WHEN debits_must_not_exceed_credits
        THEN debits_pending + debits_posted - credits_posted
        ELSE credits_pending + credits_posted - debits_posted END AS over
FROM ledger_accounts
WHERE marketplace_id = $1 AND asset = $2 AND (
    (debits_must_not_exceed_credits AND debits_pending + debits_posted > credits_posted)
    OR (credits_must_not_exceed_debits AND credits_pending + credits_posted > debits_posted)
)
"""

# Operations running since before the threshold (operations_due covers status = RUNNING).
STUCK_OPERATIONS: Final[LiteralString] = """
SELECT id AS operation_id, kind::text AS kind, step, resource_type, resource_id,
    created_at AS started_at, attempts
FROM operations
WHERE marketplace_id = $1 AND status = 'RUNNING' AND created_at < now() - make_interval(secs => $2)
ORDER BY created_at
"""

# Transactions of operations still running, in every marketplace: a hook books an operation's
# money when it ends, so anything they moved on chain is not in the ledger yet. The platform
# wallet is shared by all marketplaces, hence no marketplace filter.
UNBOOKED_TRANSACTIONS: Final[LiteralString] = """
SELECT s.tx_hash, s.envelope_xdr
FROM operations AS o
JOIN operation_submissions AS s ON s.marketplace_id = o.marketplace_id AND s.operation_id = o.id
WHERE o.status = 'RUNNING' AND s.status IN ('PENDING', 'CONFIRMED')
"""
