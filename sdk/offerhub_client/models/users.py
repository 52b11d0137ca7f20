"""Users, wallets, deposits and balances (api.md 3.3, 3.4, 4)."""

from typing import Any, Literal

import msgspec

from offerhub_client.models.common import Amount, AmountIn, Body, Model, Time

__all__ = [
    "AirtmLink",
    "Balance",
    "BalanceAdjustment",
    "BalanceAdjustmentCreate",
    "DepositAsset",
    "DepositInstructions",
    "User",
    "UserCreate",
    "UserWallet",
    "Wallet",
    "WalletBalance",
    "WalletTransaction",
]


class UserWallet(Model, frozen=True, kw_only=True):
    """The user's custodial Stellar wallet, as the user resource names it."""

    id: str
    public_key: str


class User(Model, frozen=True, kw_only=True):
    """A marketplace user (buyer, seller or both)."""

    id: str
    external_user_id: str
    email: str | None = None
    type: str
    status: str
    airtm_user_id: str | None = None
    airtm_email: str | None = None
    airtm_linked_at: Time | None = None
    wallet: UserWallet | None = None
    metadata: dict[str, Any] | None = None
    created_at: Time
    updated_at: Time


class WalletBalance(Model, frozen=True, kw_only=True):
    """Live on-chain holdings."""

    usdc: Amount
    xlm: Amount


class Wallet(Model, frozen=True, kw_only=True):
    """A user's wallet; ``balance`` is None when Horizon could not be read."""

    id: str
    user_id: str
    type: str
    provider: str
    public_key: str
    is_primary: bool
    is_active: bool
    funded: bool
    trustline_ready: bool
    balance: WalletBalance | None = None
    balance_error: str | None = None
    created_at: Time
    updated_at: Time


class DepositAsset(Model, frozen=True, kw_only=True):
    """The asset to deposit (USDC and its issuer)."""

    code: str
    issuer: str


class DepositInstructions(Model, frozen=True, kw_only=True):
    """Where to send USDC so it is credited to the user."""

    user_id: str
    provider: str
    method: str
    network: str
    address: str
    memo: str | None = None
    asset: DepositAsset
    instructions: str


class WalletTransaction(Model, frozen=True, kw_only=True):
    """One operation on the wallet, live from Horizon."""

    id: str
    type: str
    direction: str
    from_: str = msgspec.field(name="from")
    to: str
    amount: Amount
    asset: str
    transaction_hash: str
    successful: bool
    created_at: Time
    transfer_id: str | None = None


class Balance(Model, frozen=True, kw_only=True):
    """A user's balance from the ledger; ``total = available + reserved``."""

    user_id: str
    currency: str
    available: Amount
    reserved: Amount
    total: Amount
    pending_deposits: Amount
    as_of: Time | None = None
    updated_at: Time | None = None


class BalanceAdjustment(Model, frozen=True, kw_only=True):
    """An audited admin credit or debit, with the balance after it."""

    id: str
    user_id: str
    direction: str
    amount: Amount
    currency: str
    reason: str
    reference: str | None = None
    counter_account: str
    created_by: str | None = None
    created_at: Time
    balance: Balance


class UserCreate(Body, frozen=True, kw_only=True):
    """``POST /users`` (idempotent on ``external_user_id``)."""

    external_user_id: str
    email: str | None = None
    type: Literal["BUYER", "SELLER", "BOTH"] | None = None
    metadata: dict[str, Any] | None = None


class AirtmLink(Body, frozen=True, kw_only=True):
    """``POST /users/{id}/airtm/link``."""

    email: str


class BalanceAdjustmentCreate(Body, frozen=True, kw_only=True):
    """``POST /users/{id}/balance/adjustments`` (admin)."""

    direction: Literal["CREDIT", "DEBIT"]
    amount: AmountIn
    reason: str
    reference: str | None = None
    counter_account: Literal["fees:platform", "external:stellar", "external:airtm"] | None = None
    currency: Literal["USD"] | None = None
