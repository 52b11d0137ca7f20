"""Group commit: concurrent transactions of one tenant share one database transaction and commit.

Every request that writes (an idempotency claim, an order with its reservation, a balance
adjustment) would otherwise pay one COMMIT, that is one WAL flush, and hold its rows' locks
through it. :class:`GroupCommitter` queues the transactions submitted for one key (the tenant)
and runs whatever has queued while the previous group was running as the next group: one
``BEGIN``, each member inside a savepoint of its own, one ``COMMIT``. Under no load a group has
one member and costs what a plain transaction costs; under load the commit and its flush are
shared by up to ``max_group`` members.

The guarantees of a transaction per request are kept:

- **Atomic per member.** A member's writes are inside its savepoint; one that raises is rolled
  back to it alone and gets its error, the others go on. All members commit together or not at
  all, and a member's caller hears back only after the COMMIT did (or did not) happen.
- **No lost or doubled member.** When the COMMIT is refused (a deferred check, a deadlock), the
  group is rolled back and every member that had succeeded runs again in a transaction of its
  own, so each gets the answer it would have had alone. When the connection breaks, the outcome
  is unknown: the members fail with the error, as a lone transaction would, and the caller's
  retry (same Idempotency-Key) finds out what happened.
- **Serial order per tenant.** At most one group per key runs at a time, so two groups of one
  tenant never wait on each other's locks; groups of different tenants touch different rows.
  A member that waits on a lock longer than ``lock_timeout_ms`` (held by a transaction outside
  the group) is rolled back and retried alone after the group, so it cannot stall the others.
- **Same context.** Each member runs in a task created in its caller's ``contextvars`` context,
  so request-scoped state (the audit context, the request id) is the caller's.

Members must follow :func:`ledger.db.run_in_transaction`'s rule: they touch nothing but the
database (they may run again), and they do not change session state (``SET`` without
``LOCAL``) or wait for anything outside the database.
"""

import asyncio
import contextlib
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar, cast

import asyncpg

from common.errors import ConcurrentUpdate
from common.metrics import GROUP_COMMIT_FALLBACKS, GROUP_COMMIT_SIZE
from ledger.db import run_in_transaction

__all__ = ["GroupCommitter"]

logger = logging.getLogger("offerhub.ledger.group_commit")

T = TypeVar("T")
Work = Callable[[asyncpg.Connection], Awaitable[T]]

# A member that raises one of these is not wrong, only unlucky: it runs again, alone.
_RETRY_ALONE: Final = (
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.LockNotAvailableError,
    ConcurrentUpdate,
)

_SET_LOCK_TIMEOUT: Final = "SELECT set_config('lock_timeout', $1, true)"


@dataclass(eq=False)
class _Member(Generic[T]):
    work: Work[T]
    context: contextvars.Context
    future: asyncio.Future[T]
    result: Any = None
    error: BaseException | None = None


