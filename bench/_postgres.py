"""The PostgreSQL a database benchmark measures on: ``DATABASE_URL``, or a throwaway server.

Without ``DATABASE_URL``, a server is started from the embedded binaries in a temporary folder
(durable or not, as the benchmark asks), stopped afterwards and its folder removed: a cluster
left behind by every run adds up.
"""

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger.local_postgres import LocalPostgres

__all__ = ["bench_database"]


@contextlib.contextmanager
def bench_database(*, durable: bool, prefix: str = "offerhub-bench-") -> Iterator[str]:
    """A libpq URL of the server to measure on, for the duration of the block."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    server = LocalPostgres.in_temporary_folder(prefix, durable=durable)
    dsn = server.start()
    try:
        yield dsn
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)
