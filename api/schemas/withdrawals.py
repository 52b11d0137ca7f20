"""Withdrawal wire types (api.md 3.8, 4): the create and cancel bodies and the resource."""

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from api.schemas.common import Amount, Currency, RequestStruct, ResponseStruct, format_time
from common.money import format_amount
from flows.queries.withdrawals import Withdrawal as WithdrawalRow

__all__ = ["Withdrawal", "WithdrawalCancel", "WithdrawalCreate", "withdrawal_out"]


class WithdrawalCreate(RequestStruct, frozen=True):
    """``POST /withdrawals``.

    ``destination_ref``: a Stellar ``G…`` address (crypto, required) or an Airtm email (default:
    the linked account). ``memo`` is crypto only, a text memo of at most 28 bytes (the domain
    counts the bytes). ``commit`` is for Airtm; a crypto withdrawal always commits at once.
    """

    user_id: Annotated[str, Meta(min_length=1, max_length=255)]
    amount: Amount
    destination_type: Literal["crypto", "airtm_balance"]
    currency: Currency | None = None
    destination_ref: Annotated[str, Meta(min_length=1, max_length=254)] | None = None
    memo: Annotated[str, Meta(max_length=28)] | None = None
    commit: bool | None = None
    description: Annotated[str, Meta(max_length=255)] | None = None


class WithdrawalCancel(RequestStruct, frozen=True):
    """``POST /withdrawals/{id}/cancel``."""

    reason: Annotated[str, Meta(max_length=500)] | None = None


class Withdrawal(ResponseStruct, frozen=True):
    """A withdrawal to a Stellar address or an Airtm account."""

    id: str
    user_id: str
    amount: str
    currency: str
    status: str
    destination_type: str
    destination_ref: str
    memo: str | None
    committed: bool
    airtm_payout_id: str | None
    transaction_hash: str | None
    failure_code: str | None
    failure_reason: str | None
    description: str | None
    created_at: str
    updated_at: str
    completed_at: str | None


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


def withdrawal_out(row: WithdrawalRow) -> Withdrawal:
    """The wire form of a ``withdrawals`` row."""
    return Withdrawal(
        id=row.id,
        user_id=row.user_id,
        amount=format_amount(row.amount_minor),
        currency=row.currency,
        status=row.status,
        destination_type=row.destination_type,
        destination_ref=row.destination_ref,
        memo=row.memo,
        committed=row.committed,
        airtm_payout_id=row.airtm_payout_id,
        transaction_hash=row.transaction_hash,
        failure_code=row.failure_code,
        failure_reason=row.failure_reason,
        description=row.description,
        created_at=format_time(row.created_at),
        updated_at=format_time(row.updated_at),
        completed_at=_time(row.completed_at),
    )
