"""Stellar: the ``WalletNetwork`` port, the Horizon client over httpx, and our tx builders.

Keys and XDR come from stellar-sdk; Horizon is called with our own httpx client.
"""

from providers.stellar.horizon import HorizonClient
from providers.stellar.port import (
    AccountState,
    AssetBalanceChange,
    FeeStats,
    LedgerInfo,
    PaymentPage,
    PaymentRecord,
    ResultCodes,
    SubmitResult,
    TransactionFailed,
    TransactionInfo,
    WalletNetwork,
)

__all__ = [
    "AccountState",
    "AssetBalanceChange",
    "FeeStats",
    "HorizonClient",
    "LedgerInfo",
    "PaymentPage",
    "PaymentRecord",
    "ResultCodes",
    "SubmitResult",
    "TransactionFailed",
    "TransactionInfo",
    "WalletNetwork",
]
