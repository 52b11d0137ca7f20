"""The escrow port: what the orchestrator may ask of Trustless Work, in integer stroops.

Every mutating call is one of two kinds (providers.md 1.3):

- a **build** (``build_*``) returns an unsigned envelope and changes nothing on-chain, so it
  is always safe to retry;
- a **send** (``send_transaction``) submits a signed envelope and is keyed by the tx hash the
  caller computed and persisted before sending, so a retry or a Horizon lookup uses that key.

Errors are the three provider errors of ``providers.errors``. A send whose outcome is not known
raises ``ProviderUnavailable`` with ``reason == "outcome_unknown"``: look the hash up on Horizon.
"""

from collections.abc import Sequence
from typing import Final, Literal, Protocol

import msgspec

from providers.trustless_work.action_requests import (
    MILESTONES_MAX,
    ApproveMilestoneRequest,
    ChangeMilestoneStatusRequest,
    DeployMultiReleaseRequest,
    DeploySingleReleaseRequest,
    DisputeRequest,
    Distribution,
    EscrowRoles,
    EscrowType,
    FundRequest,
    MilestoneSpec,
    ReleaseMilestoneRequest,
    ReleaseRequest,
    ResolveDisputeRequest,
    WithdrawRemainingRequest,
)

__all__ = [
    "MILESTONES_MAX",
    "OUTCOME_UNKNOWN",
    "ApproveMilestoneRequest",
    "ChangeMilestoneStatusRequest",
    "DeployMultiReleaseRequest",
    "DeploySingleReleaseRequest",
    "DisputeRequest",
    "Distribution",
    "Escrow",
    "EscrowBalance",
    "EscrowProvider",
    "EscrowRoles",
    "EscrowStatus",
    "EscrowType",
    "FundRequest",
    "IndexerUpdate",
    "Milestone",
    "MilestoneSpec",
    "ReleaseMilestoneRequest",
    "ReleaseRequest",
    "ResolveDisputeRequest",
    "SendResult",
    "SignedTransaction",
    "UnsignedTransaction",
    "WithdrawRemainingRequest",
    "derive_status",
]

EscrowStatus = Literal["working", "funded", "pendingRelease", "disputed", "resolved", "released"]

OUTCOME_UNKNOWN: Final = "outcome_unknown"


