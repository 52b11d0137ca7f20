"""Reconciliation runs and items (api.md 3.13), and the reconciler of the app's lifespan.

``POST /reconciliation/runs`` commits a RUNNING run with the idempotency record (its id is
derived from the marketplace and the Idempotency-Key, so a takeover finds it), then executes it
outside the transaction and waits up to the operation wait: 201 with the finished run, or 202
with the run still RUNNING (it goes on in the background; follow it with GET). A second run
while one is going is 409 ``RECONCILIATION_ALREADY_RUNNING`` with ``details.run_id``. Reads need
``support``; ids of another marketplace answer 404 ``RECONCILIATION_RUN_NOT_FOUND``.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Final

import asyncpg
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody

from api.auth import CurrentCaller, requires
from api.database import read
from api.idempotency import Reply, run_mutation
from api.orders_support import choice_filter, status_filter, time_filter
from api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, page_of, page_request
from api.paths import API_PREFIX
from api.runtime import AppRuntime, get_runtime
from api.schemas.reconciliation import (
    ReconciliationItem,
    ReconciliationRun,
    RunCreate,
    item_out,
    run_out,
)
from api.settings import Settings
from common.errors import ProviderUnavailableError, ReconciliationRunNotFound
from common.ids import derived_id
from flows.audit import record_audit
from reconcile import (
    KINDS,
    SOURCES,
    STATUSES,
    Reconciler,
    RunRow,
    RunSettings,
    chain_reader,
    get_run,
    latest_run,
    list_items,
    list_runs,
)
from reconcile import store as run_store

__all__ = [
    "RECONCILIATION_ROUTES",
    "create_run",
    "get_latest_run",
    "get_one_run",
    "list_all_runs",
    "list_run_items",
    "reconciler",
    "run_settings",
]

_RUNS: Final = "/reconciliation/runs"
_RUN_STATUSES: Final = ("RUNNING", "COMPLETED", "FAILED")
_TRIGGERS: Final = ("SCHEDULE", "MANUAL")
_NOT_MATCHED: Final[list[str]] = [status for status in STATUSES if status != "MATCHED"]
_TAGS: Final = ["reconciliation"]


def run_settings(settings: Settings) -> RunSettings:
    """The run settings of the installation."""
    return RunSettings(
        clearing_max_age_s=settings.reconcile_clearing_max_age_s,
        operation_max_age_s=settings.reconcile_operation_max_age_s,
    )


@contextlib.asynccontextmanager
async def reconciler(
    pool: asyncpg.Pool, runtime: AppRuntime, settings: Settings
) -> AsyncIterator[Reconciler]:
    """The lifespan's reconciler: reads through the runtime's clients, scheduled if enabled."""
    owned = Reconciler(pool, chain_reader(runtime.deps), run_settings(settings))
    owned.start_schedule(settings.reconcile_interval_s)
    try:
        yield owned
    finally:
        await owned.stop()


def _reconciler_of(request: Request[Any, Any, Any]) -> Reconciler:
    found = getattr(request.app.state, "reconciler", None)
    if found is None:
        raise ProviderUnavailableError("reconciliation needs the providers, none are configured")
    assert isinstance(found, Reconciler)
    return found


def _location(run_id: str) -> str:
    return f"{API_PREFIX}{_RUNS}/{run_id}"


@post(_RUNS, guards=[requires("admin")], status_code=201, tags=_TAGS)
async def create_run(
    request: Request[Any, Any, Any], caller: CurrentCaller, data: JSONBody[RunCreate | None] = None
) -> Response[ReconciliationRun]:
    """Run a reconciliation now: 201 when it finished within the wait, 202 while it runs."""
    owner = _reconciler_of(request)
    wait_s = get_runtime(request).wait_s
    wanted = set(SOURCES if data is None or data.sources is None else data.sources)
    sources: list[str] = [source for source in SOURCES if source in wanted]
    run_id = derived_id(
        "rcn_", caller.tenant, "POST /reconciliation/runs", request.headers["idempotency-key"]
    )

    async def work(conn: asyncpg.Connection) -> RunRow:
        await run_store.abandon_stale_runs(conn, caller.tenant, owner.settings.stale_run_s)
        run = await run_store.insert_run(
            conn, caller.tenant, trigger="MANUAL", sources=sources, run_id=run_id
        )
        actor = caller.actor
        await record_audit(
            conn,
            marketplace_id=caller.tenant,
            actor_type=actor.type,
            actor_id=actor.id,
            action="RECONCILIATION_REQUESTED",
            resource_type="reconciliation_run",
            resource_id=run.id,
            after={"status": run.status, "sources": sources},
            request_id=actor.request_id,
        )
        return run

    async def recover(conn: asyncpg.Connection) -> RunRow:
        found = await get_run(conn, caller.tenant, run_id)
        assert found is not None, "a committed run vanished"
        return found

    async def finish(run: RunRow) -> Reply:
        if run.status == "RUNNING":
            task = owner.launch(run)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    run = await asyncio.shield(task)
        status = 202 if run.status == "RUNNING" else 201
        return Reply(run_out(run), status_code=status, location=_location(run.id))

    return await run_mutation(request, caller, work, finish=finish, recover=recover)


@get(_RUNS, guards=[requires("support")], tags=_TAGS)
async def list_all_runs(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    *,
    status: FromQuery[str | None] = None,
    trigger: FromQuery[str | None] = None,
    created_after: FromQuery[str | None] = None,
    created_before: FromQuery[str | None] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[ReconciliationRun]:
    """Runs, newest first; filters combine with AND."""
    statuses = status_filter("status", status, _RUN_STATUSES)
    chosen_trigger = choice_filter("trigger", trigger, _TRIGGERS)
    after = time_filter("created_after", created_after)
    before = time_filter("created_before", created_before)
    filters = {
        "status": statuses,
        "trigger": chosen_trigger,
        "created_after": None if after is None else after.isoformat(),
        "created_before": None if before is None else before.isoformat(),
    }
    position = page_request(request, limit=limit, cursor=cursor, filters=filters)

    async def fetch(conn: asyncpg.Connection) -> Page[ReconciliationRun]:
        rows = await list_runs(
            conn,
            caller.tenant,
            statuses=statuses,
            trigger=chosen_trigger,
            created_after=after,
            created_before=before,
            after=position.after,
            limit=position.fetch_limit,
        )
        return page_of(position, rows, run_out)

    return await read(request, fetch)


@get(f"{_RUNS}/latest", guards=[requires("support")], tags=_TAGS)
async def get_latest_run(
    request: Request[Any, Any, Any], caller: CurrentCaller
) -> ReconciliationRun:
    """The most recent run, running or not."""

    async def fetch(conn: asyncpg.Connection) -> ReconciliationRun:
        row = await latest_run(conn, caller.tenant)
        if row is None:
            raise ReconciliationRunNotFound("no reconciliation run yet")
        return run_out(row)

    return await read(request, fetch)


async def _run_or_404(conn: asyncpg.Connection, marketplace_id: str, run_id: str) -> RunRow:
    row = await get_run(conn, marketplace_id, run_id)
    if row is None:
        raise ReconciliationRunNotFound(run_id=run_id)
    return row


@get(f"{_RUNS}/{{run_id:str}}", guards=[requires("support")], tags=_TAGS)
async def get_one_run(
    request: Request[Any, Any, Any], caller: CurrentCaller, run_id: FromPath[str]
) -> ReconciliationRun:
    """One run."""

    async def fetch(conn: asyncpg.Connection) -> ReconciliationRun:
        return run_out(await _run_or_404(conn, caller.tenant, run_id))

    return await read(request, fetch)


@get(f"{_RUNS}/{{run_id:str}}/items", guards=[requires("support")], tags=_TAGS)
async def list_run_items(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    run_id: FromPath[str],
    *,
    status: FromQuery[str | None] = None,
    kind: FromQuery[str | None] = None,
    source: FromQuery[str | None] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[ReconciliationItem]:
    """A run's items; by default every status but MATCHED."""
    statuses = status_filter("status", status, STATUSES) or _NOT_MATCHED
    chosen_kind = choice_filter("kind", kind, KINDS)
    chosen_source = choice_filter("source", source, SOURCES)
    filters = {"status": statuses, "kind": chosen_kind, "source": chosen_source}
    position = page_request(request, limit=limit, cursor=cursor, filters=filters)

    async def fetch(conn: asyncpg.Connection) -> Page[ReconciliationItem]:
        await _run_or_404(conn, caller.tenant, run_id)
        rows = await list_items(
            conn,
            caller.tenant,
            run_id,
            statuses=statuses,
            kind=chosen_kind,
            source=chosen_source,
            after=position.after,
            limit=position.fetch_limit,
        )
        return page_of(position, rows, item_out)

    return await read(request, fetch)


RECONCILIATION_ROUTES: Final[tuple[HTTPRouteHandler, ...]] = (
    create_run,
    list_all_runs,
    get_latest_run,
    get_one_run,
    list_run_items,
)
