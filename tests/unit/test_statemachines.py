"""Every lifecycle machine against an independent copy of the api.md section 5 tables.

The EXPECTED tables below are written by hand from api.md, not derived from the code, so a
transition added to or dropped from a machine fails here until the contract changes too.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from statemachine import StateMachine

from statemachines import dispute, escrow, milestone, order, topup, withdrawal
from statemachines.base import TransitionNotAllowed
from statemachines.status import (
    DisputeStatus,
    EscrowStatus,
    MilestoneStatus,
    OrderStatus,
    TopUpStatus,
    WithdrawalStatus,
)

ORDER = {
    ("ORDER_CREATED", "reserve"): "FUNDS_RESERVED",
    ("ORDER_CREATED", "cancel"): "CLOSED",
    ("FUNDS_RESERVED", "cancel"): "CLOSED",
    ("FUNDS_RESERVED", "start_escrow"): "ESCROW_CREATING",
    ("ESCROW_CREATING", "escrow_deployed"): "ESCROW_FUNDING",
    ("ESCROW_CREATING", "deploy_failed"): "FUNDS_RESERVED",
    ("ESCROW_FUNDING", "escrow_funded"): "ESCROW_FUNDED",
    ("ESCROW_FUNDED", "start_work"): "IN_PROGRESS",
    ("IN_PROGRESS", "request_release"): "RELEASE_REQUESTED",
    ("IN_PROGRESS", "request_refund"): "REFUND_REQUESTED",
    ("IN_PROGRESS", "open_dispute"): "DISPUTED",
    ("RELEASE_REQUESTED", "confirm_release"): "RELEASED",
    ("REFUND_REQUESTED", "confirm_refund"): "REFUNDED",
    ("DISPUTED", "resolve_full_release"): "RELEASED",
    ("DISPUTED", "resolve_full_refund"): "REFUNDED",
    ("DISPUTED", "resolve_split"): "CLOSED",
    ("RELEASED", "close"): "CLOSED",
    ("REFUNDED", "close"): "CLOSED",
}
ESCROW = {
    ("CREATING", "confirm_deploy"): "CREATED",
    ("CREATING", "reject_deploy"): "FAILED",
    ("CREATED", "fund"): "FUNDING",
    ("FUNDING", "confirm_funding"): "FUNDED",
    ("FUNDING", "reject_funding"): "CREATED",
    ("FUNDED", "release"): "RELEASING",
    ("FUNDED", "refund"): "REFUNDING",
    ("FUNDED", "open_dispute"): "DISPUTED",
    ("RELEASING", "confirm_release"): "RELEASED",
    ("REFUNDING", "confirm_refund"): "REFUNDED",
    ("DISPUTED", "resolve_full_release"): "RELEASED",
    ("DISPUTED", "resolve_split"): "RELEASED",
    ("DISPUTED", "resolve_full_refund"): "REFUNDED",
}
MILESTONE = {("OPEN", "complete"): "COMPLETED"}
DISPUTE = {
    ("OPEN", "assign"): "UNDER_REVIEW",
    ("UNDER_REVIEW", "assign"): "UNDER_REVIEW",
    ("UNDER_REVIEW", "resolve"): "RESOLVED",
}
TOPUP = {
    ("TOPUP_CREATED", "await_confirmation"): "TOPUP_AWAITING_USER_CONFIRMATION",
    ("TOPUP_CREATED", "fail"): "TOPUP_FAILED",
    ("TOPUP_CREATED", "cancel"): "TOPUP_CANCELED",
    ("TOPUP_AWAITING_USER_CONFIRMATION", "process"): "TOPUP_PROCESSING",
    ("TOPUP_AWAITING_USER_CONFIRMATION", "confirm"): "TOPUP_SUCCEEDED",
    ("TOPUP_AWAITING_USER_CONFIRMATION", "fail"): "TOPUP_FAILED",
    ("TOPUP_AWAITING_USER_CONFIRMATION", "cancel"): "TOPUP_CANCELED",
    ("TOPUP_AWAITING_USER_CONFIRMATION", "cancel_by_provider"): "TOPUP_CANCELED",
    ("TOPUP_PROCESSING", "confirm"): "TOPUP_SUCCEEDED",
    ("TOPUP_PROCESSING", "fail"): "TOPUP_FAILED",
    ("TOPUP_PROCESSING", "cancel_by_provider"): "TOPUP_CANCELED",
}
_W = "WITHDRAWAL_"
WITHDRAWAL = {
    (_W + "CREATED", "commit"): _W + "COMMITTED",
    (_W + "CREATED", "cancel"): _W + "CANCELED",
    (_W + "CREATED", "fail"): _W + "FAILED",
    (_W + "COMMITTED", "process"): _W + "PENDING",
    (_W + "COMMITTED", "complete"): _W + "COMPLETED",
    (_W + "COMMITTED", "fail"): _W + "FAILED",
    (_W + "COMMITTED", "require_user_action"): _W + "PENDING_USER_ACTION",
    (_W + "COMMITTED", "cancel_by_provider"): _W + "CANCELED",
    (_W + "PENDING", "complete"): _W + "COMPLETED",
    (_W + "PENDING", "fail"): _W + "FAILED",
    (_W + "PENDING", "require_user_action"): _W + "PENDING_USER_ACTION",
    (_W + "PENDING", "cancel_by_provider"): _W + "CANCELED",
    (_W + "PENDING_USER_ACTION", "process"): _W + "PENDING",
    (_W + "PENDING_USER_ACTION", "complete"): _W + "COMPLETED",
    (_W + "PENDING_USER_ACTION", "fail"): _W + "FAILED",
    (_W + "PENDING_USER_ACTION", "cancel"): _W + "CANCELED",
    (_W + "PENDING_USER_ACTION", "cancel_by_provider"): _W + "CANCELED",
}


@dataclass(frozen=True)
class Lifecycle:
    """One machine with its status enum, module table and the api.md expectations."""

    name: str
    module: Any
    machine: type[StateMachine]
    status: type[StrEnum]
    expected: dict[tuple[str, str], str]
    initial: str
    terminal: frozenset[str]

    @property
    def events(self) -> list[str]:
        """Events from api.md and from the code, so an undocumented extra one is walked too."""
        names = {e for _, e in self.expected} | {e for _, e in self.module.TRANSITIONS}
        return [*sorted(names), "no_such_event"]


LIFECYCLES = [
    Lifecycle(
        "order",
        order,
        order.OrderMachine,
        OrderStatus,
        ORDER,
        "ORDER_CREATED",
        frozenset({"CLOSED"}),
    ),
    Lifecycle(
        "escrow",
        escrow,
        escrow.EscrowMachine,
        EscrowStatus,
        ESCROW,
        "CREATING",
        frozenset({"RELEASED", "REFUNDED", "FAILED"}),
    ),
    Lifecycle(
        "milestone",
        milestone,
        milestone.MilestoneMachine,
        MilestoneStatus,
        MILESTONE,
        "OPEN",
        frozenset({"COMPLETED"}),
    ),
    Lifecycle(
        "dispute",
        dispute,
        dispute.DisputeMachine,
        DisputeStatus,
        DISPUTE,
        "OPEN",
        frozenset({"RESOLVED"}),
    ),
    Lifecycle(
        "topup",
        topup,
        topup.TopUpMachine,
        TopUpStatus,
        TOPUP,
        "TOPUP_CREATED",
        frozenset({"TOPUP_SUCCEEDED", "TOPUP_FAILED", "TOPUP_CANCELED"}),
    ),
    Lifecycle(
        "withdrawal",
        withdrawal,
        withdrawal.WithdrawalMachine,
        WithdrawalStatus,
        WITHDRAWAL,
        _W + "CREATED",
        frozenset({_W + "COMPLETED", _W + "FAILED", _W + "CANCELED"}),
    ),
]


@dataclass
class Row:
    """Stands in for a locked database row: the status column only."""

    status: Any


def _pairs() -> list[Any]:
    return [
        pytest.param(lc, state.value, event, id=f"{lc.name}-{state.value}-{event}")
        for lc in LIFECYCLES
        for state in lc.status
        for event in lc.events
    ]


@pytest.mark.parametrize(("lc", "state", "event"), _pairs())
def test_every_state_event_pair(lc: Lifecycle, state: str, event: str) -> None:
    row = Row(status=lc.status(state))
    machine = lc.machine(model=row, state_field="status")
    target = lc.expected.get((state, event))
    if target is None:
        before = row.status
        with pytest.raises(TransitionNotAllowed):
            machine.send(event)
        assert row.status is before
    else:
        machine.send(event)
        assert row.status == target
        assert isinstance(row.status, lc.status)


@pytest.mark.parametrize("lc", LIFECYCLES, ids=lambda lc: lc.name)
def test_module_table_matches_api(lc: Lifecycle) -> None:
    table = {(str(s), e): str(t) for (s, e), t in lc.module.TRANSITIONS.items()}
    assert table == lc.expected


@pytest.mark.parametrize("lc", LIFECYCLES, ids=lambda lc: lc.name)
def test_terminal_states_have_no_outgoing_events(lc: Lifecycle) -> None:
    assert {str(s.value) for s in lc.machine.final_states} == lc.terminal
    assert not [key for key in lc.expected if key[0] in lc.terminal]
    assert not [key for key in lc.module.TRANSITIONS if key[0] in lc.terminal]
    # And every other state can move: a non-terminal dead end would strand a row forever.
    assert {s for s, _ in lc.expected} == {s.value for s in lc.status} - lc.terminal


def _walker(lc: Lifecycle) -> type[RuleBasedStateMachine]:
    """A random walk on the machine, checked step by step against the plain dict model."""

    class Walker(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            # A new row with no status yet: the machine must write the initial one.
            self.expected = lc.initial
            self.row = Row(status=None)
            self.machine = lc.machine(model=self.row, state_field="status")

        @initialize(start=st.sampled_from([s.value for s in lc.status]))
        def bind(self, start: str) -> None:
            # A plain label, as the driver returns it, must bind like the enum member.
            self.expected = start
            self.row = Row(status=start)
            self.machine = lc.machine(model=self.row, state_field="status")

        @rule(event=st.sampled_from(lc.events))
        def fire_any(self, event: str) -> None:
            target = lc.expected.get((self.expected, event))
            if target is None:
                with pytest.raises(TransitionNotAllowed):
                    self.machine.send(event)
            else:
                self.machine.send(event)
                self.expected = target

        @precondition(lambda self: self.expected not in lc.terminal)
        @rule(data=st.data())
        def fire_allowed(self, data: st.DataObject) -> None:
            allowed = sorted(e for s, e in lc.expected if s == self.expected)
            event = data.draw(st.sampled_from(allowed))
            self.machine.send(event)
            self.expected = lc.expected[(self.expected, event)]

        @rule()
        def reload(self) -> None:
            # Re-reading the row between requests: a new machine on the stored label.
            self.row = Row(status=str(self.row.status))
            self.machine = lc.machine(model=self.row, state_field="status")

        @invariant()
        def agrees_with_model(self) -> None:
            assert self.row.status == self.expected
            assert sorted(self.machine.allowed_events) == sorted(
                e for s, e in lc.expected if s == self.expected
            )

    Walker.__name__ = f"{lc.name.title()}Walker"
    return Walker


@pytest.mark.parametrize("lc", LIFECYCLES, ids=lambda lc: lc.name)
def test_random_walk_agrees_with_dict_model(lc: Lifecycle) -> None:
    # hypothesis leaves this runner unannotated.
    run_state_machine_as_test(  # type: ignore[no-untyped-call]
        _walker(lc), settings=settings(max_examples=60, stateful_step_count=25, deadline=None)
    )
