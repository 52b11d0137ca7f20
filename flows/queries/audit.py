"""Statements of the audit log: stage an entry, read the chain in order, list and filter.

Summaries are read as ``summary::text`` and decoded here with msgspec, so a connection without
the pool's jsonb codec (the CLI's) reads exactly what a pooled one reads.
"""

from datetime import datetime
from typing import Any, Final, LiteralString

import asyncpg
import msgspec

__all__ = [
    "AuditFilters",
    "AuditRow",
    "ChainHead",
    "chain_batch",
    "chain_head",
    "hash_at",
    "insert_pending",
    "list_entries",
    "marketplaces_with_chains",
]


class AuditRow(msgspec.Struct, frozen=True, kw_only=True):
    """An ``audit_log`` row (``summary`` decoded)."""

    marketplace_id: str
    chain_index: int
    id: str
    occurred_at: datetime
    actor_type: str
    actor_id: str | None
    action: str
    resource_type: str
    resource_id: str
    request_id: str | None
    summary: dict[str, Any]
    prev_hash: str
    hash: str

    @property
    def created_at(self) -> datetime:
        """The keyset time of list pages (``api.pagination``)."""
        return self.occurred_at


class ChainHead(msgspec.Struct, frozen=True, kw_only=True):
    """The last entry of a marketplace's chain, as the commit trigger last wrote it."""

    last_index: int
    last_id: str | None
    last_hash: str
    last_occurred_at: datetime | None


class AuditFilters(msgspec.Struct, frozen=True, kw_only=True):
    """Filters of ``GET /audit/logs`` (api.md 3.11); ``None`` is "any"; all combine with AND."""

    resource_type: str | None = None
    resource_id: str | None = None
    action: str | None = None
    actor_type: str | None = None
    actor_id: str | None = None
    request_id: str | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None


# The commit trigger (audit_chain_append_v1) numbers, stamps and chains the entry.
INSERT_PENDING: Final[LiteralString] = """
INSERT INTO audit_pending (
    marketplace_id, id, actor_type, actor_id, action, resource_type, resource_id, request_id,
    summary, entry_hash
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10)
"""

_COLUMNS: Final = """
SELECT marketplace_id, chain_index, id, occurred_at, actor_type, actor_id, action,
    resource_type, resource_id, request_id, summary::text AS summary, prev_hash, hash
FROM audit_log
"""

CHAIN_BATCH: Final[LiteralString] = (
    _COLUMNS
    + """
WHERE marketplace_id = $1 AND chain_index > $2
    AND ($3::timestamptz IS NULL OR occurred_at >= $3)
    AND ($4::timestamptz IS NULL OR occurred_at < $4)
ORDER BY chain_index
LIMIT $5
"""
)

HASH_AT: Final[LiteralString] = """
SELECT hash FROM audit_log WHERE marketplace_id = $1 AND chain_index = $2
"""

CHAIN_HEAD: Final[LiteralString] = """
SELECT last_index, last_id, last_hash, last_occurred_at
FROM audit_chain_heads WHERE marketplace_id = $1
"""

MARKETPLACES_WITH_CHAINS: Final[LiteralString] = """
SELECT marketplace_id FROM audit_chain_heads
UNION
SELECT DISTINCT marketplace_id FROM audit_log
ORDER BY marketplace_id
"""

LIST_ENTRIES: Final[LiteralString] = (
    _COLUMNS
    + """
WHERE marketplace_id = $1
    AND ($2::text IS NULL OR resource_type = $2)
    AND ($3::text IS NULL OR resource_id = $3)
    AND ($4::text IS NULL OR action = $4)
    AND ($5::text IS NULL OR actor_type = $5)
    AND ($6::text IS NULL OR actor_id = $6)
    AND ($7::text IS NULL OR request_id = $7)
    AND ($8::timestamptz IS NULL OR occurred_at >= $8)
    AND ($9::timestamptz IS NULL OR occurred_at < $9)
    AND ($10::timestamptz IS NULL OR (occurred_at, id) < ($10, $11::text))
ORDER BY occurred_at DESC, id DESC
LIMIT $12
"""
)


def _row(record: asyncpg.Record) -> AuditRow:
    fields = dict(record)
    fields["summary"] = msgspec.json.decode(fields["summary"])
    return msgspec.convert(fields, type=AuditRow)


async def insert_pending(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    entry_id: str,
    actor_type: str,
    actor_id: str | None,
    action: str,
    resource_type: str,
    resource_id: str,
    request_id: str | None,
    summary_json: str,
    entry_hash: str,
) -> None:
    """Stage one entry; it joins the chain when the transaction commits."""
    await conn.execute(
        INSERT_PENDING,
        marketplace_id,
        entry_id,
        actor_type,
        actor_id,
        action,
        resource_type,
        resource_id,
        request_id,
        summary_json,
        entry_hash,
    )


async def chain_batch(
    conn: asyncpg.Connection,
    marketplace_id: str,
    *,
    after_index: int,
    occurred_from: datetime | None,
    occurred_to: datetime | None,
    limit: int,
) -> list[AuditRow]:
    """Up to ``limit`` entries after position ``after_index`` in ``[from, to)``, in chain order."""
    rows = await conn.fetch(
        CHAIN_BATCH, marketplace_id, after_index, occurred_from, occurred_to, limit
    )
    return [_row(row) for row in rows]


async def hash_at(conn: asyncpg.Connection, marketplace_id: str, index: int) -> str | None:
    """The stored ``hash`` of the entry at position ``index``, if it exists."""
    value = await conn.fetchval(HASH_AT, marketplace_id, index)
    return None if value is None else str(value)


async def chain_head(conn: asyncpg.Connection, marketplace_id: str) -> ChainHead | None:
    """The marketplace's chain head; ``None`` before its first entry."""
    row = await conn.fetchrow(CHAIN_HEAD, marketplace_id)
    return None if row is None else msgspec.convert(dict(row), type=ChainHead)


async def marketplaces_with_chains(conn: asyncpg.Connection) -> list[str]:
    """Every marketplace that has a chain head or an entry."""
    return [str(row["marketplace_id"]) for row in await conn.fetch(MARKETPLACES_WITH_CHAINS)]


async def list_entries(
    conn: asyncpg.Connection,
    marketplace_id: str,
    filters: AuditFilters,
    *,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[AuditRow]:
    """A page of entries, newest first (``occurred_at DESC, id DESC``), strictly after ``after``."""
    after_at, after_id = after if after is not None else (None, None)
    rows = await conn.fetch(
        LIST_ENTRIES,
        marketplace_id,
        filters.resource_type,
        filters.resource_id,
        filters.action,
        filters.actor_type,
        filters.actor_id,
        filters.request_id,
        filters.occurred_from,
        filters.occurred_to,
        after_at,
        after_id,
        limit,
    )
    return [_row(row) for row in rows]
