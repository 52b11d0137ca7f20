"""Orders, escrow, milestones, resolution (api.md 3.5, 3.6) and disputes.

Actions that start a provider operation (escrow, fund, release, refund, resolve) answer with
the resource in its final state, or in an intermediate one when the operation outlasts the
server's wait (HTTP 202): then follow it with :meth:`Orders.wait_for_status`.
"""

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Literal

from offerhub_client._call import M, Resource, Twin, endpoint, paginated
from offerhub_client.models.common import AmountIn, Page
from offerhub_client.models.orders import (
    CancelBody,
    Dispute,
    DisputeAssign,
    DisputeOpen,
    DisputeResolve,
    Milestone,
    MilestoneCreate,
    Order,
    OrderCreate,
    RefundBody,
    ReleaseBody,
    ReserveBody,
)
from offerhub_client.waiting import DEFAULT_POLL_S, wait_for_order, wait_for_order_async

__all__ = ["Disputes", "Orders"]

Filter = str | Sequence[str] | None
When = datetime | str | None


def _wait_blocking(
    resource: "Orders[Any]",
    order_id: str,
    statuses: str | Collection[str],
    *,
    timeout_s: float = 60.0,
    poll_s: float = DEFAULT_POLL_S,
) -> Order:
    """Poll the order until its status is one of ``statuses``; return it.

    Raises ``UnexpectedState`` when it closed otherwise or its operation FAILED, and
    ``WaitTimeout`` after ``timeout_s``.
    """
    wanted = {statuses} if isinstance(statuses, str) else set(statuses)
    request = Orders.get.request(order_id)
    return wait_for_order(
        lambda: resource._transport.run(request), wanted, timeout_s=timeout_s, poll_s=poll_s
    )


async def _wait_async(
    resource: "Orders[Any]",
    order_id: str,
    statuses: str | Collection[str],
    *,
    timeout_s: float = 60.0,
    poll_s: float = DEFAULT_POLL_S,
) -> Order:
    """Poll the order until its status is one of ``statuses``; return it (asyncio)."""
    wanted = {statuses} if isinstance(statuses, str) else set(statuses)
    request = Orders.get.request(order_id)
    return await wait_for_order_async(
        lambda: resource._transport.run(request), wanted, timeout_s=timeout_s, poll_s=poll_s
    )


