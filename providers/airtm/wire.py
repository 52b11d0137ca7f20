"""Airtm's JSON shapes (camelCase, Decimal amounts) and their exact mapping to the port types.

Decoders and the encoder are created once (msgspec perf tips). Amounts are decoded as Decimal
from the literal number text and converted with ``amounts``; they never pass through a float.
Unknown response fields are ignored so Airtm can add fields without breaking us.
"""

from decimal import Decimal

import msgspec

from providers.airtm.amounts import airtm_to_minor, minor_to_airtm
from providers.airtm.port import (
    AirtmUser,
    Balance,
    Payin,
    PayinCreate,
    Payout,
    PayoutCreate,
    PayoutEvent,
    parse_payin_status,
    parse_payout_status,
)

__all__ = [
    "BALANCE_DECODER",
    "ENCODER",
    "ERROR_DECODER",
    "EVENTS_DECODER",
    "PAYIN_DECODER",
    "PAYOUT_DECODER",
    "USER_DECODER",
    "WEBHOOK_DECODER",
    "WireBalance",
    "WireError",
    "WirePayin",
    "WirePayout",
    "WirePayoutEvent",
    "WireUser",
    "WireWebhook",
    "balance_from_wire",
    "events_from_wire",
    "payin_from_wire",
    "payin_request_body",
    "payout_from_wire",
    "payout_request_body",
    "user_from_wire",
]


