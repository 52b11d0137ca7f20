"""Order lifecycle (api.md 5.1) and the ``close_reason`` each way into ``CLOSED`` implies.

The two "(auto)" steps of api.md (``start_work`` after funding, ``close`` after a release or
refund) are ordinary events, not eventless transitions: the flow fires them in the same
database transaction, so each still gets its own transition row and outbox event.
"""

from enum import StrEnum, unique
from typing import Final

from statemachine.states import States

from statemachines.base import StrictMachine, transition_table
from statemachines.status import OrderStatus

__all__ = ["CLOSE_REASONS", "TRANSITIONS", "OrderCloseReason", "OrderMachine"]


class OrderMachine(StrictMachine):
    """Order: reserve funds, deploy and fund the escrow, then release, refund or dispute.

    Bind it to a row with ``OrderMachine(model=row, state_field="status")``. Dispute outcomes
    are three events rather than one guarded event, so the data table alone says where each
    leads and ``allowed_source_states`` stays exact.
    """

    _ = States.from_enum(OrderStatus, initial=OrderStatus.ORDER_CREATED, final=OrderStatus.CLOSED)

    reserve = _.ORDER_CREATED.to(_.FUNDS_RESERVED)
    # Cancel is only possible before any money moves on chain (api.md: "the only cancel window").
    cancel = _.ORDER_CREATED.to(_.CLOSED) | _.FUNDS_RESERVED.to(_.CLOSED)
    start_escrow = _.FUNDS_RESERVED.to(_.ESCROW_CREATING)
    escrow_deployed = _.ESCROW_CREATING.to(_.ESCROW_FUNDING)
    # A definitive deploy rejection returns to the reserved state so a new escrow can be created.
    deploy_failed = _.ESCROW_CREATING.to(_.FUNDS_RESERVED)
    escrow_funded = _.ESCROW_FUNDING.to(_.ESCROW_FUNDED)
    start_work = _.ESCROW_FUNDED.to(_.IN_PROGRESS)
    request_release = _.IN_PROGRESS.to(_.RELEASE_REQUESTED)
    request_refund = _.IN_PROGRESS.to(_.REFUND_REQUESTED)
    open_dispute = _.IN_PROGRESS.to(_.DISPUTED)
    confirm_release = _.RELEASE_REQUESTED.to(_.RELEASED)
    confirm_refund = _.REFUND_REQUESTED.to(_.REFUNDED)
    resolve_full_release = _.DISPUTED.to(_.RELEASED)
    resolve_full_refund = _.DISPUTED.to(_.REFUNDED)
    # A split pays both parties, so there is no single RELEASED/REFUNDED stop on the way.
    resolve_split = _.DISPUTED.to(_.CLOSED)
    close = _.RELEASED.to(_.CLOSED) | _.REFUNDED.to(_.CLOSED)


TRANSITIONS: Final[dict[tuple[OrderStatus, str], OrderStatus]] = transition_table(
    OrderMachine, OrderStatus
)
"""Every allowed ``(status, event)`` of an order and the status it leads to."""


@unique
class OrderCloseReason(StrEnum):
    """Why an order reached ``CLOSED`` (the ``close_reason`` field of api.md section 4)."""

    CANCELED = "CANCELED"
    RELEASED = "RELEASED"
    REFUNDED = "REFUNDED"
    SPLIT = "SPLIT"


CLOSE_REASONS: Final[dict[tuple[OrderStatus, str], OrderCloseReason]] = {
    (OrderStatus.ORDER_CREATED, "cancel"): OrderCloseReason.CANCELED,
    (OrderStatus.FUNDS_RESERVED, "cancel"): OrderCloseReason.CANCELED,
    (OrderStatus.DISPUTED, "resolve_split"): OrderCloseReason.SPLIT,
    (OrderStatus.RELEASED, "close"): OrderCloseReason.RELEASED,
    (OrderStatus.REFUNDED, "close"): OrderCloseReason.REFUNDED,
}
"""The ``close_reason`` to store for each ``(source status, event)`` that leads to ``CLOSED``.

It depends on the source as well as the event (``close`` from ``RELEASED`` or ``REFUNDED``),
which is why it is a table here and not a callback that would have to know the row's columns.
"""

# Every way into CLOSED must name a reason, and nothing else may.
assert set(CLOSE_REASONS) == {k for k, v in TRANSITIONS.items() if v is OrderStatus.CLOSED}
