"""Top-up wire types (api.md 3.7, 4): the create and cancel bodies and the TopUp resource."""

from datetime import datetime
from typing import Annotated, Any

from msgspec import Meta

from api.schemas.common import Amount, Currency, RequestStruct, ResponseStruct, format_time
from common.money import format_amount
from flows.queries.topups import TopUp as TopUpRow

__all__ = ["TopUp", "TopUpCancel", "TopUpCreate", "topup_out"]

Url = Annotated[str, Meta(min_length=1, max_length=2048)]


class TopUpCreate(RequestStruct, frozen=True):
    """``POST /topups``; the URLs must be https (checked by the route), metadata ≤ 8 KiB."""

    user_id: Annotated[str, Meta(min_length=1, max_length=255)]
    amount: Amount
    currency: Currency | None = None
    description: Annotated[str, Meta(max_length=255)] | None = None
    return_url: Url | None = None
    cancel_url: Url | None = None
    metadata: dict[str, Any] | None = None


class TopUpCancel(RequestStruct, frozen=True):
    """``POST /topups/{id}/cancel``."""

    reason: Annotated[str, Meta(max_length=500)] | None = None


class TopUp(ResponseStruct, frozen=True):
    """A top-up (an Airtm payin that credits the user once it is confirmed)."""

    id: str
    user_id: str
    amount: str
    currency: str
    status: str
    confirmation_uri: str | None
    return_url: str
    cancel_url: str
    description: str | None
    airtm_payin_id: str | None
    provider_fee: str | None
    failure_code: str | None
    failure_reason: str | None
    expires_at: str | None
    metadata: dict[str, Any] | None
    created_at: str
    updated_at: str
    completed_at: str | None


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


def topup_out(row: TopUpRow) -> TopUp:
    """The wire form of a ``topups`` row."""
    fee = row.provider_fee_minor
    return TopUp(
        id=row.id,
        user_id=row.user_id,
        amount=format_amount(row.amount_minor),
        currency=row.currency,
        status=row.status,
        confirmation_uri=row.confirmation_uri,
        return_url=row.return_url,
        cancel_url=row.cancel_url,
        description=row.description,
        airtm_payin_id=row.airtm_payin_id,
        provider_fee=None if fee is None else format_amount(fee),
        failure_code=row.failure_code,
        failure_reason=row.failure_reason,
        expires_at=_time(row.expires_at),
        metadata=row.metadata,
        created_at=format_time(row.created_at),
        updated_at=format_time(row.updated_at),
        completed_at=_time(row.completed_at),
    )
