"""The two sides a reconciliation compares, its settings and its results (plain data, no I/O).

:mod:`reconcile.compare` holds the rules that turn a :class:`LedgerSide` and a
:class:`ChainSide` into :class:`Discrepancy` records; ``reconcile.gather`` fills the sides.
"""

from datetime import datetime
from typing import Final, Literal

import msgspec

__all__ = [
    "ACCOUNT_CLASSES",
    "KINDS",
    "SOURCES",
    "STATUSES",
    "BoundBreach",
    "ChainSide",
    "ClearingSide",
    "CompareSettings",
    "ContractState",
    "Discrepancy",
    "Drift",
    "EscrowSide",
    "LedgerSide",
    "Movement",
    "Source",
    "Status",
    "StuckOperation",
    "UserSide",
]


Source = Literal["ledger", "stellar", "trustless_work", "airtm"]
Status = Literal["MATCHED", "MISMATCH", "MISSING_IN_LEDGER", "MISSING_AT_PROVIDER"]
SOURCES: Final[tuple[Source, ...]] = ("ledger", "stellar", "trustless_work", "airtm")
STATUSES: Final[tuple[Status, ...]] = (
    "MATCHED",
    "MISMATCH",
    "MISSING_IN_LEDGER",
    "MISSING_AT_PROVIDER",
)
# api.md 4 lists the kinds; OPERATION_STUCK is new (enum values may grow within v1).
KINDS: Final = (
    "TRIAL_BALANCE",
    "ACCOUNT_BOUND",
    "WALLET_BALANCE",
    "DEPOSIT",
    "PLATFORM_FEES",
    "ESCROW_BALANCE",
    "ESCROW_STATE",
    "TOPUP",
    "WITHDRAWAL",
    "CLEARING_AGE",
    "OPERATION_STUCK",
)
# The bounded label values of the drift gauges, per source.
ACCOUNT_CLASSES: Final[dict[Source, tuple[str, ...]]] = {
    "ledger": ("books", "operation"),
    "stellar": ("user", "platform"),
    "trustless_work": ("escrow",),
    "airtm": ("clearing",),
}


class _Frozen(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the comparison's value types."""


class Movement(_Frozen, frozen=True):
    """USDC an unbooked, landed transaction moved on chain (from one address to another)."""

    from_address: str
    to_address: str
    amount: int


class UserSide(_Frozen, frozen=True):
    """A user's ledger facts; ``public_key`` None when the user has no wallet."""

    user_id: str
    account_id: str | None
    public_key: str | None
    posted: int
    undelivered_topups: int = 0


class EscrowSide(_Frozen, frozen=True):
    """A deployed escrow with its ``escrow:<ord>`` account (posted balance)."""

    escrow_id: str
    order_id: str
    contract_id: str
    status: str
    account_id: str | None
    posted: int


class ClearingSide(_Frozen, frozen=True):
    """A clearing account and since when its posted balance is non-zero (None: it is zero)."""

    code: str
    account_id: str
    posted: int
    nonzero_since: datetime | None


class BoundBreach(_Frozen, frozen=True):
    """A bounded account over its bound: ``over`` is by how much."""

    account_id: str
    code: str
    over: int


class StuckOperation(_Frozen, frozen=True):
    """A durable operation still RUNNING."""

    operation_id: str
    kind: str
    step: str
    resource_type: str
    resource_id: str
    started_at: datetime
    attempts: int


class LedgerSide(_Frozen, frozen=True):
    """Everything read from the ledger in one snapshot (``position``: last transfer sequence)."""

    marketplace_id: str
    asset: str
    position: int
    as_of: datetime
    users: tuple[UserSide, ...] = ()
    escrows: tuple[EscrowSide, ...] = ()
    # fees:platform + treasury:stellar, posted, summed over every marketplace.
    platform_posted: int = 0
    clearing: tuple[ClearingSide, ...] = ()
    pending_difference: int = 0
    posted_difference: int = 0
    bound_breaches: tuple[BoundBreach, ...] = ()
    operations: tuple[StuckOperation, ...] = ()


class ContractState(_Frozen, frozen=True):
    """An escrow contract as read: USDC balance and flags."""

    contract_id: str
    balance: int
    is_released: bool = False
    is_resolved: bool = False
    is_disputed: bool = False


class ChainSide(_Frozen, frozen=True):
    """The chain at the pinned ledger. ``wallets`` maps address -> USDC (None: no account or
    no trustline); a contract missing from ``contracts`` was not found at the provider.
    """

    ledger: int
    wallets: dict[str, int | None] = msgspec.field(default_factory=dict)
    contracts: dict[str, ContractState] = msgspec.field(default_factory=dict)
    platform_address: str = ""
    platform_usdc: int | None = None
    unbooked: tuple[Movement, ...] = ()


class CompareSettings(_Frozen, frozen=True):
    """Which sources to check and the age limits (seconds) that make an item a discrepancy."""

    sources: frozenset[str] = frozenset(SOURCES)
    clearing_max_age_s: int = 3600
    operation_max_age_s: int = 3600


class Discrepancy(_Frozen, frozen=True):
    """One check of a run: ``MATCHED``, or a break with both amounts and their difference."""

    source: Source
    kind: str
    status: Status
    account_class: str
    detail: str
    resource_type: str | None = None
    resource_id: str | None = None
    account_id: str | None = None
    external_ref: str | None = None
    ledger_amount: int | None = None
    external_amount: int | None = None
    difference: int | None = None

    @property
    def key(self) -> tuple[str, str | None, str | None, str | None]:
        """What a record is about, stable across two passes (used to confirm a break)."""
        return (self.kind, self.resource_id, self.account_id, self.external_ref)


class Drift(_Frozen, frozen=True):
    """Signed drift (ledger - external) of one source and account class."""

    source: Source
    account_class: str
    amount: int
    unmatched: int
    # Sum of the absolute ledger amounts checked in the class: the ratio's denominator.
    checked_amount: int