class _Frozen(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every port Struct: immutable and keyword-only."""


class UnsignedTransaction(_Frozen, frozen=True):
    """A built, unsigned envelope. Verify it (``xdr_check``) before signing."""

    unsigned_xdr: str
    status: str | None = None


class SignedTransaction(_Frozen, frozen=True):
    """A signed envelope and its hash, persisted by the caller before it is sent."""

    tx_hash: str
    signed_xdr: str


class Milestone(_Frozen, frozen=True):
    """A milestone as read; multi-release ones also carry amount, receiver and flags."""

    description: str
    status: str
    evidence: str
    is_approved: bool
    amount_minor: int | None = None
    receiver: str | None = None
    is_disputed: bool = False
    is_released: bool = False
    is_resolved: bool = False


class Escrow(_Frozen, frozen=True):
    """The escrow read model; ``amount_minor`` is the milestone sum for multi-release."""

    contract_id: str
    escrow_type: EscrowType
    engagement_id: str
    title: str
    roles: EscrowRoles
    amount_minor: int
    platform_fee_bps: int
    balance_minor: int
    milestones: tuple[Milestone, ...]
    is_disputed: bool
    is_released: bool
    is_resolved: bool
    trustline_address: str | None = None
    is_active: bool | None = None

    @property
    def status(self) -> EscrowStatus:
        """The derived status (TW has no status field); see ``derive_status``."""
        return derive_status(self)


def derive_status(escrow: Escrow) -> EscrowStatus:
    """Derive an escrow's status in the order of providers.md 1.5.

    released, then resolved, then disputed, then pendingRelease (every milestone approved),
    then funded (balance covers the amount), else working. The order matters: a released
    escrow also has approved milestones, and a resolved one may still hold a balance.
    """
    if escrow.is_released:
        return "released"
    if escrow.is_resolved:
        return "resolved"
    if escrow.is_disputed:
        return "disputed"
    if escrow.milestones and all(m.is_approved for m in escrow.milestones):
        return "pendingRelease"
    if escrow.amount_minor > 0 and escrow.balance_minor >= escrow.amount_minor:
        return "funded"
    return "working"


class EscrowBalance(_Frozen, frozen=True):
    """A contract's USDC balance as TW reports it."""

    contract_id: str
    balance_minor: int


class SendResult(_Frozen, frozen=True):
    """A successful send. After a deploy, ``contract_id`` (and maybe ``escrow``) is set."""

    tx_hash: str
    status: str | None
    message: str | None
    contract_id: str | None = None
    escrow: Escrow | None = None


class IndexerUpdate(_Frozen, frozen=True):
    """TW's answer to a re-index request."""

    status: str | None
    message: str | None


class EscrowProvider(Protocol):
    """What the orchestrator needs from Trustless Work (the real client, a fake or the sandbox)."""

    async def build_deploy_single_release(
        self, request: DeploySingleReleaseRequest
    ) -> UnsignedTransaction:
        """Build the deploy of a single-release escrow (safe to retry)."""
        ...

    async def build_deploy_multi_release(
        self, request: DeployMultiReleaseRequest
    ) -> UnsignedTransaction:
        """Build the deploy of a multi-release escrow (safe to retry)."""
        ...

    async def build_fund(self, request: FundRequest) -> UnsignedTransaction:
        """Build a fund transaction (safe to retry)."""
        ...

    async def build_change_milestone_status(
        self, request: ChangeMilestoneStatusRequest
    ) -> UnsignedTransaction:
        """Build a milestone status change (safe to retry)."""
        ...

    async def build_approve_milestone(
        self, request: ApproveMilestoneRequest
    ) -> UnsignedTransaction:
        """Build a milestone approval (safe to retry)."""
        ...

    async def build_release(self, request: ReleaseRequest) -> UnsignedTransaction:
        """Build a single-release release of funds (safe to retry)."""
        ...

    async def build_release_milestone(
        self, request: ReleaseMilestoneRequest
    ) -> UnsignedTransaction:
        """Build a multi-release milestone release (safe to retry)."""
        ...

    async def build_dispute(self, request: DisputeRequest) -> UnsignedTransaction:
        """Build the opening of a dispute (safe to retry)."""
        ...

    async def build_resolve_dispute(self, request: ResolveDisputeRequest) -> UnsignedTransaction:
        """Build a dispute resolution (safe to retry)."""
        ...

    async def build_withdraw_remaining(
        self, request: WithdrawRemainingRequest
    ) -> UnsignedTransaction:
        """Build a sweep of the remaining multi-release funds (safe to retry)."""
        ...

    async def send_transaction(self, transaction: SignedTransaction) -> SendResult:
        """Submit a signed envelope, keyed by its precomputed hash.

        Raises:
            ProviderUnavailable: ``reason == "outcome_unknown"`` when it may have landed.
            ProviderRejected: TW refused the envelope.
        """
        ...

    async def get_escrows(
        self, contract_ids: Sequence[str], *, validate_on_chain: bool = True
    ) -> tuple[Escrow, ...]:
        """Read escrows by contract id (from the indexer, checked on-chain when asked)."""
        ...

    async def get_balances(self, contract_ids: Sequence[str]) -> tuple[EscrowBalance, ...]:
        """Read the USDC balances of escrow contracts."""
        ...

    async def update_from_tx_hash(self, tx_hash: str) -> IndexerUpdate:
        """Ask TW to re-index from a transaction submitted outside TW."""
        ...
