"""Fixtures of the fuzz tests: one seeded marketplace on a served app, per module.

Fuzzing needs data to reach past the 404s, and seeding it (wallets activated, orders escrowed on
the sandbox) takes seconds, so each module shares one fresh database and one server.
"""

import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.fuzz.support import Seeded, served_market


def _with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + database))


@pytest.fixture(scope="module")
async def fuzz_dsn(server_dsn: str, template_database: str) -> AsyncIterator[str]:
    """A fresh database cloned from the template for the module, dropped afterwards."""
    name = "fuzz_" + secrets.token_hex(8)
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(
            f"CREATE DATABASE {name} TEMPLATE {template_database} STRATEGY FILE_COPY"
        )
        yield _with_database(server_dsn, name)
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture(scope="module")
async def seeded(fuzz_dsn: str) -> AsyncIterator[Seeded]:
    """The app served on the module's database, one marketplace seeded with one of everything."""
    async with served_market(fuzz_dsn) as market:
        yield market
