"""A process death at every transaction of every escrow operation, then a resume by a new one.

The SIGKILL test kills at random moments; this one dies at each send-transaction of each escrow
operation in turn, in two ways: after the signed transaction's hash was committed but before it
was sent, and right after it was sent (its answer lost). A fresh worker (a new process) resumes
the operation from the database: it must succeed, settle every submission, and leave the chain
exactly as a run without the death did (nothing sent twice, nothing missing).
"""

import contextlib
from typing import Any

import asyncpg
import pytest

from flows.queries.operations import OperationKind
from providers.trustless_work.port import SendResult, SignedTransaction
from tests.db.escrow_support import AMOUNT, Deal, make_deal
from tests.db.sandbox_world import SimulatedCrash

pytestmark = [pytest.mark.db, pytest.mark.slow]

SPLIT = {"release_amount_minor": AMOUNT * 6 // 10, "refund_amount_minor": AMOUNT * 4 // 10}
# kind -> (prerequisites, payload)
CASES: dict[OperationKind, tuple[tuple[str, ...], dict[str, Any]]] = {
    OperationKind.ESCROW_CREATE: ((), {}),
    OperationKind.ESCROW_FUND: (("deploy",), {"amount_minor": AMOUNT}),
    OperationKind.RELEASE: (("deploy", "fund"), {"milestone_count": 2}),
    OperationKind.REFUND: (("deploy", "fund"), {}),
    OperationKind.DISPUTE_RESOLVE: (("deploy", "fund"), SPLIT),
}


class _DieAtSend:
    """Delegates to the real client; the process dies at send number ``target`` (from 1)."""

    def __init__(self, target: int | None, *, sent: bool) -> None:
        self.target, self.sent, self.calls = target, sent, 0
        self.died = False

    def wrap(self, inner: Any) -> Any:
        """The escrow client the worker uses."""
        return _Wrapped(self, inner)


class _Wrapped:
    def __init__(self, plan: _DieAtSend, inner: Any) -> None:
        self._plan, self._inner = plan, inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def send_transaction(self, transaction: SignedTransaction) -> SendResult:
        plan = self._plan
        plan.calls += 1
        if plan.calls != plan.target:
            result: SendResult = await self._inner.send_transaction(transaction)
            return result
        plan.died = True
        if plan.sent:
            with contextlib.suppress(Exception):
                await self._inner.send_transaction(transaction)
        raise SimulatedCrash(f"died at send {plan.calls} ({'after' if plan.sent else 'before'})")


async def _started(pool: asyncpg.Pool, kind: OperationKind) -> tuple[Deal, str]:
    prerequisites, payload = CASES[kind]
    deal = await make_deal(pool)
    if kind is OperationKind.ESCROW_CREATE:
        payload = await deal.deploy_payload()
    else:
        await deal.deploy(milestones=payload.get("milestone_count", 1))
    if "fund" in prerequisites:
        await deal.fund()
    return deal, await deal.start(kind, **payload)


async def _drive(deal: Deal, operation_id: str, plan: _DieAtSend) -> None:
    """Run workers sharing ``plan`` until the operation ends or the planned death happened."""
    for _ in range(20):
        if plan.died or (await deal.world.operation(operation_id))["status"] != "RUNNING":
            return
        await deal.world.make_due(operation_id)
        async with deal.world.worker(wrap_escrow=plan.wrap) as worker:
            with contextlib.suppress(SimulatedCrash):
                await worker.run_once()
    raise AssertionError("the operation neither ended nor reached the planned death")


async def _outcome(deal: Deal, operation_id: str) -> dict[str, Any]:
    row = await deal.world.operation(operation_id)
    assert row["status"] == "SUCCEEDED", row["last_error"]
    statuses = {s["status"] for s in await deal.world.submissions(operation_id)}
    assert statuses <= {"CONFIRMED", "EXPIRED"}, statuses
    deal.contract_id = deal.contract_id or row["payload"]["contract_id"]
    snapshot = deal.snapshot()
    snapshot["transfers"] = sorted(t["amount_minor"] for t in row["payload"].get("transfers", ()))
    return snapshot


@pytest.mark.parametrize("kind", list(CASES), ids=lambda kind: kind.value)
async def test_a_death_at_any_send_resumes_to_the_clean_outcome(
    pool: asyncpg.Pool, kind: OperationKind
) -> None:
    deal, operation_id = await _started(pool, kind)
    counted = _DieAtSend(None, sent=False)
    await _drive(deal, operation_id, counted)
    clean = await _outcome(deal, operation_id)
    assert counted.calls > 0
    for target in range(1, counted.calls + 1):
        for sent in (False, True):
            deal, operation_id = await _started(pool, kind)
            plan = _DieAtSend(target, sent=sent)
            await _drive(deal, operation_id, plan)
            assert plan.died, f"send {target} never came"
            status = await deal.world.run_until_settled(operation_id)
            assert status == "SUCCEEDED", (target, sent, await deal.world.operation(operation_id))
            assert await _outcome(deal, operation_id) == clean, (target, sent)
