"""Milestone lifecycle (api.md 5.3): a deliverable of an order, opened with the order."""

from typing import Final

from statemachine.states import States

from statemachines.base import StrictMachine, transition_table
from statemachines.status import MilestoneStatus

__all__ = ["TRANSITIONS", "MilestoneMachine"]


class MilestoneMachine(StrictMachine):
    """Milestone: ``OPEN`` until completed; ``COMPLETED`` is terminal.

    The rule that the order must be ``IN_PROGRESS`` belongs to the flow, which holds both rows;
    this machine only sees the milestone.
    """

    _ = States.from_enum(
        MilestoneStatus, initial=MilestoneStatus.OPEN, final=MilestoneStatus.COMPLETED
    )

    complete = _.OPEN.to(_.COMPLETED)


TRANSITIONS: Final[dict[tuple[MilestoneStatus, str], MilestoneStatus]] = transition_table(
    MilestoneMachine, MilestoneStatus
)
"""Every allowed ``(status, event)`` of a milestone and the status it leads to."""
