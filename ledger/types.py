"""Ledger value types: accounts, transfers, result codes and balances (integer minor units)."""

import enum
from datetime import datetime

import msgspec

__all__ = [
    "Account",
    "AccountBalance",
    "AccountType",
    "Entry",
    "Side",
    "StoredTransfer",
    "Transfer",
    "TransferOutcome",
    "TransferPhase",
    "TransferResult",
]


class AccountType(enum.StrEnum):
    """Account classes; the labels of the ``ledger_account_type`` enum."""

    USER = "USER"
    ESCROW = "ESCROW"
    FEES = "FEES"
    CLEARING = "CLEARING"
    TREASURY = "TREASURY"
    EXTERNAL = "EXTERNAL"
    ADJUSTMENT = "ADJUSTMENT"


class Side(enum.StrEnum):
    """A side of a posting; the labels of the ``ledger_side`` enum."""

    DEBIT = "DEBIT"
    CREDIT = "CREDIT"


class TransferPhase(enum.StrEnum):
    """What a transfer does; the labels of the ``ledger_transfer_phase`` enum."""

    SINGLE = "SINGLE"
    PENDING = "PENDING"
    POST_PENDING = "POST_PENDING"
    VOID_PENDING = "VOID_PENDING"
    EXPIRE_PENDING = "EXPIRE_PENDING"


RESOLVING_PHASES = frozenset(
    {TransferPhase.POST_PENDING, TransferPhase.VOID_PENDING, TransferPhase.EXPIRE_PENDING}
)


class TransferResult(enum.StrEnum):
    """The outcome of one transfer in a batch (TigerBeetle's CreateTransferResult, adapted)."""

    OK = "ok"
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"
    ID_MUST_BE_VALID = "id_must_be_valid"
    CODE_MUST_BE_VALID = "code_must_be_valid"
    DEBIT_ACCOUNT_ID_MUST_NOT_BE_EMPTY = "debit_account_id_must_not_be_empty"
    CREDIT_ACCOUNT_ID_MUST_NOT_BE_EMPTY = "credit_account_id_must_not_be_empty"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    ASSET_MUST_NOT_BE_EMPTY = "asset_must_not_be_empty"
    AMOUNT_MUST_BE_POSITIVE = "amount_must_be_positive"
    PENDING_ID_MUST_BE_EMPTY = "pending_id_must_be_empty"
    PENDING_ID_MUST_NOT_BE_EMPTY = "pending_id_must_not_be_empty"
    PENDING_ID_MUST_BE_DIFFERENT = "pending_id_must_be_different"
    TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = "timeout_reserved_for_pending_transfer"
    TIMEOUT_MUST_NOT_BE_NEGATIVE = "timeout_must_not_be_negative"
    TIMEOUT_TOO_LARGE = "timeout_too_large"
    DESCRIPTION_TOO_LONG = "description_too_long"
    DEBIT_ACCOUNT_NOT_FOUND = "debit_account_not_found"
    CREDIT_ACCOUNT_NOT_FOUND = "credit_account_not_found"
    ACCOUNTS_MUST_HAVE_THE_SAME_ASSET = "accounts_must_have_the_same_asset"
    TRANSFER_MUST_HAVE_THE_SAME_ASSET_AS_ACCOUNTS = "transfer_must_have_the_same_asset_as_accounts"
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
    PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID = (
        "pending_transfer_has_different_debit_account_id"
    )
    PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID = (
        "pending_transfer_has_different_credit_account_id"
    )
    PENDING_TRANSFER_HAS_DIFFERENT_ASSET = "pending_transfer_has_different_asset"
    PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT = "pending_transfer_has_different_amount"
    EXCEEDS_PENDING_TRANSFER_AMOUNT = "exceeds_pending_transfer_amount"
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
    PENDING_TRANSFER_NOT_EXPIRED = "pending_transfer_not_expired"
    EXISTS_WITH_DIFFERENT_PHASE = "exists_with_different_phase"
    EXISTS_WITH_DIFFERENT_PENDING_ID = "exists_with_different_pending_id"
    EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID = "exists_with_different_debit_account_id"
    EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID = "exists_with_different_credit_account_id"
    EXISTS_WITH_DIFFERENT_AMOUNT = "exists_with_different_amount"
    EXISTS_WITH_DIFFERENT_ASSET = "exists_with_different_asset"
    EXISTS_WITH_DIFFERENT_TIMEOUT = "exists_with_different_timeout"
    EXISTS_WITH_DIFFERENT_CODE = "exists_with_different_code"
    EXISTS_WITH_DIFFERENT_REFERENCE = "exists_with_different_reference"
    EXISTS = "exists"
    OVERFLOWS_DEBITS_PENDING = "overflows_debits_pending"
    OVERFLOWS_CREDITS_PENDING = "overflows_credits_pending"
    OVERFLOWS_DEBITS_POSTED = "overflows_debits_posted"
    OVERFLOWS_CREDITS_POSTED = "overflows_credits_posted"
    OVERFLOWS_DEBITS = "overflows_debits"
    OVERFLOWS_CREDITS = "overflows_credits"
    EXCEEDS_CREDITS = "exceeds_credits"
    EXCEEDS_DEBITS = "exceeds_debits"


