"""AIRTM_PAYOUT on the whole sandbox: one payout per withdrawal code, committed at most once.

Happy paths (commit=false ends CREATED; commit=true commits, polls and ends on Airtm's final
status), Airtm's refusals (balance, recipient, a code owned by another payout), a re-start that
adopts the payout by code, and faults at every step's Airtm call (lost answers, hangs, 5xx, a
worker that dies right after the call): fresh workers always end as a clean run does.
"""

import contextlib
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar, cast

import asyncpg
import httpx
import pytest

from common.ids import new_id
from flows.operation_steps import STEP_REGISTRY
from flows.operations import start_operation
from flows.queries.operations import Operation, OperationKind
from flows.withdrawal_steps import AIRTM_PAYOUT_STEPS, WITHDRAWAL_PAYMENT_STEPS
from providers.airtm.port import FiatProvider, Payout, PayoutCreate, PayoutStatus
from providers.sandbox.airtm_records import PayoutCreateBody, PayoutRecord
from providers.sandbox.app import CONTROL_PREFIX
from providers.sandbox.faults import FaultRules
from tests.db.sandbox_world import USDC, SandboxWorld, SimulatedCrash, make_world

pytestmark = pytest.mark.db

T = TypeVar("T")
REGISTRY = {
    **STEP_REGISTRY,
    OperationKind.WITHDRAWAL_PAYMENT: WITHDRAWAL_PAYMENT_STEPS,
    OperationKind.AIRTM_PAYOUT: AIRTM_PAYOUT_STEPS,
}
EMAIL = "recipient@example.com"
FUNDED = 100 * USDC
AMOUNT = 25 * USDC


async def _world(pool: asyncpg.Pool, *, funded: int = FUNDED) -> SandboxWorld:
    world = await make_world(pool)
    world.registry = REGISTRY
    if funded:
        world.sandbox.airtm.fund(funded)
    world.sandbox.airtm.add_user(EMAIL)
    return world


async def _start(
    world: SandboxWorld,
    *,
    commit: bool,
    withdrawal_id: str | None = None,
    email: str = EMAIL,
    amount: int = AMOUNT,
) -> Operation:
    withdrawal_id = withdrawal_id or new_id("wd_")
    async with world.pool.acquire() as conn, conn.transaction():
        return await start_operation(
            cast(asyncpg.Connection, conn),  # the pool's proxy forwards every method
            world.registry,
            marketplace_id=world.marketplace_id,
            kind=OperationKind.AIRTM_PAYOUT,
            resource_type="withdrawal",
            resource_id=withdrawal_id,
            payload={
                "withdrawal_id": withdrawal_id,
                "email": email,
                "amount_minor": amount,
                "commit": commit,
                "notes": "withdrawal",
            },
        )


def _payouts(world: SandboxWorld, code: str) -> list[PayoutRecord]:
    return [record for record in world.sandbox.airtm.payouts.values() if record.code == code]


def _commits(world: SandboxWorld, payout_id: str) -> int:
    movements = world.sandbox.airtm.movements
    return sum(m.reason == "payout.committed" and m.resource_id == payout_id for m in movements)


