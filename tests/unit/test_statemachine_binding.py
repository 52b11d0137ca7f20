"""Status enums, binding a machine to a row, the introspection helpers and package purity."""

import ast
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from statemachine import StateMachine

from statemachines import (
    CLOSE_REASONS,
    DisputeMachine,
    DisputeStatus,
    EscrowMachine,
    EscrowStatus,
    InvalidStateValue,
    MilestoneMachine,
    MilestoneStatus,
    OrderCloseReason,
    OrderMachine,
    OrderStatus,
    TopUpMachine,
    TopUpStatus,
    TransitionNotAllowed,
    WithdrawalMachine,
    WithdrawalStatus,
    allowed_events,
    allowed_source_states,
    dispute,
    escrow,
    milestone,
    order,
    topup,
    withdrawal,
)

PACKAGE = Path(__file__).resolve().parents[2] / "statemachines"

# Labels as listed in api.md section 5, in lifecycle order, with the initial one first.
LABELS: dict[type[StrEnum], list[str]] = {
    OrderStatus: [
        "ORDER_CREATED",
        "FUNDS_RESERVED",
        "ESCROW_CREATING",
        "ESCROW_FUNDING",
        "ESCROW_FUNDED",
        "IN_PROGRESS",
        "RELEASE_REQUESTED",
        "REFUND_REQUESTED",
        "DISPUTED",
        "RELEASED",
        "REFUNDED",
        "CLOSED",
    ],
    EscrowStatus: [
        "CREATING",
        "CREATED",
        "FUNDING",
        "FUNDED",
        "RELEASING",
        "REFUNDING",
        "DISPUTED",
        "RELEASED",
        "REFUNDED",
        "FAILED",
    ],
    MilestoneStatus: ["OPEN", "COMPLETED"],
    DisputeStatus: ["OPEN", "UNDER_REVIEW", "RESOLVED"],
    TopUpStatus: [
        "TOPUP_CREATED",
        "TOPUP_AWAITING_USER_CONFIRMATION",
        "TOPUP_PROCESSING",
        "TOPUP_SUCCEEDED",
        "TOPUP_FAILED",
        "TOPUP_CANCELED",
    ],
    WithdrawalStatus: [
        "WITHDRAWAL_CREATED",
        "WITHDRAWAL_COMMITTED",
        "WITHDRAWAL_PENDING",
        "WITHDRAWAL_PENDING_USER_ACTION",
        "WITHDRAWAL_COMPLETED",
        "WITHDRAWAL_FAILED",
        "WITHDRAWAL_CANCELED",
    ],
}
MACHINES: list[tuple[type[StateMachine], type[StrEnum], Any]] = [
    (OrderMachine, OrderStatus, order),
    (EscrowMachine, EscrowStatus, escrow),
    (MilestoneMachine, MilestoneStatus, milestone),
    (DisputeMachine, DisputeStatus, dispute),
    (TopUpMachine, TopUpStatus, topup),
    (WithdrawalMachine, WithdrawalStatus, withdrawal),
]
by_machine = pytest.mark.parametrize(
    ("machine", "status", "module"), MACHINES, ids=[m.__name__ for m, _, _ in MACHINES]
)


@dataclass
class Row:
    """Stands in for a locked database row: the status column only."""

    status: Any


@pytest.mark.parametrize("status", list(LABELS), ids=lambda s: s.__name__)
def test_status_enum_labels_are_unique_and_match_api(status: type[StrEnum]) -> None:
    values = [member.value for member in status]
    assert not [v for v, n in Counter(values).items() if n > 1]
    assert values == LABELS[status]
    # Name and label agree, so a state id (the name) can be read as the stored label.
    assert all(member.name == member.value for member in status)


@by_machine
def test_state_ids_and_values_match_enum(
    machine: type[StateMachine], status: type[StrEnum], module: Any
) -> None:
    assert [s.id for s in machine.states] == [member.name for member in status]
    assert all(s.value is status[s.id] for s in machine.states)
    assert machine.initial_state is not None
    assert machine.initial_state.value == LABELS[status][0]


@by_machine
def test_machine_is_strict(machine: type[StateMachine], status: type[StrEnum], module: Any) -> None:
    assert machine.allow_event_without_transition is False
    assert machine.catch_errors_as_events is False
    with pytest.raises(TransitionNotAllowed):
        machine().send("no_such_event")


@by_machine
def test_unbound_row_gets_the_initial_status(
    machine: type[StateMachine], status: type[StrEnum], module: Any
) -> None:
    row = Row(status=None)
    machine(model=row, state_field="status")
    assert row.status is status(LABELS[status][0])


