"""Request Structs of the escrow port, in integer stroops, validated on construction.

A request that breaks a rule the contract would refuse anyway (providers.md 1.6) raises
``ValueError`` here: that is a bug in the caller, not a provider answer.
"""

from collections.abc import Sequence
from typing import Final, Literal

import msgspec

__all__ = [
    "MILESTONES_MAX",
    "ApproveMilestoneRequest",
    "ChangeMilestoneStatusRequest",
    "DeployMultiReleaseRequest",
    "DeploySingleReleaseRequest",
    "DisputeRequest",
    "Distribution",
    "EscrowRoles",
    "EscrowType",
    "FundRequest",
    "MilestoneSpec",
    "ReleaseMilestoneRequest",
    "ReleaseRequest",
    "ResolveDisputeRequest",
    "WithdrawRemainingRequest",
]

EscrowType = Literal["single-release", "multi-release"]

MILESTONES_MAX: Final = 50
_DISTRIBUTIONS_MAX: Final = 50
# platformFee is sent as an integer percent; the contract also requires fee + 0.3 % <= 100 %.
_PLATFORM_FEE_BPS_MAX: Final = 9_900


class _Frozen(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every port Struct: immutable and keyword-only."""


def _require_positive(name: str, value: int) -> None:
    if type(value) is not int or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _require_index(milestone_index: int) -> None:
    if type(milestone_index) is not int or milestone_index < 0:
        raise ValueError(f"milestone_index must be an int >= 0, got {milestone_index!r}")


def _require_index_for(escrow_type: EscrowType, milestone_index: int | None) -> None:
    # Single-release disputes and resolutions act on the whole escrow, multi-release ones on
    # one milestone.
    if escrow_type == "single-release":
        if milestone_index is not None:
            raise ValueError("single-release takes no milestone_index")
        return
    if milestone_index is None:
        raise ValueError("multi-release needs a milestone_index")
    _require_index(milestone_index)


class EscrowRoles(_Frozen, frozen=True):
    """The role addresses of an escrow (providers.md 1.2); ``receiver`` is single-release only."""

    approver: str
    service_provider: str
    platform_address: str
    release_signer: str
    dispute_resolver: str
    receiver: str | None = None


class Distribution(_Frozen, frozen=True):
    """One payout of a dispute resolution or withdraw: gross amount before fees."""

    address: str
    amount_minor: int

    def __post_init__(self) -> None:
        _require_positive("amount_minor", self.amount_minor)


def _check_distributions(distributions: Sequence[Distribution]) -> None:
    if not 1 <= len(distributions) <= _DISTRIBUTIONS_MAX:
        raise ValueError(f"1 to {_DISTRIBUTIONS_MAX} distributions are allowed")
    # The contract stores distributions as a map, so a repeated address would be merged.
    if len({d.address for d in distributions}) != len(distributions):
        raise ValueError("each distribution address may appear once")


def _check_platform_fee(platform_fee_bps: int) -> None:
    if not 0 <= platform_fee_bps <= _PLATFORM_FEE_BPS_MAX or platform_fee_bps % 100:
        raise ValueError("platform_fee_bps must be a whole percent (multiple of 100) <= 9900")


class MilestoneSpec(_Frozen, frozen=True):
    """A multi-release milestone at deploy time."""

    description: str
    amount_minor: int
    receiver: str

    def __post_init__(self) -> None:
        _require_positive("amount_minor", self.amount_minor)


class DeploySingleReleaseRequest(_Frozen, frozen=True):
    """Deploy a single-release escrow; ``signer`` pays for the deploy and gets no role."""

    signer: str
    engagement_id: str
    title: str
    description: str
    roles: EscrowRoles
    amount_minor: int
    platform_fee_bps: int
    milestone_descriptions: tuple[str, ...]
    trustline_address: str
    trustline_symbol: str = "USDC"
    receiver_memo: int | None = None

    def __post_init__(self) -> None:
        _require_positive("amount_minor", self.amount_minor)
        _check_platform_fee(self.platform_fee_bps)
        if not 1 <= len(self.milestone_descriptions) <= MILESTONES_MAX:
            raise ValueError(f"1 to {MILESTONES_MAX} milestones are allowed")
        if self.roles.receiver is None:
            raise ValueError("single-release roles need a receiver")


class DeployMultiReleaseRequest(_Frozen, frozen=True):
    """Deploy a multi-release escrow: each milestone carries its own amount and receiver."""

    signer: str
    engagement_id: str
    title: str
    description: str
    roles: EscrowRoles
    platform_fee_bps: int
    milestones: tuple[MilestoneSpec, ...]
    trustline_address: str
    trustline_symbol: str = "USDC"
    receiver_memo: int | None = None

    def __post_init__(self) -> None:
        _check_platform_fee(self.platform_fee_bps)
        if not 1 <= len(self.milestones) <= MILESTONES_MAX:
            raise ValueError(f"1 to {MILESTONES_MAX} milestones are allowed")
        if self.roles.receiver is not None:
            raise ValueError("multi-release roles have no receiver; set it per milestone")


class FundRequest(_Frozen, frozen=True):
    """Move ``amount_minor`` USDC from ``signer`` (the buyer) into the escrow contract."""

    escrow_type: EscrowType
    contract_id: str
    signer: str
    amount_minor: int

    def __post_init__(self) -> None:
        _require_positive("amount_minor", self.amount_minor)


class ChangeMilestoneStatusRequest(_Frozen, frozen=True):
    """Set a milestone's free-text status; signed by the service provider."""

    escrow_type: EscrowType
    contract_id: str
    milestone_index: int
    new_status: str
    service_provider: str
    new_evidence: str = ""

    def __post_init__(self) -> None:
        _require_index(self.milestone_index)
        if not self.new_status:
            raise ValueError("new_status must not be empty")


class ApproveMilestoneRequest(_Frozen, frozen=True):
    """Approve a milestone; signed by the approver, once per milestone."""

    escrow_type: EscrowType
    contract_id: str
    milestone_index: int
    approver: str

    def __post_init__(self) -> None:
        _require_index(self.milestone_index)


class ReleaseRequest(_Frozen, frozen=True):
    """Release a single-release escrow; signed by the release signer."""

    contract_id: str
    release_signer: str


class ReleaseMilestoneRequest(_Frozen, frozen=True):
    """Release one multi-release milestone; signed by the release signer."""

    contract_id: str
    milestone_index: int
    release_signer: str

    def __post_init__(self) -> None:
        _require_index(self.milestone_index)


class DisputeRequest(_Frozen, frozen=True):
    """Open a dispute; ``signer`` is the disputing buyer or seller, never the resolver."""

    escrow_type: EscrowType
    contract_id: str
    signer: str
    milestone_index: int | None = None

    def __post_init__(self) -> None:
        _require_index_for(self.escrow_type, self.milestone_index)


class ResolveDisputeRequest(_Frozen, frozen=True):
    """Resolve a dispute; the distributions must sum to the contract balance exactly."""

    escrow_type: EscrowType
    contract_id: str
    dispute_resolver: str
    distributions: tuple[Distribution, ...]
    milestone_index: int | None = None

    def __post_init__(self) -> None:
        _require_index_for(self.escrow_type, self.milestone_index)
        _check_distributions(self.distributions)


class WithdrawRemainingRequest(_Frozen, frozen=True):
    """Sweep what is left in a multi-release escrow; signed by the dispute resolver."""

    contract_id: str
    dispute_resolver: str
    distributions: tuple[Distribution, ...]

    def __post_init__(self) -> None:
        _check_distributions(self.distributions)
