"""What the order flows return: Order, Milestone, Escrow, Payout and Operation views.

Money stays in integer minor units (``*_minor``); the API renders it as decimal strings. An
Order carries its milestones, its latest escrow, its latest dispute id and its latest
operation, loaded for a whole page of orders in four queries.
"""

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import asyncpg
import msgspec

from common.errors import (
    AppError,
    EscrowFundingFailed,
    EscrowInsufficientFunds,
    ProviderFailure,
)
from flows.audit_redaction import redact
from flows.queries import escrows as escrow_queries
from flows.queries import orders as queries
from flows.queries.escrows import EscrowRow
from flows.queries.operations import Operation, OperationKind, OperationStatus
from flows.queries.orders import MilestoneRow, OrderRow

__all__ = [
    "Escrow",
    "Milestone",
    "OperationError",
    "Order",
    "OrderOperation",
    "OrderPage",
    "Payout",
    "escrow_view",
    "load_orders",
    "milestone_view",
    "operation_error",
]


# "SourceAccountBusy" -> "Source Account Busy": error names read as words in a message.
_WORD_START: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


class Milestone(msgspec.Struct, frozen=True, kw_only=True):
    """A milestone (api.md 4)."""

    id: str
    order_id: str
    milestone_ref: str
    title: str
    amount_minor: int
    status: str
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class Payout(msgspec.Struct, frozen=True, kw_only=True):
    """What one party received from the contract: gross, its share of each fee, and net."""

    party: str
    user_id: str
    gross_amount_minor: int
    platform_fee_minor: int
    trustless_work_fee_minor: int
    net_amount_minor: int
    transaction_hash: str | None


class Escrow(msgspec.Struct, frozen=True, kw_only=True):
    """An escrow (api.md 4); ``contract_id`` is the ``trustless_contract_id`` of the wire."""

    id: str
    order_id: str
    status: str
    amount_minor: int
    currency: str
    contract_id: str | None
    platform_fee_bps: int
    trustless_work_fee_bps: int
    funding_transaction_hash: str | None
    payouts: list[Payout]
    funded_at: datetime | None
    released_at: datetime | None
    refunded_at: datetime | None
    created_at: datetime
    updated_at: datetime


class OperationError(msgspec.Struct, frozen=True, kw_only=True):
    """The ``last_error`` of an Operation on the wire."""

    code: str
    message: str


class OrderOperation(msgspec.Struct, frozen=True, kw_only=True):
    """The latest durable operation of an order (api.md 4, Operation)."""

    id: str
    kind: str
    status: str
    step: str
    attempts: int
    last_error: OperationError | None
    started_at: datetime
    updated_at: datetime


class Order(msgspec.Struct, frozen=True, kw_only=True):
    """An order with its milestones, latest escrow, latest dispute and latest operation."""

    id: str
    client_order_ref: str | None
    buyer_id: str
    seller_id: str
    amount_minor: int
    currency: str
    status: str
    close_reason: str | None
    title: str
    description: str | None
    metadata: dict[str, Any] | None
    milestones: list[Milestone]
    escrow: Escrow | None
    dispute_id: str | None
    operation: OrderOperation | None
    reserve_transfer_id: str | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class OrderPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of orders, newest first; the next page starts after the last one."""

    data: list[Order]
    has_more: bool


def operation_error(operation: Operation) -> AppError:
    """The error an action answers with when its operation FAILED (api.md 1.9).

    ``details.operation_id`` names the operation. A refused funding is a 422 business error;
    every other definitive refusal is ``PROVIDER_ERROR``.
    """
    error = operation.last_error or {}
    reason = error.get("reason")
    message = str(error.get("message") or reason or "the provider refused the operation")
    if operation.kind is OperationKind.ESCROW_FUND:
        if reason == "insufficient_funds":
            return EscrowInsufficientFunds(operation_id=operation.id)
        return EscrowFundingFailed(provider_message=message, operation_id=operation.id)
    return ProviderFailure(
        message,
        provider=error.get("provider"),
        provider_status=error.get("status"),
        provider_message=message,
        operation_id=operation.id,
    )


def _retry_message(error: Mapping[str, Any]) -> str:
    """What a client reads of the transient error a running operation retries after.

    The recorded message, or else the error's name in words with its reason (a step's own
    retry such as ``{"error": "SourceAccountBusy"}`` has no message); secrets inside the text
    are redacted and emails masked, as in the audit log, since a provider may echo them.
    """
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = _WORD_START.sub(" ", str(error.get("error") or "error")).lower()
        reason = error.get("reason")
        if reason is not None and reason != "":
            message = f"{message} ({reason})"
    return str(redact(message))


def _operation_view(operation: Operation) -> OrderOperation:
    last_error = None
    if operation.status is OperationStatus.FAILED:
        failure = operation_error(operation)
        last_error = OperationError(code=failure.code, message=failure.message)
    elif operation.last_error is not None:
        # A running operation shows the transient error it is retrying after.
        last_error = OperationError(
            code=str(operation.last_error.get("code") or "PROVIDER_UNAVAILABLE"),
            message=_retry_message(operation.last_error),
        )
    return OrderOperation(
        id=operation.id,
        kind=operation.kind.value,
        status=operation.status.value,
        step=operation.step,
        attempts=operation.attempts,
        last_error=last_error,
        started_at=operation.created_at,
        updated_at=operation.updated_at,
    )


def milestone_view(row: MilestoneRow) -> Milestone:
    """The Milestone view of a row."""
    fields = msgspec.structs.asdict(row)
    del fields["marketplace_id"], fields["position"]
    return Milestone(**fields)


def escrow_view(row: EscrowRow) -> Escrow:
    """The Escrow view of a row."""
    fields = msgspec.structs.asdict(row)
    del fields["marketplace_id"]
    fields["payouts"] = msgspec.convert(row.payouts, type=list[Payout])
    return Escrow(**fields)


async def load_orders(
    conn: asyncpg.Connection, marketplace_id: str, rows: list[OrderRow]
) -> list[Order]:
    """Order views of ``rows`` (in the same order), with what each Order carries."""
    ids = [row.id for row in rows]
    milestones = await queries.milestones_of_orders(conn, marketplace_id, ids)
    escrows = await escrow_queries.escrows_of_orders(conn, marketplace_id, ids)
    disputes = await escrow_queries.latest_disputes_of_orders(conn, marketplace_id, ids)
    operations = await escrow_queries.latest_operations_of_orders(conn, marketplace_id, ids)
    orders = []
    for row in rows:
        fields = msgspec.structs.asdict(row)
        del fields["marketplace_id"]
        escrow = escrows.get(row.id)
        operation = operations.get(row.id)
        orders.append(
            Order(
                **fields,
                milestones=[milestone_view(m) for m in milestones.get(row.id, [])],
                escrow=None if escrow is None else escrow_view(escrow),
                dispute_id=disputes.get(row.id),
                operation=None if operation is None else _operation_view(operation),
            )
        )
    return orders
