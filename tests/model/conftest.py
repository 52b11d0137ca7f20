"""Fixtures of the model-based test: the app and the sandbox served on real sockets."""

import logging
from collections.abc import Iterator

import pytest

from tests.model.server import LiveServer


@pytest.fixture
def live_server(db_dsn: str) -> Iterator[LiveServer]:
    """The app on the test's fresh database and the sandbox, each on a loopback port."""
    # Every provider call logs a line at INFO; thousands per run would bury a failure.
    quiet = logging.getLogger("httpx")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    server = LiveServer(db_dsn)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        quiet.setLevel(level)
