"""The fiat port: what the orchestrator may ask of Airtm, in our own types.

Amounts are integer minor units (scale 7) and must be whole cents, because Airtm carries only
2 decimals. Every mutating call is idempotent: creates are keyed by the Airtm ``code`` (unique
per enterprise, our ``topup_…``/``wd_…`` id), and commit/cancel by the Airtm resource id.
Calls raise only the provider errors of ``providers.errors``. Users are looked up by email
(payouts are addressed by email; linking checks the account first, providers.md 4.1).
"""

from enum import StrEnum
from typing import Protocol

import msgspec

from providers.airtm.amounts import CENT_MINOR

__all__ = [
    "AirtmUser",
    "Balance",
    "FiatProvider",
    "Payin",
    "PayinCreate",
    "PayinStatus",
    "Payout",
    "PayoutCreate",
    "PayoutEvent",
    "PayoutStatus",
    "parse_payin_status",
    "parse_payout_status",
]


class PayinStatus(StrEnum):
    """Airtm payin statuses (providers.md 4.3); the final ones are CONFIRMED, CANCELED, FAILED."""

    CREATED = "CREATED"
    PROCESSING = "PROCESSING"
    CONFIRMED = "CONFIRMED"
    CANCELED = "CANCELED"
    BRIDGE_CANCELED = "BRIDGE_CANCELED"
    FAILED = "FAILED"
    BRIDGE_FAILED = "BRIDGE_FAILED"


class PayoutStatus(StrEnum):
    """Airtm payout statuses (providers.md 4.4); COMPLETED, FAILED and CANCELED are final."""

    CREATED = "CREATED"
    COMMITTED = "COMMITTED"
    PROCESSING = "PROCESSING"
    PENDING_SIGNATURE = "PENDING_SIGNATURE"
    SIGNED = "SIGNED"
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    BRIDGE_CREATED = "BRIDGE_CREATED"
    BRIDGE_COMPLETED = "BRIDGE_COMPLETED"
    COSMOEM_COMPLETED = "COSMOEM_COMPLETED"
    PENDING = "PENDING"
    PENDING_USER_ACTION = "PENDING_USER_ACTION"
    BRIDGE_USER_SIGNUP_PENDING = "BRIDGE_USER_SIGNUP_PENDING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    ERROR = "ERROR"
    BRIDGE_FAILED = "BRIDGE_FAILED"
    BRIDGE_MAX_RETRIES_REACHED = "BRIDGE_MAX_RETRIES_REACHED"


def parse_payin_status(raw: str) -> PayinStatus | None:
    """Map Airtm's status text case-insensitively; ``None`` means unknown (alert, keep state)."""
    try:
        return PayinStatus(raw.upper())
    except ValueError:
        return None


def parse_payout_status(raw: str) -> PayoutStatus | None:
    """Map Airtm's status text case-insensitively; ``None`` means unknown (needs attention)."""
    try:
        return PayoutStatus(raw.upper())
    except ValueError:
        return None


def _check_cents(name: str, amount_minor: int, *, allow_zero: bool = False) -> None:
    if amount_minor < 0 or (amount_minor == 0 and not allow_zero):
        raise ValueError(f"{name} must be positive")
    if amount_minor % CENT_MINOR != 0:
        raise ValueError(f"{name} must be whole cents (a multiple of {CENT_MINOR} minor units)")


class PayinCreate(msgspec.Struct, frozen=True, kw_only=True):
    """A top-up request; Airtm gets one item for the whole amount, so Σ items == amount."""

    code: str
    amount_minor: int
    description: str
    confirmation_uri: str
    cancel_uri: str

    def __post_init__(self) -> None:
        """Refuse amounts Airtm cannot carry before anything is sent."""
        if not self.code:
            raise ValueError("code is the idempotency key and must not be empty")
        _check_cents("amount_minor", self.amount_minor)


