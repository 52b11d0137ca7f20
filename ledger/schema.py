"""The schema: ``schema.sql`` applied whole and idempotently, guarded by its recorded version."""

import hashlib
from importlib import resources
from typing import Final

import asyncpg

__all__ = ["SCHEMA_SQL", "SCHEMA_VERSION", "SchemaMismatch", "migrate"]

SCHEMA_SQL: Final = resources.files("ledger").joinpath("schema.sql").read_text(encoding="utf-8")
SCHEMA_VERSION: Final = hashlib.sha256(SCHEMA_SQL.encode()).hexdigest()[:16]

# Serialises concurrent `migrate` calls (several server processes starting at once).
_MIGRATE_LOCK_KEY: Final = 0x0FFE_4B0B


class SchemaMismatch(RuntimeError):
    """The database holds a schema version this build does not know."""


async def migrate(conn: asyncpg.Connection) -> bool:
    """Apply ``schema.sql`` if the database is empty; do nothing if it is already current.

    Returns:
        True when the schema was applied now, False when it was already there.

    Raises:
        SchemaMismatch: The database carries another schema version (refuse to start on it).
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATE_LOCK_KEY)
        exists = await conn.fetchval("SELECT to_regclass('offerhub_schema') IS NOT NULL")
        if exists:
            version = await conn.fetchval("SELECT version FROM offerhub_schema")
            if version != SCHEMA_VERSION:
                raise SchemaMismatch(
                    f"database schema {version} is not this build's {SCHEMA_VERSION}"
                )
            return False
        await conn.execute(SCHEMA_SQL)
        await conn.execute("INSERT INTO offerhub_schema (version) VALUES ($1)", SCHEMA_VERSION)
        return True
