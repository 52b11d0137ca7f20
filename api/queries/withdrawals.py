"""Read-only statements the withdrawal routes need beyond ``flows.queries.withdrawals``."""

from typing import Final, LiteralString

import asyncpg
import msgspec

from flows.queries.operations import Operation
from flows.queries.withdrawals import Withdrawal

__all__ = ["latest_operation", "latest_payment_hash", "withdrawal_of_claim"]

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

# The withdrawal a request committed before its reply was lost: the first one of the user with
# the same amount and destination created since the request claimed its Idempotency-Key (the
# fingerprint guarantees the same body). The domain picks withdrawal ids itself, so the id
# cannot be derived from the key as top-up ids are.
WITHDRAWAL_OF_CLAIM: Final[LiteralString] = """
SELECT w.* FROM withdrawals AS w
JOIN idempotency_keys AS k ON k.namespace = $1 AND k.key = $2
WHERE w.marketplace_id = $3 AND w.user_id = $4 AND w.amount_minor = $5
    AND w.destination_type = $6 AND ($7::text IS NULL OR w.destination_ref = $7)
    AND w.created_at >= k.created_at
ORDER BY w.created_at, w.id
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


async def withdrawal_of_claim(
    conn: asyncpg.Connection,
    *,
    namespace: str,
    idempotency_key: str,
    marketplace_id: str,
    user_id: str,
    amount_minor: int,
    destination_type: str,
    destination_ref: str | None,
) -> Withdrawal | None:
    """The withdrawal committed under an idempotency claim whose reply was lost, or ``None``."""
    row = await conn.fetchrow(
        WITHDRAWAL_OF_CLAIM,
        namespace,
        idempotency_key,
        marketplace_id,
        user_id,
        amount_minor,
        destination_type,
        destination_ref,
    )
    return None if row is None else msgspec.convert(dict(row), type=Withdrawal)
