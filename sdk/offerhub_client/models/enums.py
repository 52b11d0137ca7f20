"""Known values of the API's enum fields (api.md 4-6), as ``StrEnum`` classes.

Response models keep these fields as ``str``: a value added within v1 decodes fine and simply
compares unequal to every member here. A ``StrEnum`` member compares equal to its string, so
``order.status == OrderStatus.IN_PROGRESS`` works. :data:`FIELD_ENUMS` says which model field
each enum describes (the drift test checks them against the server).
"""

from collections.abc import Mapping
from enum import StrEnum
from typing import Final

__all__ = [
    "FIELD_ENUMS",
    "TERMINAL_ORDER_STATUSES",
    "ApiKeyStatus",
    "CloseReason",
    "DisputeDecision",
    "DisputeStatus",
    "EscrowStatus",
    "EventType",
    "MilestoneStatus",
    "OperationKind",
    "OperationStatus",
    "OrderStatus",
    "ReconciliationItemStatus",
    "ReconciliationRunStatus",
    "TopUpStatus",
    "TransferDirection",
    "WebhookDeliveryStatus",
    "WithdrawalStatus",
]


class OrderStatus(StrEnum):
    """Order lifecycle (api.md 5.1); ``CLOSED`` is the only terminal status."""

    ORDER_CREATED = "ORDER_CREATED"
    FUNDS_RESERVED = "FUNDS_RESERVED"
    ESCROW_CREATING = "ESCROW_CREATING"
    ESCROW_FUNDING = "ESCROW_FUNDING"
    ESCROW_FUNDED = "ESCROW_FUNDED"
    IN_PROGRESS = "IN_PROGRESS"
    RELEASE_REQUESTED = "RELEASE_REQUESTED"
    REFUND_REQUESTED = "REFUND_REQUESTED"
    DISPUTED = "DISPUTED"
    RELEASED = "RELEASED"
    REFUNDED = "REFUNDED"
    CLOSED = "CLOSED"


class CloseReason(StrEnum):
    """Why a ``CLOSED`` order closed."""

    CANCELED = "CANCELED"
    RELEASED = "RELEASED"
    REFUNDED = "REFUNDED"
    SPLIT = "SPLIT"


class EscrowStatus(StrEnum):
    """Escrow lifecycle (api.md 5.2)."""

    CREATING = "CREATING"
    CREATED = "CREATED"
    FUNDING = "FUNDING"
    FUNDED = "FUNDED"
    RELEASING = "RELEASING"
    REFUNDING = "REFUNDING"
    DISPUTED = "DISPUTED"
    RELEASED = "RELEASED"
    REFUNDED = "REFUNDED"
    FAILED = "FAILED"


class MilestoneStatus(StrEnum):
    """Milestone lifecycle (api.md 5.3)."""

    OPEN = "OPEN"
    COMPLETED = "COMPLETED"


class DisputeStatus(StrEnum):
    """Dispute lifecycle (api.md 5.4)."""

    OPEN = "OPEN"
    UNDER_REVIEW = "UNDER_REVIEW"
    RESOLVED = "RESOLVED"


class DisputeDecision(StrEnum):
    """How a dispute is resolved."""

    FULL_RELEASE = "FULL_RELEASE"
    FULL_REFUND = "FULL_REFUND"
    SPLIT = "SPLIT"


class TopUpStatus(StrEnum):
    """Top-up lifecycle (api.md 5.5)."""

    TOPUP_CREATED = "TOPUP_CREATED"
    TOPUP_AWAITING_USER_CONFIRMATION = "TOPUP_AWAITING_USER_CONFIRMATION"
    TOPUP_PROCESSING = "TOPUP_PROCESSING"
    TOPUP_SUCCEEDED = "TOPUP_SUCCEEDED"
    TOPUP_FAILED = "TOPUP_FAILED"
    TOPUP_CANCELED = "TOPUP_CANCELED"


class WithdrawalStatus(StrEnum):
    """Withdrawal lifecycle (api.md 5.6)."""

    WITHDRAWAL_CREATED = "WITHDRAWAL_CREATED"
    WITHDRAWAL_COMMITTED = "WITHDRAWAL_COMMITTED"
    WITHDRAWAL_PENDING = "WITHDRAWAL_PENDING"
    WITHDRAWAL_PENDING_USER_ACTION = "WITHDRAWAL_PENDING_USER_ACTION"
    WITHDRAWAL_COMPLETED = "WITHDRAWAL_COMPLETED"
    WITHDRAWAL_FAILED = "WITHDRAWAL_FAILED"
    WITHDRAWAL_CANCELED = "WITHDRAWAL_CANCELED"


class OperationKind(StrEnum):
    """What a durable operation does."""

    ESCROW_CREATE = "ESCROW_CREATE"
    ESCROW_FUND = "ESCROW_FUND"
    RELEASE = "RELEASE"
    REFUND = "REFUND"
    DISPUTE_RESOLVE = "DISPUTE_RESOLVE"


