"""Read-only statements the users, wallets and balance routes need beyond ``flows.queries``."""

from collections.abc import Sequence
from typing import Final, LiteralString

import asyncpg

__all__ = ["transfers_by_hash"]

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
