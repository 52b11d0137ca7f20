"""Request bodies of the Trustless Work V1 endpoints (providers.md 1.4), as sent on the wire.

The client encodes them with ``wire.WIRE_ENCODER``; a sandbox decodes incoming requests with
the same Structs, so both sides agree on field names and on amounts being JSON numbers.
``milestoneIndex`` is a string on the wire (``"0"``).
"""

from decimal import Decimal

import msgspec

from providers.trustless_work.wire import (
    WireDeployMilestone,
    WireDistribution,
    WireRoles,
    WireTrustline,
)

__all__ = [
    "ApproveMilestoneBody",
    "ChangeMilestoneStatusBody",
    "DeployMultiReleaseBody",
    "DeploySingleReleaseBody",
    "DisputeBody",
    "FundBody",
    "IndexerBody",
    "ReleaseBody",
    "ResolveDisputeBody",
    "SendTransactionBody",
    "WithdrawRemainingBody",
]


class _Body(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """Base of the bodies: camelCase keys, optional fields left out when unset."""


class DeploySingleReleaseBody(_Body, frozen=True):
    """POST ``/deployer/single-release``; ``platformFee`` is a percent number."""

    signer: str
    engagement_id: str
    title: str
    description: str
    roles: WireRoles
    amount: Decimal
    platform_fee: Decimal
    milestones: tuple[WireDeployMilestone, ...]
    trustline: WireTrustline
    receiver_memo: int | None = None


class DeployMultiReleaseBody(_Body, frozen=True):
    """POST ``/deployer/multi-release``: no top-level amount; milestones carry amounts."""

    signer: str
    engagement_id: str
    title: str
    description: str
    roles: WireRoles
    platform_fee: Decimal
    milestones: tuple[WireDeployMilestone, ...]
    trustline: WireTrustline
    receiver_memo: int | None = None


class FundBody(_Body, frozen=True):
    """POST ``/escrow/{t}/fund-escrow``."""

    contract_id: str
    amount: Decimal
    signer: str


class ChangeMilestoneStatusBody(_Body, frozen=True):
    """POST ``/escrow/{t}/change-milestone-status``; ``newEvidence`` is always sent."""

    contract_id: str
    milestone_index: str
    new_status: str
    new_evidence: str
    service_provider: str


class ApproveMilestoneBody(_Body, frozen=True):
    """POST ``/escrow/{t}/approve-milestone``."""

    contract_id: str
    milestone_index: str
    approver: str


class ReleaseBody(_Body, frozen=True):
    """POST release-funds (single) or release-milestone-funds (multi, with the index)."""

    contract_id: str
    release_signer: str
    milestone_index: str | None = None


class DisputeBody(_Body, frozen=True):
    """POST dispute-escrow (single) or dispute-milestone (multi, with the index)."""

    contract_id: str
    signer: str
    milestone_index: str | None = None


class ResolveDisputeBody(_Body, frozen=True):
    """POST resolve-dispute (single) or resolve-milestone-dispute (multi, with the index)."""

    contract_id: str
    dispute_resolver: str
    distributions: tuple[WireDistribution, ...]
    milestone_index: str | None = None


class WithdrawRemainingBody(_Body, frozen=True):
    """POST ``/escrow/multi-release/withdraw-remaining-funds``."""

    contract_id: str
    dispute_resolver: str
    distributions: tuple[WireDistribution, ...]


class SendTransactionBody(_Body, frozen=True):
    """POST ``/helper/send-transaction``."""

    signed_xdr: str


class IndexerBody(_Body, frozen=True):
    """POST ``/indexer/update-from-txHash``; the key is ``txHash``."""

    tx_hash: str