class OperationStatus(StrEnum):
    """Where a durable operation is."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class ApiKeyStatus(StrEnum):
    """Whether a key still works."""

    ACTIVE = "ACTIVE"
    REVOKED = "REVOKED"


class WebhookDeliveryStatus(StrEnum):
    """Where a webhook delivery is."""

    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


class ReconciliationRunStatus(StrEnum):
    """Where a reconciliation run is."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class ReconciliationItemStatus(StrEnum):
    """The outcome of one reconciliation check."""

    MATCHED = "MATCHED"
    MISMATCH = "MISMATCH"
    MISSING_IN_LEDGER = "MISSING_IN_LEDGER"
    MISSING_AT_PROVIDER = "MISSING_AT_PROVIDER"


class TransferDirection(StrEnum):
    """Direction of a wallet transaction."""

    IN = "IN"
    OUT = "OUT"


class EventType(StrEnum):
    """Every event type of api.md 6.2."""

    USER_CREATED = "user.created"
    USER_AIRTM_LINKED = "user.airtm_linked"
    WALLET_CREATED = "wallet.created"
    BALANCE_CREDITED = "balance.credited"
    BALANCE_DEBITED = "balance.debited"
    BALANCE_RESERVED = "balance.reserved"
    BALANCE_RELEASED = "balance.released"
    TOPUP_CREATED = "topup.created"
    TOPUP_CONFIRMATION_REQUIRED = "topup.confirmation_required"
    TOPUP_PROCESSING = "topup.processing"
    TOPUP_SUCCEEDED = "topup.succeeded"
    TOPUP_FAILED = "topup.failed"
    TOPUP_CANCELED = "topup.canceled"
    ORDER_CREATED = "order.created"
    ORDER_FUNDS_RESERVED = "order.funds_reserved"
    ORDER_ESCROW_CREATING = "order.escrow_creating"
    ORDER_ESCROW_FUNDING = "order.escrow_funding"
    ORDER_ESCROW_FUNDED = "order.escrow_funded"
    ORDER_IN_PROGRESS = "order.in_progress"
    ORDER_RELEASE_REQUESTED = "order.release_requested"
    ORDER_REFUND_REQUESTED = "order.refund_requested"
    ORDER_RELEASED = "order.released"
    ORDER_REFUNDED = "order.refunded"
    ORDER_DISPUTED = "order.disputed"
    ORDER_CANCELED = "order.canceled"
    ORDER_CLOSED = "order.closed"
    ORDER_OPERATION_FAILED = "order.operation_failed"
    ESCROW_CREATED = "escrow.created"
    ESCROW_FUNDING_STARTED = "escrow.funding_started"
    ESCROW_FUNDED = "escrow.funded"
    ESCROW_MILESTONE_COMPLETED = "escrow.milestone_completed"
    ESCROW_RELEASED = "escrow.released"
    ESCROW_REFUNDED = "escrow.refunded"
    DISPUTE_OPENED = "dispute.opened"
    DISPUTE_UNDER_REVIEW = "dispute.under_review"
    DISPUTE_RESOLVED = "dispute.resolved"
    WITHDRAWAL_CREATED = "withdrawal.created"
    WITHDRAWAL_COMMITTED = "withdrawal.committed"
    WITHDRAWAL_PENDING = "withdrawal.pending"
    WITHDRAWAL_PENDING_USER_ACTION = "withdrawal.pending_user_action"
    WITHDRAWAL_COMPLETED = "withdrawal.completed"
    WITHDRAWAL_FAILED = "withdrawal.failed"
    WITHDRAWAL_CANCELED = "withdrawal.canceled"
    RECONCILIATION_COMPLETED = "reconciliation.completed"
    RECONCILIATION_DRIFT_DETECTED = "reconciliation.drift_detected"


TERMINAL_ORDER_STATUSES: Final = frozenset({OrderStatus.CLOSED})

FIELD_ENUMS: Final[Mapping[tuple[str, str], type[StrEnum]]] = {
    ("Order", "status"): OrderStatus,
    ("Order", "close_reason"): CloseReason,
    ("Escrow", "status"): EscrowStatus,
    ("Milestone", "status"): MilestoneStatus,
    ("Dispute", "status"): DisputeStatus,
    ("Dispute", "resolution_decision"): DisputeDecision,
    ("TopUp", "status"): TopUpStatus,
    ("Withdrawal", "status"): WithdrawalStatus,
    ("Operation", "kind"): OperationKind,
    ("Operation", "status"): OperationStatus,
    ("ApiKey", "status"): ApiKeyStatus,
    ("CreatedApiKey", "status"): ApiKeyStatus,
    ("WebhookDelivery", "status"): WebhookDeliveryStatus,
    ("ReconciliationRun", "status"): ReconciliationRunStatus,
    ("ReconciliationItem", "status"): ReconciliationItemStatus,
    ("WalletTransaction", "direction"): TransferDirection,
    ("Event", "type"): EventType,
}
