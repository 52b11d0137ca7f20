"""Order, milestone, escrow and operation wire types (api.md 3.5, 3.6, 4).

Request bodies refuse unknown fields; amounts arrive as :data:`Amount` strings. Responses render
the ``flows.order_views`` views: minor units become decimal strings, times RFC 3339 UTC.
"""

from typing import Annotated, Any, Final, Literal

from msgspec import Meta

from api.schemas.common import Amount, Currency, RequestStruct, ResponseStruct, format_time
from common.money import format_amount
from flows import order_views as views

__all__ = [
    "MILESTONE_REF_PATTERN",
    "CancelBody",
    "DisputeOpen",
    "Escrow",
    "Milestone",
    "MilestoneCreate",
    "Operation",
    "OperationError",
    "Order",
    "OrderCreate",
    "Payout",
    "RefundBody",
    "ReleaseBody",
    "ReserveBody",
    "milestone_out",
    "order_out",
]

MILESTONE_REF_PATTERN: Final = r"^[A-Za-z0-9._-]{1,64}$"

Title = Annotated[str, Meta(min_length=1, max_length=200)]
Description = Annotated[str, Meta(max_length=2000)]
Reason = Annotated[str, Meta(max_length=500)]


class MilestoneCreate(RequestStruct, frozen=True):
    """One milestone of ``POST /orders``."""

    milestone_ref: Annotated[str, Meta(min_length=1, max_length=64, pattern=MILESTONE_REF_PATTERN)]
    title: Title
    amount: Amount


class OrderCreate(RequestStruct, frozen=True):
    """``POST /orders``; ``metadata`` is at most 8 KiB serialised (checked by the route)."""

    buyer_id: Annotated[str, Meta(min_length=1, max_length=255)]
    seller_id: Annotated[str, Meta(min_length=1, max_length=255)]
    amount: Amount
    title: Title
    currency: Currency | None = None
    description: Description | None = None
    client_order_ref: Annotated[str, Meta(min_length=1, max_length=100)] | None = None
    milestones: Annotated[list[MilestoneCreate], Meta(min_length=1, max_length=50)] | None = None
    metadata: dict[str, Any] | None = None


class ReserveBody(RequestStruct, frozen=True):
    """``POST /orders/{id}/reserve``: ``amount``, if sent, must equal the order amount."""

    amount: Amount | None = None


class CancelBody(RequestStruct, frozen=True):
    """``POST /orders/{id}/cancel``."""

    reason: Reason | None = None


class ReleaseBody(RequestStruct, frozen=True):
    """``POST /orders/{id}/resolution/release``."""

    reason: Reason | None = None


class RefundBody(RequestStruct, frozen=True):
    """``POST /orders/{id}/resolution/refund``: the reason is required."""

    reason: Annotated[str, Meta(min_length=1, max_length=500)]


class DisputeOpen(RequestStruct, frozen=True):
    """``POST /orders/{id}/resolution/dispute``."""

    opened_by: Literal["BUYER", "SELLER"]
    reason: Literal["NOT_DELIVERED", "QUALITY_ISSUE", "OTHER"]
    evidence: (
        Annotated[list[Annotated[str, Meta(min_length=1, max_length=2000)]], Meta(max_length=20)]
        | None
    ) = None
    description: Description | None = None


class Milestone(ResponseStruct, frozen=True):
    """A milestone of an order."""

    id: str
    order_id: str
    milestone_ref: str
    title: str
    amount: str
    status: str
    completed_at: str | None
    created_at: str
    updated_at: str


class Payout(ResponseStruct, frozen=True):
    """What one party received from the contract (gross, fee shares, net)."""

    party: str
    user_id: str
    gross_amount: str
    platform_fee: str
    trustless_work_fee: str
    net_amount: str
    transaction_hash: str | None


class Escrow(ResponseStruct, frozen=True):
    """The latest escrow of an order."""

    id: str
    order_id: str
    status: str
    amount: str
    currency: str
    trustless_contract_id: str | None
    platform_fee_bps: int
    trustless_work_fee_bps: int
    funding_transaction_hash: str | None
    payouts: list[Payout]
    funded_at: str | None
    released_at: str | None
    refunded_at: str | None
    created_at: str
    updated_at: str


