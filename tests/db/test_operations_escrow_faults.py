"""Faults at every step of every escrow operation: the chain ends as in a clean run.

For each (kind, step) the fault hits the step's first Trustless Work call that changes the
chain (send-transaction) or, for the read-only step, its escrow read: the answer is lost after
the transaction applied, the call hangs past the client's deadline, TW answers 503, or the
worker process dies right after the call. Fresh workers then finish the operation; the chain
must show the same balances, flags and number of applied transactions per party as a run
without faults, so nothing was sent twice. Each case also checks that its fault did fire (one
worker pass runs every step, so the fault is armed by the call itself, when its step is current).
"""

import contextlib
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest

from flows.queries.operations import OperationKind
from providers.trustless_work.port import Escrow, SendResult, SignedTransaction
from tests.db.escrow_support import AMOUNT, Deal, make_deal
from tests.db.sandbox_world import SimulatedCrash

pytestmark = pytest.mark.db

SEND = ("POST", "/helper/send-transaction")
READ = ("GET", "/helper/get-escrow-by-contract-ids")
SPLIT = {"release_amount_minor": 600_000_000, "refund_amount_minor": 400_000_000}

# kind -> (prerequisite operations, payload, steps with the call their fault hits)
CASES: dict[OperationKind, tuple[tuple[str, ...], dict[str, Any], dict[str, tuple[str, str]]]] = {
    OperationKind.ESCROW_CREATE: ((), {}, {"deploy": SEND, "confirm_deploy": READ}),
    OperationKind.ESCROW_FUND: (("deploy",), {"amount_minor": AMOUNT}, {"fund": SEND}),
    OperationKind.RELEASE: (
        ("deploy", "fund"),
        {"milestone_count": 2},
        {"mark_milestones": SEND, "approve_milestones": SEND, "release_funds": SEND},
    ),
    OperationKind.REFUND: (
        ("deploy", "fund"),
        {},
        {"dispute_escrow": SEND, "resolve_dispute": SEND},
    ),
    OperationKind.DISPUTE_RESOLVE: (
        ("deploy", "fund"),
        SPLIT,
        {"dispute_escrow": SEND, "resolve_dispute": SEND},
    ),
}
FAULTS = ["applied_response_lost", "hang", "status:503", "crash"]
_clean: dict[OperationKind, dict[str, Any]] = {}


class FaultAtStep:
    """Arms the fault at the first matching call made while the operation is at ``step``.

    One worker pass runs every step in a row, so the fault cannot be armed between passes: the
    wrapped client reads the operation's current step (committed before the step runs) at each
    call of the faulted kind, and fires once, on the first call made during ``step``.
    """

    def __init__(self, deal: Deal, operation_id: str, step: tuple[OperationKind, str], fault: str):
        self.deal, self.operation_id, self.fault = deal, operation_id, fault
        kind, self.step = step
        self.call = CASES[kind][2][self.step]
        self.fired = False

    def wrap(self, inner: Any) -> Any:
        """The escrow client the worker uses."""
        return _Faulty(self, inner)

    async def fire_now(self) -> bool:
        """Whether this call is the one to fault (then it counts as fired)."""
        if self.fired:
            return False
        row = await self.deal.world.operation(self.operation_id)
        self.fired = row["step"] == self.step
        if self.fired and self.fault != "crash":
            method, route = self.call
            self.deal.world.sandbox.faults.add("trustless_work", method, route, self.fault)
        return self.fired


class _Faulty:
    def __init__(self, plan: FaultAtStep, inner: Any) -> None:
        self._plan, self._inner = plan, inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def send_transaction(self, transaction: SignedTransaction) -> SendResult:
        plan = self._plan
        if plan.call == SEND and await plan.fire_now() and plan.fault == "crash":
            with contextlib.suppress(Exception):
                await self._inner.send_transaction(transaction)
            raise SimulatedCrash("died right after send-transaction")
        result: SendResult = await self._inner.send_transaction(transaction)
        return result

    async def get_escrows(self, contract_ids: Sequence[str], **options: Any) -> tuple[Escrow, ...]:
        if self._plan.call == READ:
            await self._plan.fire_now()
        escrows: tuple[Escrow, ...] = await self._inner.get_escrows(contract_ids, **options)
        return escrows


async def _prepared(pool: asyncpg.Pool, kind: OperationKind) -> tuple[Deal, dict[str, Any]]:
    prerequisites, payload, _ = CASES[kind]
    deal = await make_deal(pool)
    milestones = payload.get("milestone_count", 1)
    if "deploy" in prerequisites or kind is not OperationKind.ESCROW_CREATE:
        await deal.deploy(milestones=milestones)
    if "fund" in prerequisites:
        await deal.fund()
    if kind is OperationKind.ESCROW_CREATE:
        payload = await deal.deploy_payload()
    return deal, payload


async def _clean_snapshot(pool: asyncpg.Pool, kind: OperationKind) -> dict[str, Any]:
    if kind not in _clean:
        deal, payload = await _prepared(pool, kind)
        row = await deal.run(kind, **payload)
        _clean[kind] = _comparable(deal, row)
    return _clean[kind]


def _comparable(deal: Deal, row: dict[str, Any]) -> dict[str, Any]:
    """The chain facts plus what the operation recorded (amounts, not hashes)."""
    if deal.contract_id is None:
        deal.contract_id = row["payload"]["contract_id"]
    snapshot = deal.snapshot()
    snapshot["transfers"] = sorted(t["amount_minor"] for t in row["payload"].get("transfers", ()))
    return snapshot


async def _run_with_fault(plan: FaultAtStep) -> None:
    """Drive the operation with fresh workers sharing ``plan`` until it ends."""
    world = plan.deal.world
    for _ in range(20):
        if (await world.operation(plan.operation_id))["status"] != "RUNNING":
            return
        await world.make_due(plan.operation_id)
        async with world.worker(wrap_escrow=plan.wrap) as worker:
            with contextlib.suppress(SimulatedCrash):
                await worker.run_once()
    raise AssertionError("the operation did not settle")


PARAMS = [
    pytest.param(kind, step, fault, id=f"{kind.value}-{step}-{fault}")
    for kind, (_, _, steps) in CASES.items()
    for step, (method, _) in steps.items()
    for fault in FAULTS
    if not (fault == "crash" and method == "GET")
]


@pytest.mark.parametrize(("kind", "step", "fault"), PARAMS)
async def test_fault_at_a_step_ends_as_a_clean_run(
    pool: asyncpg.Pool, kind: OperationKind, step: str, fault: str
) -> None:
    expected = await _clean_snapshot(pool, kind)
    deal, payload = await _prepared(pool, kind)
    operation_id = await deal.start(kind, **payload)
    plan = FaultAtStep(deal, operation_id, (kind, step), fault)
    await _run_with_fault(plan)
    # The fault was armed during its step, and (below) the sandbox consumed it on that call.
    assert plan.fired, f"no {plan.call} call came during {step}"
    assert not deal.world.sandbox.faults.pending()
    row = await deal.world.operation(operation_id)
    assert row["status"] == "SUCCEEDED", row["last_error"]
    assert _comparable(deal, row) == expected
    statuses = [s["status"] for s in await deal.world.submissions(operation_id)]
    assert "PENDING" not in statuses
    assert "FAILED" not in statuses