async def _push(world: SandboxWorld, payout_id: str, action: str) -> None:
    """Drive the payout at Airtm through the sandbox's control API (complete / fail)."""
    transport = httpx.ASGITransport(app=world.sandbox.asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as http:
        response = await http.post(f"{CONTROL_PREFIX}/airtm/payouts/{payout_id}/{action}")
        assert response.status_code == 200, response.text


async def _settle(world: SandboxWorld, operation_id: str, rounds: int = 12) -> str:
    """Run fresh workers until the operation ends; Airtm completes a payout once it is in flight."""
    for _ in range(rounds):
        await world.make_due(operation_id)
        async with world.worker() as worker:
            await worker.run_once()
        row = await world.operation(operation_id)
        if row["status"] != "RUNNING":
            return str(row["status"])
        payout_id = row["payload"].get("payout_id")
        if payout_id and world.sandbox.airtm.payouts[payout_id].status is PayoutStatus.COMMITTED:
            await _push(world, payout_id, "complete")
    return "RUNNING"


def _snapshot(world: SandboxWorld, row: dict[str, Any]) -> dict[str, Any]:
    """What a payout changes, comparable across worlds (ids aside)."""
    airtm = world.sandbox.airtm
    code = row["payload"]["withdrawal_id"]
    payload = {k: v for k, v in row["payload"].items() if k not in {"payout_id", "withdrawal_id"}}
    records = _payouts(world, code)
    return {
        "status": row["status"],
        "payload": payload,
        "payouts": [(r.status, r.gross_minor, r.held_minor) for r in records],
        "commits": [_commits(world, r.id) for r in records],
        "balance": (airtm.available_minor, airtm.pending_minor),
    }


async def test_commit_false_ends_right_after_creation(pool: asyncpg.Pool) -> None:
    world = await _world(pool)
    operation = await _start(world, commit=False)
    async with world.worker() as worker:
        assert await worker.run_once() == 1
    row = await world.operation(operation.id)
    [record] = _payouts(world, operation.resource_id)
    assert (row["status"], row["step"], row["last_error"]) == ("SUCCEEDED", "await_payout", None)
    assert row["payload"]["payout_id"] == record.id
    assert row["payload"]["payout_status"] == "CREATED"
    assert (record.status, record.gross_minor, record.email) == ("CREATED", AMOUNT, EMAIL)
    assert _commits(world, record.id) == 0
    assert (world.sandbox.airtm.available_minor, world.sandbox.airtm.pending_minor) == (FUNDED, 0)


async def test_commit_true_commits_polls_and_ends_completed(pool: asyncpg.Pool) -> None:
    world = await _world(pool)
    operation = await _start(world, commit=True)
    async with world.worker() as worker:
        await worker.run_once()
    row = await world.operation(operation.id)
    [record] = _payouts(world, operation.resource_id)
    assert (row["status"], row["step"]) == ("RUNNING", "await_payout")
    assert row["last_error"] == {"error": "PayoutPending", "status": "COMMITTED"}
    assert (world.sandbox.airtm.available_minor, world.sandbox.airtm.pending_minor) == (
        FUNDED - AMOUNT,
        AMOUNT,
    )
    # Polling waits its delay: a worker looking right now leaves it alone.
    async with world.worker() as worker:
        assert await worker.run_once() == 0
    await _push(world, record.id, "complete")
    assert await world.run_until_settled(operation.id) == "SUCCEEDED"
    row = await world.operation(operation.id)
    assert row["payload"] == {
        "withdrawal_id": operation.resource_id,
        "email": EMAIL,
        "amount_minor": AMOUNT,
        "commit": True,
        "notes": "withdrawal",
        "payout_id": record.id,
        "payout_status": "COMPLETED",
    }
    assert _commits(world, record.id) == 1
    assert (world.sandbox.airtm.available_minor, world.sandbox.airtm.pending_minor) == (
        FUNDED - AMOUNT,
        0,
    )


async def test_a_payout_airtm_fails_ends_with_its_status_and_reason(pool: asyncpg.Pool) -> None:
    world = await _world(pool)
    operation = await _start(world, commit=True)
    async with world.worker() as worker:
        await worker.run_once()
    payout_id = (await world.operation(operation.id))["payload"]["payout_id"]
    world.sandbox.airtm.payout_fails(payout_id, "ACCOUNT_BLOCKED", "the account is blocked")
    assert await world.run_until_settled(operation.id) == "SUCCEEDED"
    payload = (await world.operation(operation.id))["payload"]
    assert (payload["payout_status"], payload["failure_reason"]) == ("FAILED", "ACCOUNT_BLOCKED")
    assert (world.sandbox.airtm.available_minor, world.sandbox.airtm.pending_minor) == (FUNDED, 0)


async def test_a_pending_payout_is_polled_until_it_is_canceled(pool: asyncpg.Pool) -> None:
    world = await _world(pool)
    # No Airtm account for this email: the committed payout waits for a sign-up (PENDING).
    operation = await _start(world, commit=True, email="newcomer@example.com")
    async with world.worker() as worker:
        await worker.run_once()
    row = await world.operation(operation.id)
    assert (row["status"], row["last_error"]["status"]) == ("RUNNING", "PENDING")
    await world.make_due(operation.id)
    async with world.worker() as worker:
        await worker.run_once()
    assert (await world.operation(operation.id))["attempts"] == 2
    world.sandbox.airtm.cancel_payout(row["payload"]["payout_id"])
    assert await world.run_until_settled(operation.id) == "SUCCEEDED"
    payload = (await world.operation(operation.id))["payload"]
    assert (payload["payout_status"], payload["failure_reason"]) == ("CANCELED", "CANCELED")


async def test_a_restart_with_commit_adopts_the_payout_by_code(pool: asyncpg.Pool) -> None:
    world = await _world(pool)
    created = await _start(world, commit=False)
    assert await world.run_until_settled(created.id) == "SUCCEEDED"
    committed = await _start(world, commit=True, withdrawal_id=created.resource_id)
    assert committed.id != created.id
    assert await _settle(world, committed.id) == "SUCCEEDED"
    first = (await world.operation(created.id))["payload"]
    second = (await world.operation(committed.id))["payload"]
    assert second["payout_id"] == first["payout_id"]
    assert second["payout_status"] == "COMPLETED"
    [record] = _payouts(world, created.resource_id)
    assert _commits(world, record.id) == 1


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("unfunded", "415016"),
        ("inactive_recipient", "415060"),
        ("restricted_recipient", "415061"),
    ],
)
async def test_airtm_refusing_the_payout_fails_the_operation_with_its_code(
    pool: asyncpg.Pool, setup: str, reason: str
) -> None:
    world = await _world(pool, funded=0 if setup == "unfunded" else FUNDED)
    email = EMAIL
    if setup == "inactive_recipient":
        email = "inactive@example.com"
        world.sandbox.airtm.add_user(email, status="inactive")
    elif setup == "restricted_recipient":
        email = "restricted@example.com"
        world.sandbox.airtm.add_user(email, country="CU")
    operation = await _start(world, commit=True, email=email)
    assert await world.run_until_settled(operation.id) == "FAILED"
    row = await world.operation(operation.id)
    assert (row["step"], row["last_error"]["reason"]) == ("create_payout", reason)
    assert row["last_error"]["provider"] == "airtm"
    assert _payouts(world, operation.resource_id) == []


