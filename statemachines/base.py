"""The strict base class of every lifecycle machine, and read-only views of its transitions.

The views (``transition_table``, ``allowed_source_states``, ``allowed_events``) read the class
definition only, never an instance, so the API can explain an ``INVALID_STATE`` error and the
tests can compare the machines with api.md without building a model.
"""

from enum import Enum
from typing import Any, TypeVar

from statemachine import StateMachine
from statemachine.exceptions import InvalidStateValue, TransitionNotAllowed

__all__ = [
    "InvalidStateValue",
    "StrictMachine",
    "TransitionNotAllowed",
    "allowed_events",
    "allowed_source_states",
    "transition_table",
]

S = TypeVar("S", bound=Enum)


class StrictMachine(StateMachine):
    """Base of every lifecycle machine: an event not allowed in the current state raises.

    ``StateMachine`` already has these defaults; they are restated because the ``StateChart``
    defaults would silently ignore an illegal event or turn a callback error into an internal
    event, and either would let a status change diverge from its ledger postings. The other
    flags keep the library's build-time checks on: every state reachable, no trap state, and
    a path to a terminal state from everywhere.
    """

    allow_event_without_transition = False
    catch_errors_as_events = False
    validate_disconnected_states = True
    validate_trap_states = True
    validate_final_reachability = True

    def __init__(
        self,
        model: Any = None,
        state_field: str = "state",
        start_value: Any = None,
        listeners: list[object] | None = None,
        **kwargs: Any,
    ) -> None:
        """Bind to ``model``, refusing a stored status this machine does not know.

        The library accepts any stored value and fails later, on the first event, with a bare
        ``KeyError``; checking here names the bad label at the point the row was loaded.
        """
        stored = getattr(model, state_field, None) if model is not None else None
        if stored is not None and stored not in self.states_map:
            # The library leaves this constructor unannotated.
            raise InvalidStateValue(stored)  # type: ignore[no-untyped-call]
        super().__init__(model, state_field, start_value, listeners, **kwargs)


def _label(value: Any) -> str:
    """The persisted label of a state value (the enum member's string value)."""
    assert isinstance(value, Enum), f"state value {value!r} is not an enum member"
    label = value.value
    assert isinstance(label, str)
    return label


def _events_of(machine: type[StateMachine]) -> list[str]:
    """Every event id declared on ``machine``, in declaration order."""
    seen: dict[str, None] = {}
    for state in machine.states:
        for transition in state.transitions:
            for event in transition.events:
                seen[event.id] = None
    return list(seen)


def transition_table(machine: type[StateMachine], status: type[S]) -> dict[tuple[S, str], S]:
    """Map each allowed ``(source status, event)`` of ``machine`` to its target status.

    Raises ``AssertionError`` if an event has two targets from one source: our machines have
    no guards, so the table is the whole behaviour, and a second target would hide a branch.
    """
    table: dict[tuple[S, str], S] = {}
    for state in machine.states:
        for transition in state.transitions:
            target = transition.target
            assert target is not None, f"{machine.__name__}: targetless transition {transition}"
            for event in transition.events:
                key = (status(state.value), str(event.id))
                assert key not in table, f"{machine.__name__}: {key} has two targets"
                table[key] = status(target.value)
    return table


def allowed_source_states(machine: type[StateMachine], event: str) -> list[str]:
    """Labels of the states from which ``event`` is allowed, in declaration order.

    The API puts this list in ``INVALID_STATE`` error details. An event the machine does not
    declare is a programming error, so it raises ``ValueError`` rather than returning ``[]``.
    """
    if event not in _events_of(machine):
        raise ValueError(f"{machine.__name__} has no event {event!r}")
    return [
        _label(state.value)
        for state in machine.states
        # Exact comparison: the library's ``match`` also accepts SCXML prefix descriptors.
        if any(event == str(e.id) for t in state.transitions for e in t.events)
    ]


def allowed_events(machine: type[StateMachine], state: str) -> list[str]:
    """Events allowed from the state labelled ``state``, in declaration order.

    ``state`` may be the enum member or the plain label read from the database. A terminal
    state gives ``[]``; a label the machine does not know raises ``ValueError``.
    """
    found = machine.states_map.get(state)
    if found is None:
        raise ValueError(f"{machine.__name__} has no state {state!r}")
    return [str(event.id) for event in found.transitions.unique_events]
