"""Top-ups (Airtm payins) and withdrawals (api.md 3.7, 3.8, 4)."""

from typing import Any, Literal

from offerhub_client.models.common import Amount, AmountIn, Body, Model, Time

__all__ = [
    "TopUp",
    "TopUpCancel",
    "TopUpCreate",
    "Withdrawal",
    "WithdrawalCancel",
    "WithdrawalCreate",
]


class TopUp(Model, frozen=True, kw_only=True):
    """A top-up; the payer confirms at ``confirmation_uri``."""

    id: str
    user_id: str
    amount: Amount
    currency: str
    status: str
    confirmation_uri: str | None = None
    return_url: str
    cancel_url: str
    description: str | None = None
    airtm_payin_id: str | None = None
    provider_fee: Amount | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    expires_at: Time | None = None
    metadata: dict[str, Any] | None = None
    created_at: Time
    updated_at: Time
    completed_at: Time | None = None


class Withdrawal(Model, frozen=True, kw_only=True):
    """A withdrawal to a Stellar address (``crypto``) or an Airtm account."""

    id: str
    user_id: str
    amount: Amount
    currency: str
    status: str
    destination_type: str
    destination_ref: str
    memo: str | None = None
    committed: bool
    airtm_payout_id: str | None = None
    transaction_hash: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    description: str | None = None
    created_at: Time
    updated_at: Time
    completed_at: Time | None = None


class TopUpCreate(Body, frozen=True, kw_only=True):
    """``POST /topups``."""

    user_id: str
    amount: AmountIn
    currency: Literal["USD"] | None = None
    description: str | None = None
    return_url: str | None = None
    cancel_url: str | None = None
    metadata: dict[str, Any] | None = None


class TopUpCancel(Body, frozen=True, kw_only=True):
    """``POST /topups/{id}/cancel``."""

    reason: str | None = None


class WithdrawalCreate(Body, frozen=True, kw_only=True):
    """``POST /withdrawals``."""

    user_id: str
    amount: AmountIn
    destination_type: Literal["crypto", "airtm_balance"]
    currency: Literal["USD"] | None = None
    destination_ref: str | None = None
    memo: str | None = None
    commit: bool | None = None
    description: str | None = None


class WithdrawalCancel(Body, frozen=True, kw_only=True):
    """``POST /withdrawals/{id}/cancel``."""

    reason: str | None = None