class Payin(msgspec.Struct, frozen=True, kw_only=True):
    """A payin as Airtm reports it; ``status`` is ``None`` when ``raw_status`` is unknown."""

    id: str
    code: str
    status: PayinStatus | None
    raw_status: str
    amount_minor: int
    net_amount_minor: int
    airtm_fee_minor: int
    description: str
    confirmation_uri: str | None = None
    cancel_uri: str | None = None
    # Airtm's checkout page for this payin, where the payer is sent (from configuration).
    checkout_url: str | None = None
    airtm_user_id: str | None = None
    airtm_user_email: str | None = None
    failure_reason: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class PayoutCreate(msgspec.Struct, frozen=True, kw_only=True):
    """A withdrawal request; ``amount_minor`` is the gross amount, addressed by email."""

    code: str
    recipient_email: str
    amount_minor: int
    notes: str
    enterprise_fee_minor: int = 0
    internal_note: str | None = None
    require_id_verified: bool = False

    def __post_init__(self) -> None:
        """Refuse amounts Airtm cannot carry before anything is sent."""
        if not self.code:
            raise ValueError("code is the idempotency key and must not be empty")
        _check_cents("amount_minor", self.amount_minor)
        _check_cents("enterprise_fee_minor", self.enterprise_fee_minor, allow_zero=True)
        if self.enterprise_fee_minor >= self.amount_minor:
            raise ValueError("enterprise_fee_minor must be below amount_minor")


class Payout(msgspec.Struct, frozen=True, kw_only=True):
    """A payout as Airtm reports it.

    ``amount_minor`` = gross − enterprise fee (debited from the enterprise) and
    ``net_amount_minor`` = amount − Airtm fee (received by the user).
    """

    id: str
    code: str
    status: PayoutStatus | None
    raw_status: str
    gross_amount_minor: int
    amount_minor: int
    net_amount_minor: int
    airtm_fee_minor: int
    enterprise_fee_minor: int
    airtm_user_email: str
    airtm_user_id: str | None = None
    reason_code: str | None = None
    reason_description: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class PayoutEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of a payout's status history."""

    status: PayoutStatus | None
    raw_status: str
    created_at: str | None = None


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    """The enterprise balance at Airtm, in minor units."""

    available_minor: int
    pending_minor: int


class AirtmUser(msgspec.Struct, frozen=True, kw_only=True):
    """An Airtm account as ``GET /users/{email}`` reports it.

    ``status`` is Airtm's text as given (``"active"`` or ``"inactive"``): only an active account
    can receive payouts, so callers compare it themselves rather than trust a mapping here.
    """

    id: str
    email: str
    status: str
    is_verified: bool
    country: str | None = None


class FiatProvider(Protocol):
    """Fiat top-ups (payins) and withdrawals (payouts) through Airtm."""

    async def create_payin(self, request: PayinCreate) -> Payin:
        """Create a payin, or adopt the existing one with the same ``code`` if it matches.

        Raises:
            ProviderRejected: Airtm refused it, or ``code`` belongs to a different payin.
            ProviderUnavailable: the outcome is unknown; retry with the same request.
        """
        ...

    async def get_payin(self, payin_id: str) -> Payin:
        """Read a payin by its Airtm id (ProviderRejected with status 404 when unknown)."""
        ...

    async def get_payin_by_code(self, code: str) -> Payin:
        """Read a payin by our ``code`` (ProviderRejected with status 404 when unknown)."""
        ...

    async def cancel_payin(self, payin_id: str) -> Payin:
        """Cancel a CREATED payin; cancelling an already cancelled one returns it unchanged."""
        ...

    async def create_payout(self, request: PayoutCreate, *, commit: bool) -> Payout:
        """Create a payout (and commit it when ``commit``), adopting a matching one by ``code``."""
        ...

    async def commit_payout(self, payout_id: str) -> Payout:
        """Commit a CREATED payout and return it as read afterwards (idempotent)."""
        ...

    async def get_payout(self, payout_id: str) -> Payout:
        """Read a payout by its Airtm id."""
        ...

    async def get_payout_by_code(self, code: str) -> Payout:
        """Read a payout by our ``code``."""
        ...

    async def get_payout_events(self, payout_id: str) -> tuple[PayoutEvent, ...]:
        """Read a payout's status history, oldest first."""
        ...

    async def cancel_payout(self, payout_id: str) -> Payout:
        """Cancel a CREATED or PENDING payout; an already cancelled one is returned unchanged."""
        ...

    async def me_balance(self) -> Balance:
        """Read the enterprise balance (available and pending)."""
        ...

    async def get_user_by_email(self, email: str) -> AirtmUser:
        """Read the Airtm account behind ``email``.

        Raises:
            ProviderRejected: status 404 (``client.is_not_found``) when no account has it.
            ProviderUnavailable: Airtm could not answer; the read may be retried.
        """
        ...
