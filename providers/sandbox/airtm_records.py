"""Records, errors and JSON shapes of the simulated Airtm (used by ``airtm_state`` and the app).

The JSON shapes are written here independently of the client's ``providers.airtm.wire`` so the
contract tests compare two readings of providers.md 4, not one struct with itself.
"""

import datetime
from decimal import Decimal
from typing import Annotated, Final

import msgspec

from providers.airtm.amounts import CENT_MINOR, AirtmAmountError, airtm_to_minor, minor_to_airtm
from providers.airtm.port import PayinStatus, PayoutStatus

__all__ = [
    "DAY_S",
    "ENCODER",
    "AirtmError",
    "AirtmStateConfig",
    "BalanceMovement",
    "BalanceView",
    "ErrorView",
    "EventView",
    "ItemRecord",
    "OutboxMessage",
    "PayinCreateBody",
    "PayinRecord",
    "PayoutCreateBody",
    "PayoutRecord",
    "SandboxUser",
    "UserView",
    "airtm_fee_minor",
    "iso_time",
    "render_payin",
    "render_payout",
    "render_user",
    "wire_minor",
]

DAY_S: Final = 86_400


class AirtmStateConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Knobs of the simulated enterprise; fees are whole basis points of the amount."""

    payin_fee_bps: int = 0
    payout_fee_bps: int = 0
    payin_expiry_s: int = 15 * DAY_S
    payout_pending_expiry_s: int = 90 * DAY_S
    restricted_countries: frozenset[str] = frozenset({"CU", "IR", "KP", "SY"})
    # Off: an unknown email gets a PENDING payout (sign-up needed). On: 415059 at create.
    reject_unknown_recipients: bool = False


# Error codes of providers.md 4.1 with the HTTP status the sandbox answers them with. Airtm's
# documentation gives the codes, not the statuses: these statuses are the sandbox's choice.
ERRORS: Final[dict[int, tuple[int, str]]] = {
    415029: (409, "Payin code already exists"),
    415031: (404, "Payin not found"),
    415030: (409, "Payin cannot be confirmed or canceled"),
    415053: (422, "US users cannot pay in"),
    415056: (409, "Payout code already exists"),
    415005: (404, "Payout not found"),
    415027: (409, "Payout already processed"),
    415055: (409, "Cannot cancel a payout that is not pending"),
    415016: (422, "Enterprise balance insufficient"),
    415059: (404, "Recipient not found"),
    415060: (422, "Recipient cannot receive payouts"),
    415061: (422, "Recipient is in a restricted territory"),
    415901: (400, "Bad request format"),
    415904: (401, "Unauthorized"),
    415905: (403, "Forbidden"),
    415999: (500, "Unexpected error"),
}


class AirtmError(Exception):
    """A refusal the simulated Airtm answers with ``{code, message}``."""

    def __init__(self, code: int, message: str | None = None) -> None:
        self.http_status, default_message = ERRORS[code]
        self.code = code
        self.message = message or default_message
        super().__init__(f"{code}: {self.message}")


class _Camel(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """Base of the JSON shapes."""


NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class PayinItemBody(_Camel, frozen=True):
    """A payin line as posted."""

    description: str
    amount: Decimal
    quantity: Annotated[int, msgspec.Meta(ge=1)]


class PayinCreateBody(_Camel, frozen=True):
    """``POST /payins`` body."""

    code: NonEmpty
    amount: Decimal
    description: str
    items: Annotated[list[PayinItemBody], msgspec.Meta(min_length=1)]
    confirmation_uri: str
    cancel_uri: str


class PayoutCreateBody(_Camel, frozen=True):
    """``POST /payouts`` body."""

    code: NonEmpty
    airtm_user_email: NonEmpty
    amount: Decimal
    notes: str = ""
    commit: bool = False
    enterprise_fee: Decimal | None = None
    internal_note: str | None = None
    require_id_verified: bool = False


class ItemView(_Camel, frozen=True):
    """A payin line as returned."""

    description: str
    amount: Decimal
    quantity: int


class PayinView(_Camel, frozen=True):
    """A payin as returned by the API and sent in webhooks."""

    id: str
    code: str
    status: str
    amount: Decimal
    net_amount: Decimal
    airtm_fee: Decimal
    description: str
    items: list[ItemView]
    confirmation_uri: str
    cancel_uri: str
    created_at: str
    updated_at: str
    airtm_user_id: str | None = None
    airtm_user_email: str | None = None
    failure_reason: str | None = None


class PayoutView(_Camel, frozen=True):
    """A payout as returned by the API and sent in webhooks."""

    id: str
    code: str
    status: str
    gross_amount: Decimal
    amount: Decimal
    net_amount: Decimal
    airtm_fee: Decimal
    enterprise_fee: Decimal
    airtm_user_email: str
    created_at: str
    updated_at: str
    airtm_user_id: str | None = None
    reason_code: str | None = None
    reason_description: str | None = None


class EventView(_Camel, frozen=True):
    """One payout history entry."""

    status: str
    created_at: str


class BalanceView(_Camel, frozen=True):
    """``GET /me/balance``."""

    available: Decimal
    pending: Decimal


class UserView(_Camel, frozen=True):
    """``GET /users/{email}``: every field is sent, ``country`` as ``null`` when unknown."""

    id: str
    status: str
    primary_email: str
    first_name: str
    last_name: str
    country: str | None
    is_verified: bool


class ErrorView(_Camel, frozen=True):
    """The error body."""

    code: int
    message: str


ENCODER: Final = msgspec.json.Encoder(decimal_format="number")


def wire_minor(amount: Decimal, *, allow_zero: bool = False) -> int:
    """Airtm's amount rule: at most 2 decimals and at least 0.01 (415901 otherwise)."""
    try:
        minor = airtm_to_minor(amount)
    except AirtmAmountError as error:
        raise AirtmError(415901, f"invalid amount: {error}") from error
    if minor == 0 and not allow_zero:
        raise AirtmError(415901, "amount must be at least 0.01")
    return minor


