"""Statements of ``users``: marketplace users, each read with its wallet ``{id, public_key}``."""

from datetime import datetime
from typing import Any, Final, LiteralString

import asyncpg
import msgspec

__all__ = [
    "UserPage",
    "UserRecord",
    "UserWallet",
    "get_user",
    "get_user_by_external_id",
    "insert_user",
    "list_users",
    "lock_user",
    "set_airtm_link",
]


class UserWallet(msgspec.Struct, frozen=True, kw_only=True):
    """The wallet reference a user carries (api.md 4, ``User.wallet``)."""

    id: str
    public_key: str


class UserRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A ``users`` row with its wallet, if one was opened."""

    marketplace_id: str
    id: str
    external_user_id: str
    email: str | None
    type: str
    status: str
    airtm_user_id: str | None
    airtm_email: str | None
    airtm_linked_at: datetime | None
    metadata: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    wallet: UserWallet | None = None


class UserPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of users, newest first; ``has_more`` says whether another page follows."""

    users: list[UserRecord]
    has_more: bool


_USER_COLUMNS: Final = """
    u.marketplace_id, u.id, u.external_user_id, u.email, u.type, u.status, u.airtm_user_id,
    u.airtm_email, u.airtm_linked_at, u.metadata, u.created_at, u.updated_at
"""

# A user and its wallet (wallets_user_key: at most one per user).
_SELECT_USER: Final[LiteralString] = (
    "SELECT"
    + _USER_COLUMNS
    + """, w.id AS wallet_id, w.public_key AS wallet_public_key
FROM users AS u
LEFT JOIN wallets AS w ON w.marketplace_id = u.marketplace_id AND w.user_id = u.id
"""
)

# Creates a user unless its external id is taken (users_external_user_id_key): a concurrent
# insert of the same external id waits for the first to commit and then inserts nothing.
INSERT_USER: Final[LiteralString] = (
    """
INSERT INTO users AS u (marketplace_id, id, external_user_id, email, type, metadata)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
ON CONFLICT ON CONSTRAINT users_external_user_id_key DO NOTHING
RETURNING"""
    + _USER_COLUMNS
)

# One user by id (users_pkey).
GET_USER: Final[LiteralString] = _SELECT_USER + "WHERE u.marketplace_id = $1 AND u.id = $2"

# One user by id, row-locked for a change (FOR UPDATE OF: the wallet side is nullable).
LOCK_USER: Final[LiteralString] = GET_USER + "\nFOR UPDATE OF u"

# One user by external id (users_external_user_id_key).
GET_USER_BY_EXTERNAL_ID: Final[LiteralString] = (
    _SELECT_USER + "WHERE u.marketplace_id = $1 AND u.external_user_id = $2"
)

# A page of users, newest first, after the keyset (created_at, id) (users_by_created).
LIST_USERS: Final[LiteralString] = (
    _SELECT_USER
    + """WHERE u.marketplace_id = $1
    AND ($2::text IS NULL OR u.external_user_id = $2)
    AND ($3::text[] IS NULL OR u.type = ANY($3::text[]))
    AND ($4::text[] IS NULL OR u.status = ANY($4::text[]))
    AND ($5::timestamptz IS NULL OR u.created_at >= $5)
    AND ($6::timestamptz IS NULL OR u.created_at < $6)
    AND ($7::timestamptz IS NULL OR (u.created_at, u.id) < ($7, $8::text))
ORDER BY u.created_at DESC, u.id DESC
LIMIT $9
"""
)

# Stores the Airtm link of a locked user.
SET_AIRTM_LINK: Final[LiteralString] = """
UPDATE users
SET airtm_user_id = $3, airtm_email = $4, airtm_linked_at = now(), updated_at = now()
WHERE marketplace_id = $1 AND id = $2
"""


def _user(row: asyncpg.Record | None) -> UserRecord | None:
    if row is None:
        return None
    fields = dict(row)
    wallet_id = fields.pop("wallet_id", None)
    public_key = fields.pop("wallet_public_key", None)
    if wallet_id is not None:
        fields["wallet"] = UserWallet(id=wallet_id, public_key=public_key)
    return msgspec.convert(fields, type=UserRecord)


async def insert_user(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    user_id: str,
    external_user_id: str,
    email: str | None,
    type: str,
    metadata: dict[str, Any] | None,
) -> UserRecord | None:
    """Insert a user; ``None`` when the external id is already taken in the marketplace."""
    row = await conn.fetchrow(
        INSERT_USER, marketplace_id, user_id, external_user_id, email, type, metadata
    )
    return _user(row)


async def get_user(
    conn: asyncpg.Connection, marketplace_id: str, user_id: str
) -> UserRecord | None:
    """One user with its wallet, or ``None``."""
    return _user(await conn.fetchrow(GET_USER, marketplace_id, user_id))


async def lock_user(
    conn: asyncpg.Connection, marketplace_id: str, user_id: str
) -> UserRecord | None:
    """One user, row-locked until the transaction ends, or ``None``."""
    return _user(await conn.fetchrow(LOCK_USER, marketplace_id, user_id))


async def get_user_by_external_id(
    conn: asyncpg.Connection, marketplace_id: str, external_user_id: str
) -> UserRecord | None:
    """The user with this external id, or ``None``."""
    return _user(await conn.fetchrow(GET_USER_BY_EXTERNAL_ID, marketplace_id, external_user_id))


async def list_users(
    conn: asyncpg.Connection,
    marketplace_id: str,
    *,
    external_user_id: str | None = None,
    types: list[str] | None = None,
    statuses: list[str] | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 20,
) -> UserPage:
    """A page of users, newest first (``created_at`` desc, then ``id`` desc).

    ``after`` is the ``(created_at, id)`` of the last user of the previous page;
    ``created_after`` is inclusive and ``created_before`` exclusive (api.md 1.4).
    """
    assert limit >= 1
    after_at, after_id = after if after is not None else (None, None)
    rows = await conn.fetch(
        LIST_USERS,
        marketplace_id,
        external_user_id,
        types,
        statuses,
        created_after,
        created_before,
        after_at,
        after_id,
        limit + 1,
    )
    users = [user for user in map(_user, rows[:limit]) if user is not None]
    return UserPage(users=users, has_more=len(rows) > limit)


async def set_airtm_link(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    user_id: str,
    airtm_user_id: str,
    airtm_email: str,
) -> None:
    """Store the Airtm link of a user the caller has locked."""
    result = await conn.execute(SET_AIRTM_LINK, marketplace_id, user_id, airtm_user_id, airtm_email)
    assert result == "UPDATE 1", result
