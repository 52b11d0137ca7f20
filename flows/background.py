"""One background loop for the workers of an API process (operations, deposits, provider events).

Each worker has a pass that does what is due and says whether it found work. The loop runs the
pass again at once while it finds work, otherwise after ``poll_s`` or as soon as it is woken.
A pass that raises (a database outage, a bug) is logged and the loop goes on: the process keeps
serving, and the work is still in the database for the next pass.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ["BackgroundLoop"]

_log = logging.getLogger(__name__)


class BackgroundLoop:
    """Runs ``one_pass`` in a task until stopped; ``one_pass`` returns True when it found work."""

    def __init__(self, name: str, one_pass: Callable[[], Awaitable[bool]], poll_s: float) -> None:
        self._name = name
        self._one_pass = one_pass
        self._poll_s = poll_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self._name)

    def wake(self) -> None:
        """Run a pass now instead of at the end of the wait."""
        self._wake.set()

    async def stop(self) -> None:
        """Cancel the loop and wait for it; an interrupted pass is redone from the database."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                busy = await self._one_pass()
            except Exception:
                # A database outage or a bug: keep the process serving; try again later.
                _log.exception("%s: pass failed", self._name)
                busy = False
            if busy:
                continue
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # lands as the wait ends, and the loop would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_s):
                    await self._wake.wait()
            self._wake.clear()