class OperationError(ResponseStruct, frozen=True):
    """Why an operation failed, or the transient error it is retrying after."""

    code: str
    message: str


class Operation(ResponseStruct, frozen=True):
    """The latest durable operation of an order."""

    id: str
    kind: str
    status: str
    step: str
    attempts: int
    last_error: OperationError | None
    started_at: str
    updated_at: str


class Order(ResponseStruct, frozen=True):
    """An order with its milestones, latest escrow, latest dispute and latest operation."""

    id: str
    client_order_ref: str | None
    buyer_id: str
    seller_id: str
    amount: str
    currency: str
    status: str
    close_reason: str | None
    title: str
    description: str | None
    metadata: dict[str, Any] | None
    milestones: list[Milestone]
    escrow: Escrow | None
    dispute_id: str | None
    operation: Operation | None
    created_at: str
    updated_at: str
    closed_at: str | None


def _time(moment: Any) -> str | None:
    return None if moment is None else format_time(moment)


def milestone_out(milestone: views.Milestone) -> Milestone:
    """The wire form of a milestone."""
    return Milestone(
        id=milestone.id,
        order_id=milestone.order_id,
        milestone_ref=milestone.milestone_ref,
        title=milestone.title,
        amount=format_amount(milestone.amount_minor),
        status=milestone.status,
        completed_at=_time(milestone.completed_at),
        created_at=format_time(milestone.created_at),
        updated_at=format_time(milestone.updated_at),
    )


def _payout_out(payout: views.Payout) -> Payout:
    return Payout(
        party=payout.party,
        user_id=payout.user_id,
        gross_amount=format_amount(payout.gross_amount_minor),
        platform_fee=format_amount(payout.platform_fee_minor),
        trustless_work_fee=format_amount(payout.trustless_work_fee_minor),
        net_amount=format_amount(payout.net_amount_minor),
        transaction_hash=payout.transaction_hash,
    )


def _escrow_out(escrow: views.Escrow) -> Escrow:
    return Escrow(
        id=escrow.id,
        order_id=escrow.order_id,
        status=escrow.status,
        amount=format_amount(escrow.amount_minor),
        currency=escrow.currency,
        trustless_contract_id=escrow.contract_id,
        platform_fee_bps=escrow.platform_fee_bps,
        trustless_work_fee_bps=escrow.trustless_work_fee_bps,
        funding_transaction_hash=escrow.funding_transaction_hash,
        payouts=[_payout_out(payout) for payout in escrow.payouts],
        funded_at=_time(escrow.funded_at),
        released_at=_time(escrow.released_at),
        refunded_at=_time(escrow.refunded_at),
        created_at=format_time(escrow.created_at),
        updated_at=format_time(escrow.updated_at),
    )


def _operation_out(operation: views.OrderOperation) -> Operation:
    error = operation.last_error
    return Operation(
        id=operation.id,
        kind=operation.kind,
        status=operation.status,
        step=operation.step,
        attempts=operation.attempts,
        last_error=None
        if error is None
        else OperationError(code=error.code, message=error.message),
        started_at=format_time(operation.started_at),
        updated_at=format_time(operation.updated_at),
    )


def order_out(order: views.Order) -> Order:
    """The wire form of an order (``reserve_transfer_id`` stays internal)."""
    return Order(
        id=order.id,
        client_order_ref=order.client_order_ref,
        buyer_id=order.buyer_id,
        seller_id=order.seller_id,
        amount=format_amount(order.amount_minor),
        currency=order.currency,
        status=order.status,
        close_reason=order.close_reason,
        title=order.title,
        description=order.description,
        metadata=order.metadata,
        milestones=[milestone_out(milestone) for milestone in order.milestones],
        escrow=None if order.escrow is None else _escrow_out(order.escrow),
        dispute_id=order.dispute_id,
        operation=None if order.operation is None else _operation_out(order.operation),
        created_at=format_time(order.created_at),
        updated_at=format_time(order.updated_at),
        closed_at=_time(order.closed_at),
    )
