"""The simulated chain's data: ledger entries, stored transactions and payment records.

Everything a transaction can change lives in :class:`LedgerState`, so applying a transaction
atomically is "work on a copy, keep it or drop it". Amounts are int stroops.
"""

import copy
from dataclasses import dataclass, field
from typing import Final

from providers.stellar.result_codes import ResultCodes

__all__ = [
    "BASE_RESERVE",
    "INT64_MAX",
    "AccountEntry",
    "LedgerState",
    "OpRecord",
    "Trustline",
    "TxRecord",
    "asset_key",
]

BASE_RESERVE: Final = 5_000_000
INT64_MAX: Final = 2**63 - 1


def asset_key(code: str, issuer: str) -> str:
    """The key of a credit asset in trustline maps: ``CODE:ISSUER``."""
    return f"{code}:{issuer}"


@dataclass
class Trustline:
    """A trustline to one credit asset."""

    balance: int = 0
    limit: int = INT64_MAX
    authorized: bool = True
    sponsor: str | None = None


@dataclass
class AccountEntry:
    """An account: sequence, XLM, reserves bookkeeping, signers and trustlines."""

    account_id: str
    sequence: int
    xlm: int
    subentries: int = 0
    num_sponsoring: int = 0
    num_sponsored: int = 0
    sponsor: str | None = None
    master_weight: int = 1
    # Extra ed25519 signers: public key -> weight.
    signers: dict[str, int] = field(default_factory=dict)
    med_threshold: int = 0
    trustlines: dict[str, Trustline] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)
    last_modified_ledger: int = 0

    def min_balance(self) -> int:
        """Stellar's minimum balance: (2 + subentries + sponsoring - sponsored) x base reserve."""
        return (2 + self.subentries + self.num_sponsoring - self.num_sponsored) * BASE_RESERVE

    def signer_weights(self) -> dict[str, int]:
        """Every key that may sign for this account, with its weight."""
        weights = dict(self.signers)
        if self.master_weight > 0:
            weights[self.account_id] = self.master_weight
        return weights


@dataclass
class LedgerState:
    """All balances a transaction can touch, plus the running mint/burn/fee totals."""

    accounts: dict[str, AccountEntry] = field(default_factory=dict)
    # USDC held by contracts (C...), in stroops.
    contracts: dict[str, int] = field(default_factory=dict)
    minted: dict[str, int] = field(default_factory=dict)
    burned: dict[str, int] = field(default_factory=dict)
    fee_pool: int = 0

    def copy(self) -> "LedgerState":
        """A deep copy to apply a transaction on; the sandbox's state is small."""
        return copy.deepcopy(self)


@dataclass(frozen=True)
class TxRecord:
    """A transaction that made it into a ledger (successful or ``tx_failed``)."""

    hash: str
    ledger: int
    created_at: str
    successful: bool
    source_account: str
    source_sequence: int
    fee_account: str
    fee_charged: int
    max_fee: int
    operation_count: int
    envelope_xdr: str
    result_xdr: str
    result_codes: ResultCodes
    memo_type: str
    memo: str | None
    min_time: int
    max_time: int
    signatures: tuple[str, ...]
    # For a fee-bump: the inner hash (lookups by either hash find this record).
    inner_hash: str | None = None


@dataclass(frozen=True)
class OpRecord:
    """A payments-endpoint record: one operation of a stored transaction."""

    id: int
    type: str
    type_i: int
    tx_hash: str
    successful: bool
    created_at: str
    source_account: str
    # The type-specific JSON fields (``from``/``to``/``amount``, ``funder``/``account``, ...).
    fields: dict[str, object]
    participants: frozenset[str]