def test_binding_starts_in_the_row_status_and_events_update_the_row() -> None:
    row = Row(status=OrderStatus.FUNDS_RESERVED)
    machine = OrderMachine(model=row, state_field="status")
    assert [state.id for state in machine.configuration] == ["FUNDS_RESERVED"]
    seen = []
    for event in ("start_escrow", "escrow_deployed"):
        machine.send(event)
        seen.append(row.status)
    assert seen == [OrderStatus.ESCROW_CREATING, OrderStatus.ESCROW_FUNDING]
    assert all(type(status) is OrderStatus for status in seen)


def test_binding_accepts_the_plain_label_read_from_the_database() -> None:
    row = Row(status="IN_PROGRESS")
    machine = OrderMachine(model=row, state_field="status")
    machine.send("open_dispute")
    # The machine writes the enum member back, which is still the label for the driver.
    assert row.status is OrderStatus.DISPUTED
    assert row.status == "DISPUTED"


def test_refused_event_leaves_the_row_untouched() -> None:
    row = Row(status="ORDER_CREATED")
    machine = OrderMachine(model=row, state_field="status")
    with pytest.raises(TransitionNotAllowed):
        machine.send("start_escrow")
    assert row.status == "ORDER_CREATED"
    assert type(row.status) is str


def test_unknown_stored_label_is_refused_at_binding() -> None:
    with pytest.raises(InvalidStateValue):
        OrderMachine(model=Row(status="SHIPPED"), state_field="status")


def test_allowed_source_states() -> None:
    assert allowed_source_states(OrderMachine, "cancel") == ["ORDER_CREATED", "FUNDS_RESERVED"]
    assert allowed_source_states(TopUpMachine, "cancel") == [
        "TOPUP_CREATED",
        "TOPUP_AWAITING_USER_CONFIRMATION",
    ]
    assert allowed_source_states(WithdrawalMachine, "cancel") == [
        "WITHDRAWAL_CREATED",
        "WITHDRAWAL_PENDING_USER_ACTION",
    ]
    assert allowed_source_states(DisputeMachine, "assign") == ["OPEN", "UNDER_REVIEW"]
    assert all(type(s) is str for s in allowed_source_states(EscrowMachine, "fund"))
    with pytest.raises(ValueError, match="no event"):
        allowed_source_states(OrderMachine, "ship")


def test_allowed_events() -> None:
    assert allowed_events(OrderMachine, "IN_PROGRESS") == [
        "request_release",
        "request_refund",
        "open_dispute",
    ]
    assert allowed_events(OrderMachine, OrderStatus.DISPUTED) == [
        "resolve_full_release",
        "resolve_full_refund",
        "resolve_split",
    ]
    assert allowed_events(OrderMachine, "CLOSED") == []
    with pytest.raises(ValueError, match="no state"):
        allowed_events(OrderMachine, "SHIPPED")


@by_machine
def test_helpers_agree_with_the_table(
    machine: type[StateMachine], status: type[StrEnum], module: Any
) -> None:
    table = module.TRANSITIONS
    for member in status:
        assert sorted(allowed_events(machine, member)) == sorted(e for s, e in table if s is member)
    for event in {e for _, e in table}:
        assert allowed_source_states(machine, event) == [s.value for s, e in table if e == event]


def test_close_reasons() -> None:
    assert {(str(s), e): str(r) for (s, e), r in CLOSE_REASONS.items()} == {
        ("ORDER_CREATED", "cancel"): "CANCELED",
        ("FUNDS_RESERVED", "cancel"): "CANCELED",
        ("DISPUTED", "resolve_split"): "SPLIT",
        ("RELEASED", "close"): "RELEASED",
        ("REFUNDED", "close"): "REFUNDED",
    }
    assert [r.value for r in OrderCloseReason] == ["CANCELED", "RELEASED", "REFUNDED", "SPLIT"]


@by_machine
def test_mermaid_diagram_shows_every_transition(
    machine: type[StateMachine], status: type[StrEnum], module: Any
) -> None:
    # The docs render their diagrams from the classes; this keeps that rendering working.
    lines = [line.strip() for line in format(machine, "mermaid").splitlines()]
    assert lines[0] == "stateDiagram-v2"
    arrows = {tuple(line.split(" : ")[0].split(" --> ")) for line in lines if " : " in line}
    assert arrows == {(s.name, t.name) for (s, _), t in module.TRANSITIONS.items()}


def test_package_imports_nothing_of_ours() -> None:
    allowed = set(sys.stdlib_module_names) | {"statemachine", "statemachines"}
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.name}: use absolute imports"
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{path.name} imports {roots - allowed}"


def test_import_and_use_emit_no_warning() -> None:
    # A fresh interpreter, because this process imported the package before any filter ran.
    code = (
        "import statemachines as s\n"
        "m = s.OrderMachine()\n"
        "m.send('reserve')\n"
        "format(s.EscrowMachine, 'mermaid')\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, cwd=PACKAGE.parent)
