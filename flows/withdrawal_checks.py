"""Validation of a withdrawal request: what the domain refuses before anything is written.

The API layer validates shapes first; these rules hold whatever calls the domain. Checks that
need a provider (the destination on Horizon, the Airtm recipient) are made by the caller before
the transaction; the Horizon read is passed in and judged here.
"""

import re
from typing import Final

import asyncpg
from stellar_sdk import StrKey

from common.errors import (
    AirtmUserNotLinked,
    InvalidAmount,
    ValidationFailed,
    WalletNotReady,
    WithdrawalDestinationInvalid,
)
from flows.queries import wallets
from flows.queries.users import UserRecord
from flows.queries.wallets import Wallet
from providers.airtm.amounts import CENT_MINOR
from providers.stellar.port import AccountState

__all__ = [
    "DESCRIPTION_MAX",
    "MEMO_MAX_BYTES",
    "airtm_email",
    "check_request",
    "crypto_wallet",
]

MEMO_MAX_BYTES: Final = 28
DESCRIPTION_MAX: Final = 255
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_EMAIL_MAX: Final = 254


def check_request(
    amount_minor: int, destination_type: str, memo: str | None, description: str | None
) -> None:
    """Refuse what the API layer should already have refused (the domain keeps its rules)."""
    fields = []
    if destination_type not in ("crypto", "airtm_balance"):
        fields.append({"field": "destination_type", "message": "must be crypto or airtm_balance"})
    if memo is not None and destination_type != "crypto":
        fields.append({"field": "memo", "message": "only crypto withdrawals carry a memo"})
    if memo is not None and len(memo.encode()) > MEMO_MAX_BYTES:
        fields.append({"field": "memo", "message": "must be at most 28 bytes"})
    if description is not None and len(description) > DESCRIPTION_MAX:
        fields.append({"field": "description", "message": "must be at most 255 characters"})
    if fields:
        raise ValidationFailed(fields=fields)
    if amount_minor <= 0:
        raise InvalidAmount("amount must be positive")


def _check_on_chain(destination: AccountState, memo: str | None) -> None:
    """What Horizon said of the destination, read by the caller before the transaction."""
    if not destination.exists:
        raise WithdrawalDestinationInvalid(reason="account_not_found")
    if not destination.has_usdc_trustline:
        raise WithdrawalDestinationInvalid(reason="no_trustline")
    if destination.memo_required and memo is None:
        # SEP-29: an exchange that needs a memo to attribute the payment.
        raise ValidationFailed(
            fields=[{"field": "memo", "message": "required by the destination account"}]
        )


async def crypto_wallet(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    user_id: str,
    destination: str | None,
    memo: str | None,
    destination_account: AccountState | None,
) -> Wallet:
    """Check a Stellar destination; returns the user's wallet, which pays."""
    if destination is None:
        raise ValidationFailed(fields=[{"field": "destination_ref", "message": "required"}])
    if not StrKey.is_valid_ed25519_public_key(destination):
        raise WithdrawalDestinationInvalid(reason="invalid_address")
    wallet = await wallets.get_wallet_by_user(conn, marketplace_id, user_id)
    if wallet is not None and wallet.public_key == destination:
        raise WithdrawalDestinationInvalid(reason="own_wallet")
    if wallet is None or not wallet.is_active:
        raise WalletNotReady(user_id=user_id, wallet_id=wallet.id if wallet else None)
    if destination_account is not None:
        _check_on_chain(destination_account, memo)
    return wallet


def airtm_email(user: UserRecord, destination: str | None, amount_minor: int) -> str:
    """The Airtm recipient: the given email, else the user's linked account."""
    if amount_minor % CENT_MINOR != 0:
        raise InvalidAmount("Airtm withdrawals must be whole cents")
    email = destination
    if email is None:
        if user.airtm_user_id is None or user.airtm_email is None:
            raise AirtmUserNotLinked(user_id=user.id)
        email = user.airtm_email
    if len(email) > _EMAIL_MAX or _EMAIL.fullmatch(email) is None:
        raise WithdrawalDestinationInvalid(reason="invalid_email")
    return email