class Orders(Resource[M]):
    """``client.orders``: create, read and drive orders through their lifecycle."""

    @endpoint("POST", "/orders", Order, body=OrderCreate)
    @staticmethod
    def create(
        *,
        buyer_id: str,
        seller_id: str,
        amount: AmountIn,
        title: str,
        currency: Literal["USD"] | None = None,
        description: str | None = None,
        client_order_ref: str | None = None,
        milestones: Sequence[MilestoneCreate | dict[str, Any]] | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Create an order (``ORDER_CREATED``); milestone amounts must add up to ``amount``."""
        return locals()

    @endpoint("GET", "/orders", Page[Order])
    @staticmethod
    def list(
        *,
        status: Filter = None,
        buyer_id: str | None = None,
        seller_id: str | None = None,
        user_id: str | None = None,
        client_order_ref: str | None = None,
        created_after: When = None,
        created_before: When = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of orders, newest first (``status`` may be a list)."""
        return locals()

    list_all = paginated(list)

    @endpoint("GET", "/orders/{order_id}", Order)
    @staticmethod
    def get(order_id: str) -> dict[str, Any]:
        """One order with its milestones, escrow and latest operation."""
        return locals()

    @endpoint("POST", "/orders/{order_id}/reserve", Order, body=ReserveBody)
    @staticmethod
    def reserve(
        order_id: str, *, amount: AmountIn | None = None, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Reserve the order amount from the buyer's balance (``FUNDS_RESERVED``)."""
        return locals()

    @endpoint("POST", "/orders/{order_id}/cancel", Order, body=CancelBody)
    @staticmethod
    def cancel(
        order_id: str, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Cancel before the escrow; a reservation is voided (``CLOSED``, ``CANCELED``)."""
        return locals()

    @endpoint("POST", "/orders/{order_id}/escrow", Order)
    @staticmethod
    def create_escrow(order_id: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Deploy the escrow contract (``ESCROW_FUNDING``; ``ESCROW_CREATING`` on 202)."""
        return locals()

    @endpoint("POST", "/orders/{order_id}/escrow/fund", Order)
    @staticmethod
    def fund_escrow(order_id: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Fund the escrow from the buyer's wallet (``IN_PROGRESS``; ``ESCROW_FUNDING`` on 202)."""
        return locals()

    @endpoint("GET", "/orders/{order_id}/milestones", Page[Milestone])
    @staticmethod
    def milestones(order_id: str) -> dict[str, Any]:
        """Every milestone of the order (one page)."""
        return locals()

    @endpoint("POST", "/orders/{order_id}/milestones/{milestone_ref}/complete", Milestone)
    @staticmethod
    def complete_milestone(
        order_id: str, milestone_ref: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Mark a milestone ``COMPLETED`` (order ``IN_PROGRESS``)."""
        return locals()

    @endpoint("POST", "/orders/{order_id}/resolution/release", Order, body=ReleaseBody)
    @staticmethod
    def release(
        order_id: str, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Release the escrow to the seller (``CLOSED``/``RELEASED``; 202 ``RELEASE_REQUESTED``)."""
        return locals()

    @endpoint("POST", "/orders/{order_id}/resolution/refund", Order, body=RefundBody)
    @staticmethod
    def refund(order_id: str, *, reason: str, idempotency_key: str | None = None) -> dict[str, Any]:
        """Refund the escrow to the buyer (``CLOSED``/``REFUNDED``; 202 ``REFUND_REQUESTED``)."""
        return locals()

    @endpoint("POST", "/orders/{order_id}/resolution/dispute", Dispute, body=DisputeOpen)
    @staticmethod
    def open_dispute(
        order_id: str,
        *,
        opened_by: Literal["BUYER", "SELLER"],
        reason: Literal["NOT_DELIVERED", "QUALITY_ISSUE", "OTHER"],
        evidence: Sequence[str] | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Open a dispute on an ``IN_PROGRESS`` order (order and escrow become ``DISPUTED``)."""
        return locals()

    wait_for_status = Twin(_wait_blocking, _wait_async)


class Disputes(Resource[M]):
    """``client.disputes``: read, assign and resolve disputes (assign/resolve: ``support``)."""

    @endpoint("GET", "/disputes", Page[Dispute])
    @staticmethod
    def list(
        *,
        order_id: str | None = None,
        status: Filter = None,
        opened_by: str | None = None,
        assigned_to: str | None = None,
        created_after: When = None,
        created_before: When = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of disputes, newest first."""
        return locals()

    list_all = paginated(list)

    @endpoint("GET", "/disputes/{dispute_id}", Dispute)
    @staticmethod
    def get(dispute_id: str) -> dict[str, Any]:
        """One dispute."""
        return locals()

    @endpoint("POST", "/disputes/{dispute_id}/assign", Dispute, body=DisputeAssign)
    @staticmethod
    def assign(
        dispute_id: str, *, assigned_to: str, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Assign (or re-assign) the dispute (``UNDER_REVIEW``)."""
        return locals()

    @endpoint("POST", "/disputes/{dispute_id}/resolve", Dispute, body=DisputeResolve)
    @staticmethod
    def resolve(
        dispute_id: str,
        *,
        decision: Literal["FULL_RELEASE", "FULL_REFUND", "SPLIT"],
        release_amount: AmountIn | None = None,
        refund_amount: AmountIn | None = None,
        note: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Resolve on chain (``RESOLVED``; 202 ``UNDER_REVIEW`` while it runs)."""
        return locals()
