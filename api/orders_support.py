"""Helpers of the order and dispute routes: query filters, order limits, operation answers.

Long-running actions (api.md 1.9) end the same way: wake the runner, wait (bounded) for the
operation the request started, re-read the resource in a fresh snapshot and answer 200/201 when
the operation ended, 202 with ``Location`` while it still runs, or the operation's error when it
FAILED (its compensation already committed with the operation's final transaction).
"""

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

import asyncpg
import msgspec
from litestar import Request

from api.config import AMOUNT_LIMITS, check_amount_limit
from api.database import read
from api.errors import invalid
from api.idempotency import Reply
from api.paths import API_PREFIX
from api.runtime import AppRuntime
from api.schemas.orders import order_out
from flows import orders
from flows.order_views import Order, operation_error
from flows.queries.operations import Operation, OperationStatus

__all__ = [
    "ORDER_AMOUNT_MAX_MINOR",
    "ORDER_AMOUNT_MIN_MINOR",
    "await_operation",
    "check_metadata",
    "check_order_amount",
    "choice_filter",
    "order_location",
    "order_operation_reply",
    "status_filter",
    "time_filter",
]

# The order limits of api.md 1.6 until /config publishes its own (the domain enforces none):
# one cent up to one million USD.
# The published limits (/config); one table in api.config.
ORDER_AMOUNT_MIN_MINOR, ORDER_AMOUNT_MAX_MINOR = AMOUNT_LIMITS["order"]
METADATA_BYTES_MAX: Final = 8 * 1024

# RFC 3339 with a time and a zone (api.md 1.7); a date alone is refused.
_RFC3339: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.(\d{1,9}))?(?:[Zz]|[+-]\d{2}:\d{2})"
)


def order_location(order_id: str) -> str:
    """The URL of an order."""
    return f"{API_PREFIX}/orders/{order_id}"


def check_order_amount(amount_minor: int) -> None:
    """400 ``INVALID_AMOUNT`` with ``details {min, max}`` outside the order limits."""
    check_amount_limit("order", amount_minor)


def check_metadata(metadata: dict[str, Any] | None, field: str = "metadata") -> None:
    """400 ``VALIDATION_ERROR`` when ``metadata`` serialises to more than 8 KiB."""
    if metadata is not None and len(msgspec.json.encode(metadata)) > METADATA_BYTES_MAX:
        raise invalid(field, "must be at most 8 KiB serialised")


def time_filter(name: str, value: str | None) -> datetime | None:
    """A ``created_after``-style query value as an aware datetime (UTC or offset kept)."""
    if value is None:
        return None
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise invalid(f"query.{name}", "must be an RFC 3339 time with a zone")
    fraction = match.group(1)
    if fraction is not None and len(fraction) > 6:
        # Python keeps microseconds; finer digits cannot matter to a created_at bound.
        value = value.replace("." + fraction, "." + fraction[:6], 1)
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError:
        raise invalid(f"query.{name}", "must be an RFC 3339 time with a zone") from None


def status_filter(name: str, value: str | None, allowed: Iterable[str]) -> list[str] | None:
    """One status or a comma list of them, each one of ``allowed``; sorted, deduplicated."""
    if value is None:
        return None
    known = tuple(allowed)
    wanted = sorted({part.strip() for part in value.split(",")})
    if any(part not in known for part in wanted):
        raise invalid(f"query.{name}", f"must be one or a comma list of {', '.join(known)}")
    return wanted


def choice_filter(name: str, value: str | None, allowed: Iterable[str]) -> str | None:
    """A single value that must be one of ``allowed``."""
    known = tuple(allowed)
    if value is not None and value not in known:
        raise invalid(f"query.{name}", f"must be one of {', '.join(known)}")
    return value


async def await_operation(runtime: AppRuntime, marketplace_id: str, operation_id: str) -> bool:
    """Wake the runner and wait (bounded) for the operation; whether it ended.

    Raises:
        AppError: the operation FAILED (``operation_error``: 502 ``PROVIDER_ERROR`` or a 422
            business code, ``details.operation_id``).
    """
    runtime.started()
    ended: Operation = await runtime.wait(marketplace_id, operation_id)
    if ended.status is OperationStatus.FAILED:
        raise operation_error(ended)
    return ended.status is OperationStatus.SUCCEEDED


async def order_operation_reply(
    request: Request[Any, Any, Any],
    runtime: AppRuntime,
    marketplace_id: str,
    order: Order,
    *,
    done_status: int = 200,
) -> Reply:
    """The answer of a long-running order action whose work returned ``order``.

    ``done_status`` (200 for actions, 201 for the escrow creation) when the order's latest
    operation ended within the wait, 202 with ``Location`` while it runs.
    """
    assert order.operation is not None, f"order {order.id} has no operation to wait for"
    ended = await await_operation(runtime, marketplace_id, order.operation.id)

    async def fetch(conn: asyncpg.Connection) -> Order:
        return await orders.get_order(conn, marketplace_id=marketplace_id, order_id=order.id)

    current = order_out(await read(request, fetch))
    location = order_location(order.id)
    if not ended:
        return Reply(current, status_code=202, location=location)
    return Reply(
        current, status_code=done_status, location=location if done_status == 201 else None
    )
