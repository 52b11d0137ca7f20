"""Fixtures of the API tests: the running app on a fresh database."""

from collections.abc import AsyncIterator

import pytest

from tests.api.support import Api, running_api


@pytest.fixture
async def api(db_dsn: str) -> AsyncIterator[Api]:
    """The app with the test routes, its lifespan entered, and a client."""
    async with running_api(db_dsn) as running:
        yield running