def airtm_fee_minor(amount_minor: int, fee_bps: int) -> int:
    """A fee in whole cents, rounded down, since Airtm only moves cents."""
    return amount_minor // CENT_MINOR * fee_bps // 10_000 * CENT_MINOR


class SandboxUser(msgspec.Struct, kw_only=True):
    """An Airtm account that can pay in or receive payouts."""

    id: str
    email: str
    status: str = "active"
    country: str = "AR"
    is_verified: bool = True
    first_name: str = "Sandbox"
    last_name: str = "User"


class ItemRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A stored payin line."""

    description: str
    amount_minor: int
    quantity: int


class PayinRecord(msgspec.Struct, kw_only=True):
    """A stored payin."""

    id: str
    code: str
    status: PayinStatus
    amount_minor: int
    fee_minor: int
    description: str
    items: tuple[ItemRecord, ...]
    confirmation_uri: str
    cancel_uri: str
    created_at_s: float
    updated_at_s: float
    payer_id: str | None = None
    payer_email: str | None = None
    failure_reason: str | None = None


class PayoutRecord(msgspec.Struct, kw_only=True):
    """A stored payout; ``held_minor`` is what it currently holds of the pending balance."""

    id: str
    code: str
    status: PayoutStatus
    gross_minor: int
    enterprise_fee_minor: int
    airtm_fee_minor: int
    email: str
    notes: str
    created_at_s: float
    updated_at_s: float
    history: list[tuple[PayoutStatus, float]]
    user_id: str | None = None
    held_minor: int = 0
    pending_since_s: float | None = None
    reason_code: str | None = None
    reason_description: str | None = None

    @property
    def amount_minor(self) -> int:
        """What leaves the enterprise balance: gross minus the enterprise fee."""
        return self.gross_minor - self.enterprise_fee_minor


class OutboxMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A webhook to deliver: the body is fixed when the event happens, as at Airtm."""

    message_id: str
    type: str
    body: bytes
    created_at_s: float


class BalanceMovement(msgspec.Struct, frozen=True, kw_only=True):
    """One change of the enterprise balance, kept so tests can count movements."""

    at_s: float
    available_delta_minor: int
    pending_delta_minor: int
    reason: str
    resource_id: str


def iso_time(unix_s: float) -> str:
    """Render a sandbox time as ISO 8601 UTC with milliseconds, as Airtm does."""
    moment = datetime.datetime.fromtimestamp(unix_s, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render_payin(record: PayinRecord) -> PayinView:
    """Build the JSON shape of a payin."""
    items = [
        ItemView(
            description=item.description,
            amount=minor_to_airtm(item.amount_minor),
            quantity=item.quantity,
        )
        for item in record.items
    ]
    return PayinView(
        id=record.id,
        code=record.code,
        status=record.status.value,
        amount=minor_to_airtm(record.amount_minor),
        net_amount=minor_to_airtm(record.amount_minor - record.fee_minor),
        airtm_fee=minor_to_airtm(record.fee_minor),
        description=record.description,
        items=items,
        confirmation_uri=record.confirmation_uri,
        cancel_uri=record.cancel_uri,
        created_at=iso_time(record.created_at_s),
        updated_at=iso_time(record.updated_at_s),
        airtm_user_id=record.payer_id,
        airtm_user_email=record.payer_email,
        failure_reason=record.failure_reason,
    )


def render_payout(record: PayoutRecord) -> PayoutView:
    """Build the JSON shape of a payout."""
    return PayoutView(
        id=record.id,
        code=record.code,
        status=record.status.value,
        gross_amount=minor_to_airtm(record.gross_minor),
        amount=minor_to_airtm(record.amount_minor),
        net_amount=minor_to_airtm(record.amount_minor - record.airtm_fee_minor),
        airtm_fee=minor_to_airtm(record.airtm_fee_minor),
        enterprise_fee=minor_to_airtm(record.enterprise_fee_minor),
        airtm_user_email=record.email,
        created_at=iso_time(record.created_at_s),
        updated_at=iso_time(record.updated_at_s),
        airtm_user_id=record.user_id,
        reason_code=record.reason_code,
        reason_description=record.reason_description,
    )


def render_user(user: SandboxUser) -> UserView:
    """Build the JSON shape of an Airtm account."""
    return UserView(
        id=user.id,
        status=user.status,
        primary_email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        country=user.country,
        is_verified=user.is_verified,
    )
