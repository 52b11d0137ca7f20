"""Dispute lifecycle (api.md 5.4): opened from an ``IN_PROGRESS`` order, resolved on chain."""

from typing import Final

from statemachine.states import States

from statemachines.base import StrictMachine, transition_table
from statemachines.status import DisputeStatus

__all__ = ["TRANSITIONS", "DisputeMachine"]


class DisputeMachine(StrictMachine):
    """Dispute: assigned to a reviewer (again at will), then resolved; ``RESOLVED`` is terminal.

    ``resolve`` is allowed only from ``UNDER_REVIEW``: api.md lists no path from ``OPEN``, so
    a dispute must be assigned before it can be resolved. The decision (full release, full
    refund, split) changes the order and escrow targets, not this one, so it is a single event.
    """

    _ = States.from_enum(DisputeStatus, initial=DisputeStatus.OPEN, final=DisputeStatus.RESOLVED)

    # Re-assignment is a self-transition: it is recorded as a transition but changes no status.
    assign = _.OPEN.to(_.UNDER_REVIEW) | _.UNDER_REVIEW.to.itself()
    resolve = _.UNDER_REVIEW.to(_.RESOLVED)


TRANSITIONS: Final[dict[tuple[DisputeStatus, str], DisputeStatus]] = transition_table(
    DisputeMachine, DisputeStatus
)
"""Every allowed ``(status, event)`` of a dispute and the status it leads to."""