async def test_a_commit_refused_for_balance_fails_the_operation(pool: asyncpg.Pool) -> None:
    world = await _world(pool)
    created = await _start(world, commit=False)
    assert await world.run_until_settled(created.id) == "SUCCEEDED"
    # Another payout takes the balance before this one is committed.
    other = await _start(world, commit=True, amount=FUNDED)
    assert await _settle(world, other.id) == "SUCCEEDED"
    committed = await _start(world, commit=True, withdrawal_id=created.resource_id)
    assert await world.run_until_settled(committed.id) == "FAILED"
    row = await world.operation(committed.id)
    assert (row["step"], row["last_error"]["reason"]) == ("commit_payout", "415016")
    [record] = _payouts(world, created.resource_id)
    assert (record.status, _commits(world, record.id)) == ("CREATED", 0)


async def test_a_code_owned_by_another_payout_is_a_conflict(pool: asyncpg.Pool) -> None:
    world = await _world(pool)
    withdrawal_id = new_id("wd_")
    world.sandbox.airtm.create_payout(
        PayoutCreateBody(code=withdrawal_id, airtm_user_email=EMAIL, amount=Decimal("1.00"))
    )
    operation = await _start(world, commit=True, withdrawal_id=withdrawal_id)
    assert await world.run_until_settled(operation.id) == "FAILED"
    error = (await world.operation(operation.id))["last_error"]
    assert (error["error"], error["reason"]) == ("PayoutCodeConflict", "415056")
    [record] = _payouts(world, withdrawal_id)
    assert (record.gross_minor, _commits(world, record.id)) == (1 * USDC, 0)


