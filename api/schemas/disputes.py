"""Dispute wire types (api.md 3.6, 4); opening a dispute is in ``api.schemas.orders``."""

from typing import Annotated, Literal

from msgspec import Meta

from api.schemas.common import Amount, RequestStruct, ResponseStruct, format_time
from common.money import format_amount
from flows import disputes as flows

__all__ = ["Dispute", "DisputeAssign", "DisputeResolve", "dispute_out"]


class DisputeAssign(RequestStruct, frozen=True):
    """``POST /disputes/{id}/assign``."""

    assigned_to: Annotated[str, Meta(min_length=1, max_length=255)]


class DisputeResolve(RequestStruct, frozen=True):
    """``POST /disputes/{id}/resolve``: amounts with SPLIT only (the domain checks the rest)."""

    decision: Literal["FULL_RELEASE", "FULL_REFUND", "SPLIT"]
    release_amount: Amount | None = None
    refund_amount: Amount | None = None
    note: Annotated[str, Meta(max_length=2000)] | None = None


class Dispute(ResponseStruct, frozen=True):
    """A dispute; amounts are gross, to the seller (release) and to the buyer (refund)."""

    id: str
    order_id: str
    status: str
    opened_by: str
    reason: str
    description: str | None
    evidence: list[str]
    assigned_to: str | None
    resolution_decision: str | None
    release_amount: str | None
    refund_amount: str | None
    decision_note: str | None
    resolved_by: str | None
    resolved_at: str | None
    created_at: str
    updated_at: str


def _amount(minor: int | None) -> str | None:
    return None if minor is None else format_amount(minor)


def dispute_out(dispute: flows.Dispute) -> Dispute:
    """The wire form of a dispute."""
    return Dispute(
        id=dispute.id,
        order_id=dispute.order_id,
        status=dispute.status,
        opened_by=dispute.opened_by,
        reason=dispute.reason,
        description=dispute.description,
        evidence=list(dispute.evidence),
        assigned_to=dispute.assigned_to,
        resolution_decision=dispute.resolution_decision,
        release_amount=_amount(dispute.release_amount_minor),
        refund_amount=_amount(dispute.refund_amount_minor),
        decision_note=dispute.decision_note,
        resolved_by=dispute.resolved_by,
        resolved_at=None if dispute.resolved_at is None else format_time(dispute.resolved_at),
        created_at=format_time(dispute.created_at),
        updated_at=format_time(dispute.updated_at),
    )
