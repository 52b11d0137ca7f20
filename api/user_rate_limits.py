"""Per-user creation limits (api.md 1.10): ``POST /topups`` 10 and ``POST /withdrawals`` 5 per
minute and user, configurable.

They count the rows the user created in the last 60 seconds, inside the creating transaction,
so the limit holds across every API process and only real creations count: a replay, a
takeover or a refused request does not use up the user's allowance. Writers of one user and
kind queue on a transaction-scoped advisory lock, so concurrent requests cannot all see room
for one more. A 429 is not stored under the Idempotency-Key (api.md 1.8), so the same request
may be retried once the window has room.
"""

import math
from typing import Final, Literal, LiteralString

import asyncpg

from api.errors import RateLimited

__all__ = ["WINDOW_S", "check_user_rate"]

WINDOW_S: Final = 60

Kind = Literal["topups", "withdrawals"]

# Creations of the user within the window: how many, and when the oldest one leaves it.
_RECENT: Final[dict[Kind, LiteralString]] = {
    "topups": """
        SELECT count(*) AS made,
               extract(epoch FROM min(created_at) + make_interval(secs => $3) - now()) AS free_in
        FROM topups
        WHERE marketplace_id = $1 AND user_id = $2
            AND created_at > now() - make_interval(secs => $3)
    """,
    "withdrawals": """
        SELECT count(*) AS made,
               extract(epoch FROM min(created_at) + make_interval(secs => $3) - now()) AS free_in
        FROM withdrawals
        WHERE marketplace_id = $1 AND user_id = $2
            AND created_at > now() - make_interval(secs => $3)
    """,
}

_LOCK: Final[LiteralString] = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"


async def check_user_rate(
    conn: asyncpg.Connection,
    *,
    kind: Kind,
    marketplace_id: str,
    user_id: str,
    per_minute: int,
) -> None:
    """Refuse one more ``kind`` creation for the user when the last minute holds ``per_minute``.

    Call it inside the creating transaction, right before the insert. ``per_minute`` 0 turns
    the limit off.

    Raises:
        RateLimited: 429 ``RATE_LIMITED`` with ``Retry-After`` = seconds until the oldest
            creation of the window leaves it.
    """
    if per_minute <= 0:
        return
    await conn.execute(_LOCK, f"user-rate:{kind}:{marketplace_id}:{user_id}")
    row = await conn.fetchrow(_RECENT[kind], marketplace_id, user_id, float(WINDOW_S))
    assert row is not None
    if row["made"] < per_minute:
        return
    free_in = float(row["free_in"] or 0)
    raise RateLimited(
        limit=per_minute, window_seconds=WINDOW_S, retry_after=max(1, math.ceil(free_in))
    )
