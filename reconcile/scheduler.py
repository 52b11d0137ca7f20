"""Runs in the background of a server process: on a schedule, and on demand without blocking.

:class:`Reconciler` is owned by the API lifespan. ``start_schedule(interval_s)`` runs one
SCHEDULE run per marketplace every ``interval_s`` seconds (the first after one interval); a
marketplace whose run is still going (here or in another process) is skipped for that round.
:meth:`Reconciler.launch` executes a started run as a task, so a request can wait a bounded
time for it and answer 202 while it goes on.
"""

import asyncio
import contextlib
import logging
from typing import Final, cast

import asyncpg

from common.errors import ReconciliationAlreadyRunning
from reconcile.gather import ChainReader
from reconcile.runner import RunSettings, execute_run, start_run
from reconcile.store import RunRow

__all__ = ["Reconciler"]

_log = logging.getLogger(__name__)

MARKETPLACES: Final = "SELECT id FROM marketplaces ORDER BY id"


class Reconciler:
    """The process's reconciliation runs: scheduled ones and launched ones."""

    def __init__(
        self, pool: asyncpg.Pool, reader: ChainReader, settings: RunSettings | None = None
    ) -> None:
        self.pool = pool
        self.reader = reader
        self.settings = settings or RunSettings()
        self._tasks: set[asyncio.Task[RunRow]] = set()
        self._schedule: asyncio.Task[None] | None = None

    def launch(self, run: RunRow) -> asyncio.Task[RunRow]:
        """Execute a started run in a task the reconciler keeps until it ends."""
        task = asyncio.create_task(
            execute_run(self.pool, self.reader, run, self.settings), name=f"reconcile-{run.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run_all(self, trigger: str = "SCHEDULE") -> list[RunRow]:
        """One run per marketplace, one after the other; running ones are skipped."""
        async with self.pool.acquire() as proxy:
            marketplaces = await cast(asyncpg.Connection, proxy).fetch(MARKETPLACES)
        finished = []
        for row in marketplaces:
            try:
                run = await start_run(self.pool, row["id"], trigger=trigger, settings=self.settings)
            except ReconciliationAlreadyRunning:
                continue
            finished.append(await self.launch(run))
        return finished

    def start_schedule(self, interval_s: float) -> None:
        """Run every marketplace every ``interval_s`` seconds (0 or less: never)."""
        if interval_s > 0 and self._schedule is None:
            self._schedule = asyncio.create_task(self._loop(interval_s), name="reconcile-schedule")

    async def _loop(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.run_all()
            except Exception:
                # A database outage: try again next round; runs report their own failures.
                _log.exception("scheduled reconciliation failed")

    async def stop(self) -> None:
        """Stop the schedule and wait for launched runs (they close their rows themselves)."""
        if self._schedule is not None:
            self._schedule.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._schedule
            self._schedule = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
