"""Read-only statements the users, wallets and balance routes need beyond ``flows.queries``."""

from collections.abc import Sequence
from datetime import datetime
from typing import Final, LiteralString

import asyncpg

__all__ = ["processing_total_at", "transfers_by_hash"]

# Top-ups of the user whose latest transition at or before $3 entered TOPUP_PROCESSING: the
# pending deposits of a past balance (topups_by_user, state_transitions_by_resource).
PROCESSING_TOTAL_AT: Final[LiteralString] = """
SELECT COALESCE(sum(t.amount_minor), 0)::bigint FROM topups AS t
WHERE t.marketplace_id = $1 AND t.user_id = $2 AND t.created_at <= $3
    AND (
        SELECT s.to_status FROM state_transitions AS s
        WHERE s.marketplace_id = t.marketplace_id AND s.resource_id = t.id
            AND s.occurred_at <= $3
        ORDER BY s.id DESC
        LIMIT 1
    ) = 'TOPUP_PROCESSING'
"""

# Transfers posted to the user's ledger account whose external reference is one of the given
# transaction hashes, oldest first. Walks the account's entries (ledger_entries_pkey prefix),
# so the cost follows the user's activity, never the whole ledger.
TRANSFERS_BY_HASH: Final[LiteralString] = """
SELECT t.external_ref, t.id
FROM ledger_accounts AS a
JOIN ledger_entries AS e ON e.marketplace_id = a.marketplace_id AND e.account_id = a.id
JOIN ledger_transfers AS t ON t.marketplace_id = e.marketplace_id AND t.id = e.transfer_id
WHERE a.marketplace_id = $1 AND a.asset = $2 AND a.code = $3
    AND t.external_ref = ANY($4::text[])
ORDER BY e.version
"""


async def processing_total_at(
    conn: asyncpg.Connection, marketplace_id: str, user_id: str, as_of: datetime
) -> int:
    """Minor units of the user's top-ups that were in TOPUP_PROCESSING at ``as_of``."""
    return int(await conn.fetchval(PROCESSING_TOTAL_AT, marketplace_id, user_id, as_of))


async def transfers_by_hash(
    conn: asyncpg.Connection,
    marketplace_id: str,
    *,
    asset: str,
    account_code: str,
    hashes: Sequence[str],
) -> dict[str, str]:
    """The first transfer on the account booked for each hash: ``{hash: transfer_id}``."""
    if not hashes:
        return {}
    rows = await conn.fetch(TRANSFERS_BY_HASH, marketplace_id, asset, account_code, list(hashes))
    found: dict[str, str] = {}
    for row in rows:
        found.setdefault(row["external_ref"], row["id"])
    return found
