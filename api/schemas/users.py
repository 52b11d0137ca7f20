"""Wire types of users, wallets and balances (api.md 3.3, 3.4, 4)."""

from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from api.schemas.common import Amount, Currency, RequestStruct, ResponseStruct, format_time
from common.money import format_amount
from flows.balances import AdjustmentRecord, BalanceView
from flows.queries.users import UserRecord
from flows.queries.wallets import Wallet as WalletRow

__all__ = [
    "AirtmLink",
    "Balance",
    "BalanceAdjustment",
    "BalanceAdjustmentCreate",
    "User",
    "UserCreate",
    "UserWallet",
    "Wallet",
    "WalletBalance",
    "WalletTransaction",
    "adjustment_out",
    "balance_out",
    "user_out",
    "wallet_out",
]

# Deliberately loose (one @, a dot in the domain, no spaces): Airtm and the mail server decide.
EMAIL_META: Final = Meta(
    max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", examples=["ana@example.com"]
)
Email = Annotated[str, EMAIL_META]
UserType = Annotated[
    str, Meta(pattern="(?i)^(buyer|seller|both)$", description="BUYER, SELLER or BOTH, any case.")
]


class UserCreate(RequestStruct, frozen=True):
    """``POST /users``: idempotent on ``external_user_id``."""

    external_user_id: Annotated[str, Meta(min_length=1, max_length=255)]
    email: Email | None = None
    type: UserType | None = None
    metadata: dict[str, Any] | None = None


class AirtmLink(RequestStruct, frozen=True):
    """``POST /users/{user_id}/airtm/link``."""

    email: Email


class BalanceAdjustmentCreate(RequestStruct, frozen=True):
    """``POST /users/{user_id}/balance/adjustments`` (admin)."""

    direction: Literal["CREDIT", "DEBIT"]
    amount: Amount
    reason: Annotated[str, Meta(min_length=1, max_length=500)]
    reference: Annotated[str, Meta(max_length=255)] | None = None
    counter_account: Literal["fees:platform", "external:stellar", "external:airtm"] | None = None
    currency: Currency | None = None


class UserWallet(ResponseStruct, frozen=True):
    """The wallet a user carries: id and public key."""

    id: str
    public_key: str


class User(ResponseStruct, frozen=True):
    """A marketplace user (api.md 4)."""

    id: str
    external_user_id: str
    email: str | None
    type: str
    status: str
    airtm_user_id: str | None
    airtm_email: str | None
    airtm_linked_at: str | None
    wallet: UserWallet | None
    metadata: dict[str, Any] | None
    created_at: str
    updated_at: str


class WalletBalance(ResponseStruct, frozen=True):
    """A live on-chain balance: USDC and XLM."""

    usdc: str
    xlm: str


class Wallet(ResponseStruct, frozen=True):
    """A user's custodial Stellar wallet, with its live balance (api.md 4)."""

    id: str
    user_id: str
    type: str
    provider: str
    public_key: str
    is_primary: bool
    is_active: bool
    funded: bool
    trustline_ready: bool
    balance: WalletBalance | None
    balance_error: str | None
    created_at: str
    updated_at: str


class WalletTransaction(ResponseStruct, frozen=True):
    """One on-chain movement of a wallet, read live from Horizon (api.md 4)."""

    id: str
    type: str
    direction: Literal["IN", "OUT"]
    from_: str = msgspec.field(name="from")
    to: str
    amount: str
    asset: str
    transaction_hash: str
    successful: bool
    created_at: str
    transfer_id: str | None = None


class Balance(ResponseStruct, frozen=True):
    """A user's balance, from the ledger (api.md 4)."""

    user_id: str
    currency: str
    available: str
    reserved: str
    total: str
    pending_deposits: str
    as_of: str | None
    updated_at: str


class BalanceAdjustment(ResponseStruct, frozen=True):
    """A posted admin adjustment; ``id`` is its ledger transfer (api.md 4)."""

    id: str
    user_id: str
    direction: str
    amount: str
    currency: str
    reason: str
    reference: str | None
    counter_account: str
    created_by: str | None
    created_at: str
    balance: Balance


def _time(moment: Any) -> str | None:
    return None if moment is None else format_time(moment)


def user_out(row: UserRecord) -> User:
    """The wire form of a user."""
    wallet = row.wallet
    return User(
        id=row.id,
        external_user_id=row.external_user_id,
        email=row.email,
        type=row.type,
        status=row.status,
        airtm_user_id=row.airtm_user_id,
        airtm_email=row.airtm_email,
        airtm_linked_at=_time(row.airtm_linked_at),
        wallet=None if wallet is None else UserWallet(id=wallet.id, public_key=wallet.public_key),
        metadata=row.metadata,
        created_at=format_time(row.created_at),
        updated_at=format_time(row.updated_at),
    )


def wallet_out(row: WalletRow, balance: WalletBalance | None, balance_error: str | None) -> Wallet:
    """The wire form of a wallet with its live balance (or why it could not be read)."""
    return Wallet(
        id=row.id,
        user_id=row.user_id,
        type="INVISIBLE",
        provider="STELLAR",
        public_key=row.public_key,
        # One custodial wallet per user (wallets_user_key): it is always the primary one.
        is_primary=True,
        is_active=row.is_active,
        funded=row.funded,
        trustline_ready=row.trustline_ready,
        balance=balance,
        balance_error=balance_error,
        created_at=format_time(row.created_at),
        updated_at=format_time(row.updated_at),
    )


def balance_out(view: BalanceView) -> Balance:
    """The wire form of a balance (amounts as decimal strings)."""
    return Balance(
        user_id=view.user_id,
        currency=view.currency,
        available=format_amount(view.available),
        reserved=format_amount(view.reserved),
        total=format_amount(view.total),
        pending_deposits=format_amount(view.pending_deposits),
        as_of=_time(view.as_of),
        updated_at=format_time(view.updated_at),
    )


def adjustment_out(record: AdjustmentRecord) -> BalanceAdjustment:
    """The wire form of a posted adjustment."""
    return BalanceAdjustment(
        id=record.id,
        user_id=record.user_id,
        direction=record.direction,
        amount=format_amount(record.amount),
        currency=record.currency,
        reason=record.reason,
        reference=record.reference,
        counter_account=record.counter_account,
        created_by=record.created_by,
        created_at=format_time(record.created_at),
        balance=balance_out(record.balance),
    )
