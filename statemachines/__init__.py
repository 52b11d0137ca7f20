"""Pure lifecycle models (python-statemachine): order, escrow, milestone, dispute, top-up,
withdrawal.

Imports nothing of ours; state values equal the PostgreSQL enum labels in schema.sql.
"""

from statemachines.base import (
    InvalidStateValue,
    StrictMachine,
    TransitionNotAllowed,
    allowed_events,
    allowed_source_states,
    transition_table,
)
from statemachines.dispute import DisputeMachine
from statemachines.escrow import EscrowMachine
from statemachines.milestone import MilestoneMachine
from statemachines.order import CLOSE_REASONS, OrderCloseReason, OrderMachine
from statemachines.status import (
    DisputeStatus,
    EscrowStatus,
    MilestoneStatus,
    OrderStatus,
    TopUpStatus,
    WithdrawalStatus,
)
from statemachines.topup import TopUpMachine
from statemachines.withdrawal import WithdrawalMachine

__all__ = [
    "CLOSE_REASONS",
    "DisputeMachine",
    "DisputeStatus",
    "EscrowMachine",
    "EscrowStatus",
    "InvalidStateValue",
    "MilestoneMachine",
    "MilestoneStatus",
    "OrderCloseReason",
    "OrderMachine",
    "OrderStatus",
    "StrictMachine",
    "TopUpMachine",
    "TopUpStatus",
    "TransitionNotAllowed",
    "WithdrawalMachine",
    "WithdrawalStatus",
    "allowed_events",
    "allowed_source_states",
    "transition_table",
]
