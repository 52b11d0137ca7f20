"""Live Horizon reads of a user's wallet: its balance and its on-chain movements (api.md 3.3).

Both run outside any database transaction. A balance read that fails does not fail the wallet
answer (``balance: null`` and ``balance_error``); a transaction listing that fails answers the
provider error (``STELLAR_NETWORK_ERROR``, ``PROVIDER_TIMEOUT``, ...).

Transactions are listed newest first in pages of our own opaque cursor, which wraps Horizon's
paging token and is bound to the endpoint (the user's path) like every other cursor.
"""

import base64
import binascii
import hashlib
from datetime import datetime
from typing import Final

import msgspec

from api.errors import invalid
from api.provider_errors import translate
from api.schemas.common import format_time
from api.schemas.users import WalletBalance, WalletTransaction
from common.errors import AppError
from common.money import format_amount
from providers.errors import ProviderError, ProviderRejected
from providers.stellar.port import PaymentRecord, WalletNetwork

__all__ = [
    "TransactionPage",
    "decode_cursor",
    "encode_cursor",
    "live_balance",
    "render_payment",
    "wallet_transactions",
]

_PREFIX: Final = "c_"
# Horizon pages read per request at most: filtering may leave a page short of `limit`.
_MAX_HORIZON_PAGES: Final = 3
_HORIZON_LIMIT_MAX: Final = 200
# Operation types that move value to or from an account as a plain payment.
_PAYMENT_TYPES: Final = frozenset(
    {"payment", "path_payment_strict_send", "path_payment_strict_receive", "create_account"}
)
# Contract calls (escrow funding, releases, refunds) move USDC through asset balance changes.
_HOST_FUNCTION: Final = "invoke_host_function"


async def live_balance(
    network: WalletNetwork, public_key: str
) -> tuple[WalletBalance | None, str | None]:
    """The wallet's USDC and XLM on chain, or ``(None, why)`` when Horizon cannot tell.

    An account not created yet (activation still running) holds nothing: zeros, no error.
    """
    try:
        state = await network.get_account(public_key)
    except ProviderError as error:
        translated = translate(error)
        assert isinstance(translated, AppError)
        return None, f"{translated.code}: {translated.message}"
    if not state.exists:
        return WalletBalance(usdc=format_amount(0), xlm=format_amount(0)), None
    return WalletBalance(usdc=format_amount(state.usdc or 0), xlm=format_amount(state.xlm)), None


def _asset(code: str | None, issuer: str | None, asset_type: str | None) -> str:
    if asset_type == "native" or code is None:
        return "XLM"
    return f"{code}:{issuer}"


def _time(text: str) -> str:
    # Horizon answers "2026-01-12T10:00:00Z"; api.md 1.7 wants milliseconds.
    return format_time(datetime.fromisoformat(text))


def render_payment(record: PaymentRecord, wallet: str) -> list[WalletTransaction]:
    """The wallet's movements in one Horizon record (none when it does not move value here).

    A contract call yields one movement per asset balance change touching the wallet; its id is
    the operation id, suffixed ``:<n>`` when one call moved value several times.
    """
    if record.type in _PAYMENT_TYPES:
        sender, receiver = record.from_address, record.to_address
        if sender is None or receiver is None or record.amount is None:
            return []
        if wallet not in (sender, receiver):
            return []
        asset = _asset(record.asset_code, record.asset_issuer, record.asset_type)
        moves = [(record.id, sender, receiver, record.amount, asset)]
    elif record.type == _HOST_FUNCTION:
        changes = [
            c for c in record.asset_balance_changes if wallet in (c.from_address, c.to_address)
        ]
        moves = [
            (
                record.id if len(changes) == 1 else f"{record.id}:{index}",
                change.from_address,
                change.to_address,
                change.amount,
                _asset(change.asset_code, change.asset_issuer, change.type),
            )
            for index, change in enumerate(changes)
        ]
    else:
        return []
    return [
        WalletTransaction(
            id=move_id,
            direction="OUT" if sender == wallet else "IN",
            from_=sender,
            to=receiver,
            amount=format_amount(amount),
            asset=asset,
            type=record.type,
            transaction_hash=record.transaction_hash,
            successful=record.transaction_successful,
            created_at=_time(record.created_at),
        )
        for move_id, sender, receiver, amount, asset in moves
    ]


def encode_cursor(binding: str, paging_token: str) -> str:
    """An opaque cursor resuming after ``paging_token``, valid only for ``binding``."""
    raw = msgspec.json.encode([_binding_hash(binding), paging_token])
    return _PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(binding: str, cursor: str | None) -> str | None:
    """The Horizon paging token inside ``cursor``.

    Raises:
        ValidationFailed: ``query.cursor`` is malformed or belongs to another endpoint.
    """
    if cursor is None:
        return None
    try:
        if not cursor.startswith(_PREFIX):
            raise ValueError("not a cursor")
        text = cursor.removeprefix(_PREFIX)
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        bound, token = msgspec.json.decode(raw, type=tuple[str, str])
    except (ValueError, binascii.Error, msgspec.DecodeError):
        raise invalid("query.cursor", "malformed cursor") from None
    if bound != _binding_hash(binding):
        raise invalid("query.cursor", "cursor belongs to another endpoint")
    return token


def _binding_hash(binding: str) -> str:
    return hashlib.sha256(binding.encode()).hexdigest()[:16]


class TransactionPage(msgspec.Struct, frozen=True, kw_only=True):
    """Movements newest first, and the Horizon position after the last one shown."""

    items: list[WalletTransaction]
    has_more: bool
    next_token: str | None


async def wallet_transactions(
    network: WalletNetwork, public_key: str, *, limit: int, after_token: str | None
) -> TransactionPage:
    """Up to ``limit`` movements of the wallet, newest first, after ``after_token``.

    A wallet Horizon does not know yet (not activated) has no movements. Raises the provider
    errors of the port (translate them with ``api.provider_errors``).
    """
    shown: list[WalletTransaction] = []
    position, cursor, more = after_token, after_token, True
    fetch = min(limit + 1, _HORIZON_LIMIT_MAX)
    for _ in range(_MAX_HORIZON_PAGES):
        try:
            page = await network.list_payments(
                public_key, cursor=cursor, order="desc", limit=fetch, include_failed=True
            )
        except ProviderRejected as error:
            if error.status_code == 404:
                return TransactionPage(items=[], has_more=False, next_token=None)
            raise
        for record in page.records:
            items = render_payment(record, public_key)
            if items and len(shown) >= limit:
                return TransactionPage(items=shown, has_more=True, next_token=position)
            shown.extend(items)
            position = record.paging_token
        if len(page.records) < fetch:
            more = False
            break
        cursor = page.records[-1].paging_token
    return TransactionPage(items=shown, has_more=more, next_token=position if more else None)
