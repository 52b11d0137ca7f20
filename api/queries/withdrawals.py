"""Read-only statements the withdrawal routes need beyond ``flows.queries.withdrawals``."""

from typing import Final, LiteralString

import asyncpg
import msgspec

from flows.queries.operations import Operation

__all__ = ["latest_operation", "latest_payment_hash"]

# The newest operation started for a withdrawal (operations_one_running_per_resource keeps at
# most one of a kind running).
LATEST_OPERATION: Final[LiteralString] = """
SELECT * FROM operations
WHERE marketplace_id = $1 AND resource_type = 'withdrawal' AND resource_id = $2
ORDER BY created_at DESC, id DESC
LIMIT 1
"""

# The newest payment transaction a WITHDRAWAL_PAYMENT operation of the withdrawal signed and
# that may have landed (in flight or confirmed); a refresh looks its hash up on Horizon.
LATEST_PAYMENT_HASH: Final[LiteralString] = """
SELECT s.tx_hash FROM operation_submissions AS s
JOIN operations AS o ON o.marketplace_id = s.marketplace_id AND o.id = s.operation_id
WHERE o.marketplace_id = $1 AND o.resource_type = 'withdrawal' AND o.resource_id = $2
    AND o.kind = 'WITHDRAWAL_PAYMENT' AND s.status IN ('PENDING', 'CONFIRMED')
ORDER BY s.created_at DESC
LIMIT 1
"""


async def latest_operation(
    conn: asyncpg.Connection, marketplace_id: str, withdrawal_id: str
) -> Operation | None:
    """The newest operation of a withdrawal, or ``None``."""
    row = await conn.fetchrow(LATEST_OPERATION, marketplace_id, withdrawal_id)
    return None if row is None else msgspec.convert(dict(row), type=Operation)


async def latest_payment_hash(
    conn: asyncpg.Connection, marketplace_id: str, withdrawal_id: str
) -> str | None:
    """The hash of the withdrawal's newest in-flight or confirmed payment, or ``None``."""
    value = await conn.fetchval(LATEST_PAYMENT_HASH, marketplace_id, withdrawal_id)
    return None if value is None else str(value)
