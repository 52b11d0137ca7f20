"""The wallet-network port: what the orchestrator needs from Stellar (Protocol + frozen Structs).

Amounts are integer stroops (scale 7), never floats. A missing account or transaction is a
typed answer (``exists=False`` / ``found=False``), not an exception, because both are normal
states (a wallet not yet activated, a hash not yet ingested). Failures raise the three
provider errors; a failed transaction raises :class:`TransactionFailed`, which carries
Horizon's result codes.
"""

from typing import Literal, Protocol

import msgspec

from providers.errors import ProviderRejected
from providers.stellar.result_codes import ResultCodes

__all__ = [
    "AccountState",
    "AssetBalanceChange",
    "FeeStats",
    "LedgerInfo",
    "PaymentPage",
    "PaymentRecord",
    "ResultCodes",
    "SubmitResult",
    "TransactionFailed",
    "TransactionInfo",
    "WalletNetwork",
]

Order = Literal["asc", "desc"]


class AccountState(msgspec.Struct, frozen=True, kw_only=True):
    """An account as Horizon reports it; ``exists=False`` means 404 (not activated)."""

    account_id: str
    exists: bool
    sequence: int = 0
    xlm: int = 0
    # None: no USDC trustline. 0: a trustline with nothing on it.
    usdc: int | None = None
    usdc_limit: int | None = None
    usdc_authorized: bool = False
    subentry_count: int = 0
    num_sponsoring: int = 0
    num_sponsored: int = 0
    # SEP-29: data entry ``config.memo_required`` == ``MQ==`` ("1").
    memo_required: bool = False

    @property
    def has_usdc_trustline(self) -> bool:
        """Whether the account can hold USDC."""
        return self.usdc is not None


class SubmitResult(msgspec.Struct, frozen=True, kw_only=True):
    """A transaction Horizon accepted and applied successfully."""

    hash: str
    ledger: int
    fee_charged: int
    result_xdr: str


class AssetBalanceChange(msgspec.Struct, frozen=True, kw_only=True):
    """One token movement of an ``invoke_host_function`` operation (escrow transfers)."""

    asset_code: str | None
    asset_issuer: str | None
    type: str
    from_address: str
    to_address: str
    amount: int


class TransactionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /transactions/{hash}``; ``found=False`` means 404 (not ingested, maybe never)."""

    hash: str
    found: bool
    successful: bool = False
    ledger: int | None = None
    created_at: str | None = None
    source_account: str | None = None
    source_account_sequence: int | None = None
    fee_charged: int | None = None
    max_time: int | None = None
    memo_type: str | None = None
    memo: str | None = None
    result_xdr: str | None = None
    result_codes: ResultCodes | None = None
    # Filled only when asked for (one more request to the tx's payments).
    asset_balance_changes: tuple[AssetBalanceChange, ...] = ()


class PaymentRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One ``/accounts/{id}/payments`` record (payment, create_account, host function, ...)."""

    id: str
    paging_token: str
    type: str
    created_at: str
    transaction_hash: str
    transaction_successful: bool
    source_account: str
    from_address: str | None = None
    to_address: str | None = None
    amount: int | None = None
    asset_type: str | None = None
    asset_code: str | None = None
    asset_issuer: str | None = None
    asset_balance_changes: tuple[AssetBalanceChange, ...] = ()
    # From ``join=transactions``.
    memo_type: str | None = None
    memo: str | None = None


class PaymentPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of payment records; resume with ``next_cursor`` (the last record's paging token)."""

    records: tuple[PaymentRecord, ...]
    next_cursor: str | None


class LedgerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The latest closed ledger: the chain's clock."""

    sequence: int
    closed_at: str
    base_fee: int
    base_reserve: int


class FeeStats(msgspec.Struct, frozen=True, kw_only=True):
    """``/fee_stats``: what inclusion fee per operation gets a tx in now."""

    last_ledger: int
    last_ledger_base_fee: int
    fee_charged_p50: int
    fee_charged_p99: int
    max_fee_p50: int


class TransactionFailed(ProviderRejected):
    """Horizon refused or failed the transaction (``transaction_failed``); see ``result_codes``."""

    def __init__(
        self,
        message: str | None = None,
        *,
        result_codes: ResultCodes,
        result_xdr: str | None,
        status_code: int = 400,
    ) -> None:
        super().__init__(
            message, provider="stellar", status_code=status_code, reason=result_codes.transaction
        )
        self.result_codes = result_codes
        self.result_xdr = result_xdr


class WalletNetwork(Protocol):
    """The Stellar network as the orchestrator uses it (Horizon, or the sandbox in tests)."""

    async def get_account(self, account_id: str) -> AccountState:
        """Load an account; ``exists=False`` when it has not been created."""
        ...

    async def submit_transaction(self, envelope_xdr: str, *, tx_hash: str) -> SubmitResult:
        """Submit a signed envelope whose hash the caller computed and persisted first.

        Raises:
            TransactionFailed: rejected or failed; ``result_codes`` says why.
            ProviderUnavailable: reason ``outcome_unknown`` means look ``tx_hash`` up.
        """
        ...

    async def get_transaction(
        self, tx_hash: str, *, with_balance_changes: bool = False
    ) -> TransactionInfo:
        """Look a transaction up by hash; ``found=False`` when Horizon does not know it."""
        ...

    async def list_payments(
        self,
        account_id: str,
        *,
        cursor: str | None = None,
        order: Order = "asc",
        limit: int = 200,
        include_failed: bool = False,
    ) -> PaymentPage:
        """One page of payment-like operations touching the account, with the tx memo joined."""
        ...

    async def latest_ledger(self) -> LedgerInfo:
        """The latest closed ledger."""
        ...

    async def fee_stats(self) -> FeeStats:
        """Current fee statistics."""
        ...
