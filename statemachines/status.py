"""One status enum per lifecycle; values are the UPPER_SNAKE labels of api.md section 5.

These values become PostgreSQL enum labels, so renaming one is a schema migration. The enums
are ``StrEnum`` so that a label read from the database (a plain ``str``) compares and hashes
equal to its member: a machine bound to a freshly loaded row finds its state without a
conversion step, and the member can be passed to the driver as the label itself.
"""

from enum import StrEnum, unique

__all__ = [
    "DisputeStatus",
    "EscrowStatus",
    "MilestoneStatus",
    "OrderStatus",
    "TopUpStatus",
    "WithdrawalStatus",
]


@unique
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


@unique
class EscrowStatus(StrEnum):
    """Escrow lifecycle (api.md 5.2); terminal: ``RELEASED``, ``REFUNDED``, ``FAILED``."""

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


@unique
class MilestoneStatus(StrEnum):
    """Milestone lifecycle (api.md 5.3); ``COMPLETED`` is terminal."""

    OPEN = "OPEN"
    COMPLETED = "COMPLETED"


@unique
class DisputeStatus(StrEnum):
    """Dispute lifecycle (api.md 5.4); ``RESOLVED`` is terminal."""

    OPEN = "OPEN"
    UNDER_REVIEW = "UNDER_REVIEW"
    RESOLVED = "RESOLVED"


@unique
class TopUpStatus(StrEnum):
    """Top-up (Airtm payin) lifecycle (api.md 5.5); succeeded, failed and canceled are terminal."""

    TOPUP_CREATED = "TOPUP_CREATED"
    TOPUP_AWAITING_USER_CONFIRMATION = "TOPUP_AWAITING_USER_CONFIRMATION"
    TOPUP_PROCESSING = "TOPUP_PROCESSING"
    TOPUP_SUCCEEDED = "TOPUP_SUCCEEDED"
    TOPUP_FAILED = "TOPUP_FAILED"
    TOPUP_CANCELED = "TOPUP_CANCELED"


@unique
class WithdrawalStatus(StrEnum):
    """Withdrawal lifecycle (api.md 5.6); completed, failed and canceled are terminal."""

    WITHDRAWAL_CREATED = "WITHDRAWAL_CREATED"
    WITHDRAWAL_COMMITTED = "WITHDRAWAL_COMMITTED"
    WITHDRAWAL_PENDING = "WITHDRAWAL_PENDING"
    WITHDRAWAL_PENDING_USER_ACTION = "WITHDRAWAL_PENDING_USER_ACTION"
    WITHDRAWAL_COMPLETED = "WITHDRAWAL_COMPLETED"
    WITHDRAWAL_FAILED = "WITHDRAWAL_FAILED"
    WITHDRAWAL_CANCELED = "WITHDRAWAL_CANCELED"