# The Airtm call each step makes through the port, and the HTTP route it uses.
STEP_CALLS = {
    "create_payout": ("create_payout", "POST"),
    "commit_payout": ("commit_payout", "POST"),
    "await_payout": ("get_payout", "GET"),
}
FAULTS = ["applied_response_lost", "hang", "status:503", "crash"]


class FaultyFiat:
    """The real client; the first call of one port method meets an injected fault.

    The fault is armed on the sandbox route when the call starts (payout ids are only known
    then); ``crash`` lets the call run and then kills the worker before it sees the answer.
    """

    def __init__(self, inner: FiatProvider, faults: FaultRules, method: str, fault: str) -> None:
        self._inner = inner
        self._faults = faults
        self._method = method
        self._fault = fault
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def create_payout(self, request: PayoutCreate, *, commit: bool) -> Payout:
        return await self._call(
            "create_payout", "/payouts", lambda: self._inner.create_payout(request, commit=commit)
        )

    async def commit_payout(self, payout_id: str) -> Payout:
        route = f"/payouts/{payout_id}/commit"
        return await self._call(
            "commit_payout", route, lambda: self._inner.commit_payout(payout_id)
        )

    async def get_payout(self, payout_id: str) -> Payout:
        route = f"/payouts/{payout_id}"
        return await self._call("get_payout", route, lambda: self._inner.get_payout(payout_id))

    async def _call(self, name: str, route: str, call: Callable[[], Awaitable[T]]) -> T:
        if name != self._method or self.fired:
            return await call()
        self.fired = True
        if self._fault == "crash":
            with contextlib.suppress(Exception):
                await call()
            raise SimulatedCrash(f"died right after {name}")
        http_method = "GET" if name == "get_payout" else "POST"
        self._faults.add("airtm", http_method, route, self._fault)
        return await call()


async def _clean_snapshot(pool: asyncpg.Pool, *, commit: bool) -> dict[str, Any]:
    world = await _world(pool)
    operation = await _start(world, commit=commit)
    assert await _settle(world, operation.id) == "SUCCEEDED"
    return _snapshot(world, await world.operation(operation.id))


CASES = [(step, fault, True) for step in STEP_CALLS for fault in FAULTS] + [
    ("create_payout", fault, False) for fault in FAULTS
]


@pytest.mark.parametrize(("step", "fault", "commit"), CASES)
async def test_a_fault_at_a_step_then_fresh_workers_end_as_a_clean_run(
    pool: asyncpg.Pool, step: str, fault: str, commit: bool
) -> None:
    expected = await _clean_snapshot(pool, commit=commit)
    world = await _world(pool)
    operation = await _start(world, commit=commit)
    wrappers: list[FaultyFiat] = []

    def wrap(fiat: FiatProvider) -> FaultyFiat:
        wrappers.append(FaultyFiat(fiat, world.sandbox.faults, STEP_CALLS[step][0], fault))
        return wrappers[-1]

    async with world.worker(wrap_fiat=wrap) as first:
        if fault == "crash":
            with pytest.raises(SimulatedCrash):
                await first.run_once()
        else:
            await first.run_once()
    assert wrappers[0].fired
    assert not world.sandbox.faults.pending()
    # The first worker is gone; whatever it left, fresh ones settle it.
    assert await _settle(world, operation.id) == "SUCCEEDED"
    row = await world.operation(operation.id)
    assert _snapshot(world, row) == expected
    [record] = _payouts(world, operation.resource_id)  # one payout under the code
    assert row["payload"]["payout_id"] == record.id
    assert _commits(world, record.id) == (1 if commit else 0)
