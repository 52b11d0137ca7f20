"""Orders, milestones, escrows, durable operations and disputes (api.md 3.5, 3.6, 4)."""

from typing import Any, Literal

from offerhub_client.models.common import Amount, AmountIn, Body, Model, Time

__all__ = [
    "CancelBody",
    "Dispute",
    "DisputeAssign",
    "DisputeOpen",
    "DisputeResolve",
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
]


class Milestone(Model, frozen=True, kw_only=True):
    """A milestone of an order (``OPEN`` or ``COMPLETED``)."""

    id: str
    order_id: str
    milestone_ref: str
    title: str
    amount: Amount
    status: str
    completed_at: Time | None = None
    created_at: Time
    updated_at: Time


class Payout(Model, frozen=True, kw_only=True):
    """What one party received from the contract: gross, fee shares, net."""

    party: str
    user_id: str
    gross_amount: Amount
    platform_fee: Amount
    trustless_work_fee: Amount
    net_amount: Amount
    transaction_hash: str | None = None


class Escrow(Model, frozen=True, kw_only=True):
    """The latest escrow of an order (a Trustless Work contract once deployed)."""

    id: str
    order_id: str
    status: str
    amount: Amount
    currency: str
    trustless_contract_id: str | None = None
    platform_fee_bps: int
    trustless_work_fee_bps: int
    funding_transaction_hash: str | None = None
    payouts: list[Payout]
    funded_at: Time | None = None
    released_at: Time | None = None
    refunded_at: Time | None = None
    created_at: Time
    updated_at: Time


class OperationError(Model, frozen=True, kw_only=True):
    """Why an operation failed, or the transient error it is retrying after."""

    code: str
    message: str


class Operation(Model, frozen=True, kw_only=True):
    """The latest durable operation of an order (escrow deploy, fund, release, ...)."""

    id: str
    kind: str
    status: str
    step: str
    attempts: int
    last_error: OperationError | None = None
    started_at: Time
    updated_at: Time


class Order(Model, frozen=True, kw_only=True):
    """An order with its milestones, latest escrow, dispute and operation."""

    id: str
    client_order_ref: str | None = None
    buyer_id: str
    seller_id: str
    amount: Amount
    currency: str
    status: str
    close_reason: str | None = None
    title: str
    description: str | None = None
    metadata: dict[str, Any] | None = None
    milestones: list[Milestone]
    escrow: Escrow | None = None
    dispute_id: str | None = None
    operation: Operation | None = None
    created_at: Time
    updated_at: Time
    closed_at: Time | None = None


class Dispute(Model, frozen=True, kw_only=True):
    """A dispute of an order: ``OPEN``, ``UNDER_REVIEW``, ``RESOLVED``."""

    id: str
    order_id: str
    status: str
    opened_by: str
    reason: str
    description: str | None = None
    evidence: list[str]
    assigned_to: str | None = None
    resolution_decision: str | None = None
    release_amount: Amount | None = None
    refund_amount: Amount | None = None
    decision_note: str | None = None
    resolved_by: str | None = None
    resolved_at: Time | None = None
    created_at: Time
    updated_at: Time


class MilestoneCreate(Body, frozen=True, kw_only=True):
    """One milestone of a new order; the amounts must add up to the order amount."""

    milestone_ref: str
    title: str
    amount: AmountIn


class OrderCreate(Body, frozen=True, kw_only=True):
    """``POST /orders``."""

    buyer_id: str
    seller_id: str
    amount: AmountIn
    title: str
    currency: Literal["USD"] | None = None
    description: str | None = None
    client_order_ref: str | None = None
    milestones: list[MilestoneCreate | dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None


class ReserveBody(Body, frozen=True, kw_only=True):
    """``POST /orders/{id}/reserve``: ``amount``, if sent, must equal the order amount."""

    amount: AmountIn | None = None


class CancelBody(Body, frozen=True, kw_only=True):
    """``POST /orders/{id}/cancel``."""

    reason: str | None = None


class ReleaseBody(Body, frozen=True, kw_only=True):
    """``POST /orders/{id}/resolution/release``."""

    reason: str | None = None


class RefundBody(Body, frozen=True, kw_only=True):
    """``POST /orders/{id}/resolution/refund`` (the reason is required)."""

    reason: str


class DisputeOpen(Body, frozen=True, kw_only=True):
    """``POST /orders/{id}/resolution/dispute``."""

    opened_by: Literal["BUYER", "SELLER"]
    reason: Literal["NOT_DELIVERED", "QUALITY_ISSUE", "OTHER"]
    evidence: list[str] | None = None
    description: str | None = None


class DisputeAssign(Body, frozen=True, kw_only=True):
    """``POST /disputes/{id}/assign``."""

    assigned_to: str


class DisputeResolve(Body, frozen=True, kw_only=True):
    """``POST /disputes/{id}/resolve``: amounts only with ``SPLIT``."""

    decision: Literal["FULL_RELEASE", "FULL_REFUND", "SPLIT"]
    release_amount: AmountIn | None = None
    refund_amount: AmountIn | None = None
    note: str | None = None
