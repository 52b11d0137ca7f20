"""The simulated escrow contracts: their state and the contract rules of providers.md 1.6.

Every rule raises :class:`ContractRuleError` with the contract's message text, so the same
function answers a build with HTTP 400 and traps the transaction when it is applied later
against a state that changed in between. The texts contain the substrings the orchestrator
matches (providers.md 1.8), for example "must be completed to release" for error [5].
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from providers.trustless_work.wire import WireRoles

__all__ = [
    "DISTRIBUTIONS_MAX",
    "MILESTONES_MAX",
    "ContractRuleError",
    "EscrowFlags",
    "EscrowRecord",
    "EscrowType",
    "MilestoneRecord",
    "check_approve",
    "check_change_status",
    "check_deploy",
    "check_dispute",
    "check_distributions",
    "check_fund",
    "check_release",
    "check_resolve",
    "check_withdraw",
    "milestone_at",
    "role_addresses",
]

EscrowType = Literal["single-release", "multi-release"]

MILESTONES_MAX: Final = 50
DISTRIBUTIONS_MAX: Final = 50
_BPS_DENOMINATOR: Final = 10_000
_PLATFORM_FEE_BPS_MAX: Final = 9_900

# Contract messages (V1 error numbers in brackets).
AMOUNT_ZERO: Final = "Amount cannot be zero"  # [1]
NOT_COMPLETED: Final = "The escrow must be completed to release earnings"  # [5]
UNDERFUNDED: Final = "The escrow balance must be equal to the amount of earnings defined"  # [6]
INVALID_INDEX: Final = "Invalid milestone index"  # [10]
ALREADY_DISPUTED: Final = "Escrow already in dispute"  # [13]
NOT_DISPUTED: Final = "Escrow not in dispute"  # [14]
ALREADY_RESOLVED: Final = "This escrow is already resolved"  # [24]
ALREADY_APPROVED: Final = "The milestone has already been approved"  # [29]
ALREADY_RELEASED: Final = "The escrow funds have been released"  # [35]
SUM_MISMATCH: Final = "The sum of distributions must equal the current escrow balance"  # [39]
RESOLVER_DISPUTES: Final = "The dispute resolver cannot dispute the escrow"  # [40]
INSUFFICIENT: Final = "The signer has insufficient funds to fund the escrow"  # [42]


class ContractRuleError(Exception):
    """A contract rule refused the call; the message is the contract's text."""


@dataclass
class EscrowFlags:
    """Escrow flags (single-release) or a milestone's flags (multi-release)."""

    disputed: bool = False
    released: bool = False
    resolved: bool = False


@dataclass
class MilestoneRecord:
    """A milestone; ``amount``/``receiver`` are set for multi-release only."""

    description: str
    status: str = "pending"
    evidence: str = ""
    approved: bool = False
    amount: int | None = None
    receiver: str | None = None
    flags: EscrowFlags = field(default_factory=EscrowFlags)


@dataclass
class EscrowRecord:
    """One deployed escrow contract (its USDC balance lives on the chain, not here)."""

    contract_id: str
    escrow_type: EscrowType
    signer: str
    engagement_id: str
    title: str
    description: str
    roles: WireRoles
    amount: int
    platform_fee_bps: int
    milestones: list[MilestoneRecord]
    trustline_address: str
    receiver_memo: int | None = None
    flags: EscrowFlags = field(default_factory=EscrowFlags)
    created_at_s: int = 0
    updated_at_s: int = 0


def role_addresses(roles: WireRoles) -> frozenset[str]:
    """Every address that holds a role (the parties that may open a dispute)."""
    addresses = {
        roles.approver,
        roles.service_provider,
        roles.platform_address,
        roles.release_signer,
        roles.dispute_resolver,
    }
    if roles.receiver is not None:
        addresses.add(roles.receiver)
    return frozenset(addresses)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ContractRuleError(message)


def check_deploy(
    amounts: Sequence[int], platform_fee_bps: int, milestones: int, trustless_work_fee_bps: int
) -> None:
    """Deploy: positive amounts, 1..50 milestones, platform fee <= 99 % and fees <= 100 %."""
    _require(milestones >= 1, "Escrow must have at least one milestone")
    _require(milestones <= MILESTONES_MAX, f"Cannot define more than {MILESTONES_MAX} milestones")
    for amount in amounts:
        _require(amount != 0, AMOUNT_ZERO)
        _require(amount > 0, "Amount must be greater than zero")
    _require(platform_fee_bps >= 0, "The platform fee cannot be negative")
    _require(platform_fee_bps <= _PLATFORM_FEE_BPS_MAX, "The platform fee cannot exceed 99%")
    _require(
        platform_fee_bps + trustless_work_fee_bps <= _BPS_DENOMINATOR,
        "The platform fee plus the Trustless Work fee cannot exceed 100%",
    )