class GroupCommitter:
    """Runs transactions submitted under one key in shared transactions, one group at a time.

    Args:
        pool: Where the groups' connections come from.
        max_group: The most members one transaction takes; the rest wait for the next group.
        lock_timeout_ms: How long a member may wait for a lock held outside its group before it
            is set aside and retried alone.
    """

    def __init__(
        self, pool: asyncpg.Pool, *, max_group: int = 64, lock_timeout_ms: int = 250
    ) -> None:
        assert max_group >= 1
        assert lock_timeout_ms >= 1
        self._pool = pool
        self._max_group = max_group
        self._lock_timeout = f"{lock_timeout_ms}ms"
        self._queues: dict[str, deque[_Member[Any]]] = {}
        self._drainers: dict[str, asyncio.Task[None]] = {}

    async def run(self, key: str, work: Work[T]) -> T:
        """Run ``work(conn)`` in a transaction shared with other work queued under ``key``.

        Returns when the transaction that holds ``work``'s writes has committed; raises what
        ``work`` raised (nothing of it was written), or the database error that stopped it.
        """
        member: _Member[T] = _Member(
            work, contextvars.copy_context(), asyncio.get_running_loop().create_future()
        )
        self._queues.setdefault(key, deque()).append(member)
        if key not in self._drainers:
            self._drainers[key] = asyncio.create_task(self._drain(key))
        return await asyncio.shield(member.future)

    async def close(self) -> None:
        """Wait until every queued member has been run (for shutdown, before the pool closes)."""
        while self._drainers:
            await asyncio.gather(*self._drainers.values(), return_exceptions=True)

    async def _drain(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                group = [queue.popleft() for _ in range(min(len(queue), self._max_group))]
                GROUP_COMMIT_SIZE.observe(len(group))
                try:
                    await self._run_group(group)
                except BaseException as error:  # every member must hear back
                    for member in group:
                        _settle(member, error=error)
                    if not isinstance(error, Exception):
                        raise
        finally:
            del self._drainers[key]
            # Empty unless cancelled with members waiting: those fail rather than hang.
            for member in self._queues.pop(key):
                _settle(member, error=asyncio.CancelledError())

    async def _run_group(self, group: list[_Member[Any]]) -> None:
        if len(group) == 1:
            await self._run_alone(group[0])
            return
        committed = await self._run_together(group)
        # Refused at commit: each member's answer alone may differ from its answer in the group
        # (an earlier member's writes are gone), so all of them run again, alone.
        alone = [
            member for member in group if not committed or isinstance(member.error, _RETRY_ALONE)
        ]
        if alone:
            GROUP_COMMIT_FALLBACKS.inc(len(alone))
            await asyncio.gather(*(self._run_alone(member) for member in alone))
        for member in group:
            if member not in alone:
                _settle(member, result=member.result, error=member.error)

    async def _run_alone(self, member: _Member[Any]) -> None:
        try:
            result = await run_in_transaction(self._pool, _in_context(member))
        except Exception as error:  # handed to the member's caller
            _settle(member, error=error)
        else:
            _settle(member, result=result)

    async def _run_together(self, group: list[_Member[Any]]) -> bool:
        """Run the members in one transaction; True if it committed, False if it was refused.

        A broken connection is raised (the outcome of a COMMIT in flight is unknown).
        """
        async with self._pool.acquire() as proxy:
            conn = cast(asyncpg.Connection, proxy)
            transaction = conn.transaction()
            await transaction.start()
            try:
                await conn.execute(_SET_LOCK_TIMEOUT, self._lock_timeout)
                for member in group:
                    await _run_member(conn, member)
                # Commit-time checks (deferred triggers) wait for locks like any other statement.
                await conn.execute(_SET_LOCK_TIMEOUT, "0")
            except BaseException:
                with contextlib.suppress(Exception):
                    await transaction.rollback()
                raise
            try:
                await transaction.commit()
            except asyncpg.PostgresError:
                # Refused: nothing of the group is written (PostgreSQL rolled it back).
                logger.info("a group of %d was refused at commit; members run alone", len(group))
                return False
            return True


async def _run_member(conn: asyncpg.Connection, member: _Member[Any]) -> None:
    """Run one member in a savepoint; its error (if any) rolls back only its own writes."""
    try:
        async with conn.transaction():
            member.result = await _in_context(member)(conn)
    except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError):
        raise  # the connection is gone: the whole group's outcome is the connection's
    except Exception as error:  # the caller's, after the commit
        member.error = error


def _in_context(member: _Member[T]) -> Work[T]:
    """``member.work`` run as a task in its caller's context."""

    async def contextual(conn: asyncpg.Connection) -> T:
        async def call() -> T:
            return await member.work(conn)

        return await asyncio.create_task(call(), context=member.context.copy())

    return contextual


def _settle(
    member: _Member[Any], *, result: Any = None, error: BaseException | None = None
) -> None:
    if member.future.done():
        return
    if error is not None:
        member.future.set_exception(error)
    else:
        member.future.set_result(result)
