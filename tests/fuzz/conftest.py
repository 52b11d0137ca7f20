"""Fixtures of the fuzz tests: one seeded marketplace on a served app, per module.

Fuzzing needs data to reach past the 404s, and seeding it (wallets activated, orders escrowed on
the sandbox) takes seconds, so each module shares one fresh database and one server.
"""

from collections.abc import AsyncIterator

import pytest

from tests.conftest import cloned_database
from tests.fuzz.support import Seeded, served_market


@pytest.fixture(scope="module")
async def fuzz_dsn(server_dsn: str, template_database: str) -> AsyncIterator[str]:
    """A fresh database cloned from the template for the module, dropped afterwards."""
    async with cloned_database(server_dsn, template_database, "fuzz_") as dsn:
        yield dsn


@pytest.fixture(scope="module")
async def seeded(fuzz_dsn: str) -> AsyncIterator[Seeded]:
    """The app served on the module's database, one marketplace seeded with one of everything."""
    async with served_market(fuzz_dsn) as market:
        yield market