class Transfer(msgspec.Struct, frozen=True, kw_only=True):
    """A transfer to create. ``id`` is chosen by the caller and is its idempotency key.

    For ``POST_PENDING``/``VOID_PENDING`` the accounts and asset may be left empty (they are taken
    from the pending transfer) and ``amount=None`` means the pending amount. ``linked=True`` ties
    this transfer to the next one in the batch: the chain commits all-or-nothing.
    """

    id: str
    marketplace_id: str
    code: str
    debit_account_id: str = ""
    credit_account_id: str = ""
    amount: int | None = None
    asset: str = ""
    phase: TransferPhase = TransferPhase.SINGLE
    pending_id: str | None = None
    timeout_s: int = 0
    linked: bool = False
    order_id: str | None = None
    user_id: str | None = None
    external_ref: str | None = None
    description: str | None = None


class StoredTransfer(msgspec.Struct, frozen=True, kw_only=True):
    """A transfer as committed (or accepted earlier in the same batch), accounts resolved."""

    id: str
    marketplace_id: str
    code: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    asset: str
    phase: TransferPhase
    pending_id: str | None
    timeout_s: int
    expires_at: datetime | None
    order_id: str | None
    user_id: str | None
    external_ref: str | None
    description: str | None
    linked_group: str | None = None
    # For PENDING transfers: the phase of the transfer that resolved it, if any.
    resolution: TransferPhase | None = None


class TransferOutcome(msgspec.Struct, frozen=True):
    """The result of one transfer of a ``create_transfers`` call, in request order."""

    index: int
    id: str
    result: TransferResult


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """A ledger account with its four counters."""

    id: str
    marketplace_id: str
    code: str
    asset: str
    type: AccountType
    normal_side: Side
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    version: int
    user_id: str | None
    order_id: str | None
    created_at: datetime

    @property
    def balance(self) -> "AccountBalance":
        """The balances derived from the counters."""
        return AccountBalance.from_counters(
            self.normal_side,
            self.debits_pending,
            self.debits_posted,
            self.credits_pending,
            self.credits_posted,
        )


class AccountBalance(msgspec.Struct, frozen=True, kw_only=True):
    """Balances of one account, signed from its normal side.

    ``posted`` is the normal side's posted total minus the other side's; ``reserved`` is what
    pending transfers hold off the normal side; ``available = posted - reserved``;
    ``incoming`` is what pending transfers will bring. For a user account (credit-normal) these
    are the wallet's balance, its reservations and what it may spend.
    """

    posted: int
    reserved: int
    available: int
    incoming: int

    @classmethod
    def from_counters(
        cls,
        normal_side: Side,
        debits_pending: int,
        debits_posted: int,
        credits_pending: int,
        credits_posted: int,
    ) -> "AccountBalance":
        """Derive the balances from the four counters of an account."""
        if normal_side is Side.CREDIT:
            posted, reserved, incoming = (
                credits_posted - debits_posted,
                debits_pending,
                credits_pending,
            )
        else:
            posted, reserved, incoming = (
                debits_posted - credits_posted,
                credits_pending,
                debits_pending,
            )
        return cls(posted=posted, reserved=reserved, available=posted - reserved, incoming=incoming)


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One side of a transfer seen from an account, with the account's counters after it."""

    version: int
    transfer_id: str
    transfer_sequence: int
    code: str
    phase: TransferPhase
    side: Side
    amount: int
    counterparty_account_id: str
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    balance_after: int
    external_ref: str | None
    description: str | None
    created_at: datetime