class _Wire(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Base of every Airtm JSON shape."""


class WirePayinItem(_Wire, frozen=True):
    """One line of a payin; Airtm requires Σ amount × quantity == the payin amount."""

    description: str
    amount: Decimal
    quantity: int


class WirePayinCreate(_Wire, frozen=True, omit_defaults=True):
    """Body of ``POST /payins``."""

    code: str
    amount: Decimal
    description: str
    items: list[WirePayinItem]
    confirmation_uri: str
    cancel_uri: str


class WirePayoutCreate(_Wire, frozen=True, omit_defaults=True):
    """Body of ``POST /payouts``."""

    code: str
    airtm_user_email: str
    amount: Decimal
    notes: str
    commit: bool
    enterprise_fee: Decimal | None = None
    internal_note: str | None = None
    require_id_verified: bool | None = None


class WirePayin(_Wire, frozen=True):
    """A payin as Airtm returns it."""

    id: str
    code: str
    status: str
    amount: Decimal
    net_amount: Decimal
    airtm_fee: Decimal
    description: str = ""
    confirmation_uri: str | None = None
    cancel_uri: str | None = None
    airtm_user_id: str | None = None
    airtm_user_email: str | None = None
    failure_reason: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class WirePayout(_Wire, frozen=True):
    """A payout as Airtm returns it."""

    id: str
    code: str
    status: str
    gross_amount: Decimal
    amount: Decimal
    net_amount: Decimal
    airtm_fee: Decimal
    airtm_user_email: str
    enterprise_fee: Decimal = Decimal(0)
    airtm_user_id: str | None = None
    # Observed as text in the docs; accept a number too rather than fail a whole read.
    reason_code: str | int | None = None
    reason_description: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class WirePayoutEvent(_Wire, frozen=True):
    """One entry of ``GET /payouts/{id}/events`` (shape uncertain: status + timestamp)."""

    status: str
    created_at: str | None = None


class WireBalance(_Wire, frozen=True):
    """``GET /me/balance``."""

    available: Decimal
    pending: Decimal


class WireUser(_Wire, frozen=True):
    """``GET /users/{email}``; ``firstName``/``lastName`` are not used and so not declared."""

    id: str
    status: str
    primary_email: str
    # Absent means not verified: linking needs Airtm to say yes, never a default yes.
    is_verified: bool = False
    country: str | None = None


class WireError(_Wire, frozen=True):
    """Airtm's error body ``{code, message, data?}``."""

    code: int | str
    message: str = ""


class WireWebhook(_Wire, frozen=True):
    """A webhook body ``{type, data}``; ``data`` is decoded once the type is known."""

    type: str
    data: msgspec.Raw


ENCODER = msgspec.json.Encoder(decimal_format="number")
PAYIN_DECODER = msgspec.json.Decoder(WirePayin)
PAYOUT_DECODER = msgspec.json.Decoder(WirePayout)
EVENTS_DECODER = msgspec.json.Decoder(list[WirePayoutEvent])
BALANCE_DECODER = msgspec.json.Decoder(WireBalance)
USER_DECODER = msgspec.json.Decoder(WireUser)
ERROR_DECODER = msgspec.json.Decoder(WireError)
WEBHOOK_DECODER = msgspec.json.Decoder(WireWebhook)


def payin_request_body(request: PayinCreate) -> bytes:
    """Encode a payin request with one item carrying the whole amount."""
    amount = minor_to_airtm(request.amount_minor)
    item = WirePayinItem(description=request.description, amount=amount, quantity=1)
    body = WirePayinCreate(
        code=request.code,
        amount=amount,
        description=request.description,
        items=[item],
        confirmation_uri=request.confirmation_uri,
        cancel_uri=request.cancel_uri,
    )
    return ENCODER.encode(body)


def payout_request_body(request: PayoutCreate, *, commit: bool) -> bytes:
    """Encode a payout request; a zero enterprise fee is left out rather than sent as 0."""
    fee = request.enterprise_fee_minor
    body = WirePayoutCreate(
        code=request.code,
        airtm_user_email=request.recipient_email,
        amount=minor_to_airtm(request.amount_minor),
        notes=request.notes,
        commit=commit,
        enterprise_fee=minor_to_airtm(fee) if fee else None,
        internal_note=request.internal_note,
        require_id_verified=request.require_id_verified or None,
    )
    return ENCODER.encode(body)


def payin_from_wire(wire: WirePayin) -> Payin:
    """Convert a decoded payin; raises AirtmAmountError on a non-cent amount."""
    return Payin(
        id=wire.id,
        code=wire.code,
        status=parse_payin_status(wire.status),
        raw_status=wire.status,
        amount_minor=airtm_to_minor(wire.amount),
        net_amount_minor=airtm_to_minor(wire.net_amount),
        airtm_fee_minor=airtm_to_minor(wire.airtm_fee),
        description=wire.description,
        confirmation_uri=wire.confirmation_uri,
        cancel_uri=wire.cancel_uri,
        airtm_user_id=wire.airtm_user_id,
        airtm_user_email=wire.airtm_user_email,
        failure_reason=wire.failure_reason,
        created_at=wire.created_at,
        updated_at=wire.updated_at,
    )


def payout_from_wire(wire: WirePayout) -> Payout:
    """Convert a decoded payout; raises AirtmAmountError on a non-cent amount."""
    return Payout(
        id=wire.id,
        code=wire.code,
        status=parse_payout_status(wire.status),
        raw_status=wire.status,
        gross_amount_minor=airtm_to_minor(wire.gross_amount),
        amount_minor=airtm_to_minor(wire.amount),
        net_amount_minor=airtm_to_minor(wire.net_amount),
        airtm_fee_minor=airtm_to_minor(wire.airtm_fee),
        enterprise_fee_minor=airtm_to_minor(wire.enterprise_fee),
        airtm_user_email=wire.airtm_user_email,
        airtm_user_id=wire.airtm_user_id,
        reason_code=None if wire.reason_code is None else str(wire.reason_code),
        reason_description=wire.reason_description,
        created_at=wire.created_at,
        updated_at=wire.updated_at,
    )


def events_from_wire(wire: list[WirePayoutEvent]) -> tuple[PayoutEvent, ...]:
    """Convert a payout's status history."""
    return tuple(
        PayoutEvent(
            status=parse_payout_status(event.status),
            raw_status=event.status,
            created_at=event.created_at,
        )
        for event in wire
    )


def balance_from_wire(wire: WireBalance) -> Balance:
    """Convert the enterprise balance."""
    return Balance(
        available_minor=airtm_to_minor(wire.available),
        pending_minor=airtm_to_minor(wire.pending),
    )


def user_from_wire(wire: WireUser) -> AirtmUser:
    """Convert an Airtm account; ``status`` is kept as Airtm wrote it."""
    return AirtmUser(
        id=wire.id,
        email=wire.primary_email,
        status=wire.status,
        is_verified=wire.is_verified,
        country=wire.country,
    )
