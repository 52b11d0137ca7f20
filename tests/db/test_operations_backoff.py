"""Retries: exponential backoff with jitter, permanent refusals, and the statements themselves."""

import importlib
import pkgutil
from datetime import timedelta
from types import MappingProxyType

import asyncpg
import pytest

from flows.operations import (
    OperationHooks,
    Step,
    StepDone,
    StepOutcome,
    StepRun,
    WorkerSettings,
    backoff_delay_s,
    start_operation,
)
from flows.queries.operation_submissions import SubmissionStatus
from flows.queries.operations import Operation, OperationKind, OperationStatus
from providers.errors import ProviderRejected, ProviderUnavailable
from tests.db.test_operations_support import (
    Harness,
    make_harness,
)

pytestmark = pytest.mark.db


@pytest.fixture(name="harness")
async def harness_fixture(pool: asyncpg.Pool) -> Harness:
    return await make_harness(pool)


def _registry(outcome: BaseException) -> MappingProxyType[OperationKind, tuple[Step, ...]]:
    async def step(run: StepRun) -> StepOutcome:
        raise outcome

    return MappingProxyType({OperationKind.AIRTM_PAYOUT: (Step("create_payout", step),)})


async def _start(
    harness: Harness, registry: MappingProxyType[OperationKind, tuple[Step, ...]]
) -> str:
    async with harness.pool.acquire() as conn:
        operation = await start_operation(
            conn,
            registry,
            marketplace_id=harness.marketplace_id,
            kind=OperationKind.AIRTM_PAYOUT,
            resource_type="withdrawal",
            resource_id="wdr_1",
            payload={},
        )
    return operation.id


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    settings = WorkerSettings(backoff_base_s=2.0, backoff_max_s=60.0)
    for attempts, cap in [(1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0), (6, 60.0), (30, 60.0)]:
        delays = {backoff_delay_s(attempts, settings) for _ in range(50)}
        assert all(cap / 2 <= d <= cap for d in delays)
        assert len(delays) > 1  # jittered
    assert backoff_delay_s(1, settings, retry_after_s=30.0) == 30.0


async def test_unavailable_provider_schedules_the_next_attempt_in_the_future(
    harness: Harness,
) -> None:
    unavailable = ProviderUnavailable("down", provider="airtm", status_code=503, reason="server")
    registry = _registry(unavailable)
    operation_id = await _start(harness, registry)
    settings = WorkerSettings(backoff_base_s=10.0, backoff_max_s=1000.0)
    delays = []
    for attempt in (1, 2, 3):
        async with harness.worker(registry=registry, settings=settings) as worker:
            assert await worker.run_once() == 1
        row = await harness.operation(operation_id)
        assert row["status"] == "RUNNING"
        assert row["attempts"] == attempt
        assert row["last_error"]["reason"] == "server"
        assert row["last_error"]["status"] == 503
        delay = row["next_attempt_at"] - row["updated_at"]
        assert delay > timedelta(0)
        delays.append(delay.total_seconds())
        async with harness.worker(registry=registry) as worker:
            assert await worker.run_once() == 0  # not due yet
        await harness.make_due(operation_id)
    assert 5 <= delays[0] <= 10
    assert 10 <= delays[1] <= 20
    assert 20 <= delays[2] <= 40


async def test_a_provider_refusal_fails_the_operation_with_its_reason(harness: Harness) -> None:
    refused = ProviderRejected("no", provider="airtm", status_code=400, reason="415016")
    registry = _registry(refused)
    operation_id = await _start(harness, registry)
    async with harness.worker(registry=registry) as worker:
        await worker.run_once()
    row = await harness.operation(operation_id)
    assert row["status"] == "FAILED"
    assert (row["last_error"]["provider"], row["last_error"]["reason"]) == ("airtm", "415016")


async def test_an_unexpected_error_retries_instead_of_losing_the_operation(
    harness: Harness,
) -> None:
    registry = _registry(RuntimeError("bug"))
    operation_id = await _start(harness, registry)
    async with harness.worker(registry=registry) as worker:
        await worker.run_once()
    row = await harness.operation(operation_id)
    assert row["status"] == "RUNNING"
    assert row["last_error"]["error"] == "RuntimeError"


async def test_a_raising_end_hook_parks_the_operation_until_it_can_end(
    harness: Harness,
) -> None:
    async def step(run: StepRun) -> StepOutcome:
        return StepDone()

    registry = MappingProxyType({OperationKind.AIRTM_PAYOUT: (Step("create_payout", step),)})
    calls: list[str] = []

    async def on_succeeded(conn: asyncpg.Connection, ended: Operation) -> None:
        calls.append(ended.status)
        if len(calls) == 1:
            raise RuntimeError("posting refused")

    hooks = {OperationKind.AIRTM_PAYOUT: OperationHooks(on_succeeded=on_succeeded)}
    operation_id = await _start(harness, registry)
    async with harness.worker(registry=registry, hooks=hooks) as worker:
        await worker.run_once()
        parked = await harness.operation(operation_id)
        assert (parked["status"], parked["attempts"]) == ("RUNNING", 1)
        assert parked["last_error"]["error"] == "RuntimeError"
        assert parked["last_error"]["phase"] == "record"
        assert parked["next_attempt_at"] > parked["updated_at"]
        assert await worker.run_once() == 0  # backing off, not re-run at once
        await harness.make_due(operation_id)
        await worker.run_once()
    assert (await harness.operation(operation_id))["status"] == "SUCCEEDED"
    assert calls == ["SUCCEEDED", "SUCCEEDED"]


async def test_a_step_missing_from_the_registry_fails_the_operation(harness: Harness) -> None:
    operation_id = await _start(harness, _registry(RuntimeError("unused")))
    async with harness.worker(registry=MappingProxyType({})) as worker:
        await worker.run_once()
    row = await harness.operation(operation_id)
    assert (row["status"], row["last_error"]["error"]) == ("FAILED", "UnknownStep")


def _is_sql(text: str) -> bool:
    first = text.split(None, 1)[0].upper() if text.strip() else ""
    return first in {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"}


async def test_every_statement_prepares_against_the_schema(pool: asyncpg.Pool) -> None:
    """Every SQL constant of every ``flows.queries`` module parses and plans against schema.sql."""
    import flows.queries  # noqa: PLC0415 - the package is walked, not used

    names = [info.name for info in pkgutil.iter_modules(flows.queries.__path__)]
    assert {"operations", "operation_submissions", "wallets"} <= set(names)
    async with pool.acquire() as conn:
        for name in names:
            module = importlib.import_module(f"flows.queries.{name}")
            statements = [
                value
                for constant, value in vars(module).items()
                if constant.isupper() and isinstance(value, str) and _is_sql(value)
            ]
            assert statements, f"flows.queries.{name} has no statements"
            for statement in statements:
                await conn.prepare(statement)


@pytest.mark.parametrize(
    ("enum", "pg_type"),
    [
        (OperationKind, "operation_kind"),
        (OperationStatus, "operation_status"),
        (SubmissionStatus, "operation_submission_status"),
    ],
)
async def test_python_enums_equal_the_pg_enums(
    pool: asyncpg.Pool, enum: type[OperationKind], pg_type: str
) -> None:
    async with pool.acquire() as conn:
        labels = await conn.fetch(
            "SELECT enumlabel FROM pg_enum WHERE enumtypid = $1::regtype ORDER BY enumsortorder",
            pg_type,
        )
    assert [row["enumlabel"] for row in labels] == [member.value for member in enum]