def check_fund(amount: int, signer_balance: int | None) -> None:
    """Fund: a positive amount the signer holds (anyone may fund; over-funding is allowed)."""
    _require(amount != 0, AMOUNT_ZERO)
    _require(amount > 0, "Amount must be greater than zero")
    _require(signer_balance is not None and signer_balance >= amount, INSUFFICIENT)


def milestone_at(escrow: EscrowRecord, index_text: str | None) -> MilestoneRecord:
    """The milestone at a string index (``"0"``); error [10] when invalid."""
    text = index_text or ""
    _require(text.isdigit() and int(text) < len(escrow.milestones), INVALID_INDEX)
    return escrow.milestones[int(text)]


def check_change_status(escrow: EscrowRecord, signer: str, milestone: MilestoneRecord) -> None:
    """Change status: only the service provider (index checked by ``milestone_at``)."""
    _require(
        signer == escrow.roles.service_provider,
        "Only the service provider can change milestone status",
    )
    del milestone  # any milestone may change status; the text is free


def check_approve(escrow: EscrowRecord, signer: str, milestone: MilestoneRecord) -> None:
    """Approve: only the approver, once per milestone; it does not need status "completed"."""
    _require(signer == escrow.roles.approver, "Only the approver can approve milestones")
    _require(not milestone.approved, ALREADY_APPROVED)


def _check_open(flags: EscrowFlags) -> None:
    _require(not flags.released, ALREADY_RELEASED)
    _require(not flags.resolved, ALREADY_RESOLVED)
    _require(not flags.disputed, ALREADY_DISPUTED)


def check_release(
    escrow: EscrowRecord, signer: str, balance: int, milestone: MilestoneRecord | None
) -> int:
    """Release: the release signer, an open escrow, every milestone approved, funded.

    Returns the amount the fees apply to: the escrow amount (single) or the milestone's.
    """
    _require(signer == escrow.roles.release_signer, "Only the release signer can release funds")
    if milestone is None:
        _check_open(escrow.flags)
        approved = bool(escrow.milestones) and all(m.approved for m in escrow.milestones)
        _require(approved, NOT_COMPLETED)
        amount = escrow.amount
    else:
        _check_open(milestone.flags)
        _require(milestone.approved, NOT_COMPLETED)
        assert milestone.amount is not None
        amount = milestone.amount
    _require(balance >= amount, UNDERFUNDED)
    return amount


def check_dispute(escrow: EscrowRecord, signer: str, flags: EscrowFlags) -> None:
    """Dispute: a party of the escrow but never the resolver; not disputed, released, resolved."""
    _require(signer != escrow.roles.dispute_resolver, RESOLVER_DISPUTES)
    _require(signer in role_addresses(escrow.roles), "Only the escrow parties can open a dispute")
    _check_open(flags)


def check_distributions(distributions: Sequence[tuple[str, int]]) -> None:
    """1 to 50 positive distributions, one per address."""
    _require(len(distributions) >= 1, "At least one distribution is required")
    _require(len(distributions) <= DISTRIBUTIONS_MAX, "Too many distributions")
    for _, amount in distributions:
        _require(amount > 0, "Each distribution amount must be greater than zero")
    addresses = [address for address, _ in distributions]
    _require(len(set(addresses)) == len(addresses), "Each distribution address may appear once")


def check_resolve(
    escrow: EscrowRecord,
    signer: str,
    distributions: Sequence[tuple[str, int]],
    balance: int,
    milestone: MilestoneRecord | None,
) -> None:
    """Resolve: the resolver, a disputed escrow, and distributions summing exactly.

    Single-release: the sum equals the contract's current balance. Multi-release: the sum
    equals the milestone amount (the "safe" rule of providers.md 1.6).
    """
    _require(
        signer == escrow.roles.dispute_resolver,
        "Only the dispute resolver can execute this function",
    )
    flags = escrow.flags if milestone is None else milestone.flags
    _require(not flags.resolved, ALREADY_RESOLVED)
    _require(not flags.released, ALREADY_RELEASED)
    _require(flags.disputed, NOT_DISPUTED)
    check_distributions(distributions)
    total = sum(amount for _, amount in distributions)
    expected = balance if milestone is None else milestone.amount
    _require(total == expected, SUM_MISMATCH)
    _require(total <= balance, UNDERFUNDED)


def check_withdraw(
    escrow: EscrowRecord, signer: str, distributions: Sequence[tuple[str, int]], balance: int
) -> None:
    """Withdraw remaining (multi-release): the resolver, every milestone settled, Σ == balance."""
    _require(
        signer == escrow.roles.dispute_resolver,
        "Only the dispute resolver can execute this function",
    )
    settled = all(m.flags.released or m.flags.resolved for m in escrow.milestones)
    _require(settled, "All milestones must be released or resolved before withdrawing")
    check_distributions(distributions)
    _require(sum(amount for _, amount in distributions) == balance, SUM_MISMATCH)
