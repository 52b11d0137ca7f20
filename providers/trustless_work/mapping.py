"""Translation between the port (integer stroops, snake_case) and TW's wire shapes.

Requests become bodies with amounts as exact Decimals; escrow reads become the ``Escrow``
read model with amounts converted back to stroops. Percent and basis points meet here too:
TW's ``platformFee`` is a percent, the port speaks basis points.
"""

from decimal import Decimal
from typing import Final, get_args

from providers.trustless_work import bodies
from providers.trustless_work.port import (
    DeployMultiReleaseRequest,
    DeploySingleReleaseRequest,
    Distribution,
    Escrow,
    EscrowRoles,
    EscrowType,
    Milestone,
    ResolveDisputeRequest,
    WithdrawRemainingRequest,
)
from providers.trustless_work.wire import (
    WireDeployMilestone,
    WireDistribution,
    WireEscrow,
    WireMilestone,
    WireRoles,
    WireTrustline,
    decimal_to_minor,
    minor_to_decimal,
)

__all__ = [
    "deploy_multi_release_body",
    "deploy_single_release_body",
    "escrow_from_wire",
    "resolve_dispute_body",
    "withdraw_remaining_body",
]

_BPS_PER_PERCENT: Final = 100
_ESCROW_TYPES: Final[tuple[str, ...]] = get_args(EscrowType)


def _wire_roles(roles: EscrowRoles) -> WireRoles:
    return WireRoles(
        approver=roles.approver,
        service_provider=roles.service_provider,
        platform_address=roles.platform_address,
        release_signer=roles.release_signer,
        dispute_resolver=roles.dispute_resolver,
        receiver=roles.receiver,
    )


def _percent(platform_fee_bps: int) -> Decimal:
    # The request validated a whole percent, so this division is exact.
    return Decimal(platform_fee_bps // _BPS_PER_PERCENT)


def _wire_distributions(distributions: tuple[Distribution, ...]) -> tuple[WireDistribution, ...]:
    return tuple(
        WireDistribution(address=d.address, amount=minor_to_decimal(d.amount_minor))
        for d in distributions
    )


def deploy_single_release_body(
    request: DeploySingleReleaseRequest,
) -> bodies.DeploySingleReleaseBody:
    """Build the single-release deploy body; amounts in human units, fee in percent."""
    return bodies.DeploySingleReleaseBody(
        signer=request.signer,
        engagement_id=request.engagement_id,
        title=request.title,
        description=request.description,
        roles=_wire_roles(request.roles),
        amount=minor_to_decimal(request.amount_minor),
        platform_fee=_percent(request.platform_fee_bps),
        milestones=tuple(
            WireDeployMilestone(description=d) for d in request.milestone_descriptions
        ),
        trustline=WireTrustline(address=request.trustline_address, symbol=request.trustline_symbol),
        receiver_memo=request.receiver_memo,
    )


def deploy_multi_release_body(request: DeployMultiReleaseRequest) -> bodies.DeployMultiReleaseBody:
    """Build the multi-release deploy body: each milestone with its amount and receiver."""
    milestones = tuple(
        WireDeployMilestone(
            description=m.description,
            amount=minor_to_decimal(m.amount_minor),
            receiver=m.receiver,
        )
        for m in request.milestones
    )
    return bodies.DeployMultiReleaseBody(
        signer=request.signer,
        engagement_id=request.engagement_id,
        title=request.title,
        description=request.description,
        roles=_wire_roles(request.roles),
        platform_fee=_percent(request.platform_fee_bps),
        milestones=milestones,
        trustline=WireTrustline(address=request.trustline_address, symbol=request.trustline_symbol),
        receiver_memo=request.receiver_memo,
    )


def _index_text(milestone_index: int | None) -> str | None:
    return None if milestone_index is None else str(milestone_index)


def resolve_dispute_body(request: ResolveDisputeRequest) -> bodies.ResolveDisputeBody:
    """Build a resolve body; the milestone index is sent only for multi-release."""
    return bodies.ResolveDisputeBody(
        contract_id=request.contract_id,
        dispute_resolver=request.dispute_resolver,
        distributions=_wire_distributions(request.distributions),
        milestone_index=_index_text(request.milestone_index),
    )


def withdraw_remaining_body(request: WithdrawRemainingRequest) -> bodies.WithdrawRemainingBody:
    """Build a withdraw-remaining body."""
    return bodies.WithdrawRemainingBody(
        contract_id=request.contract_id,
        dispute_resolver=request.dispute_resolver,
        distributions=_wire_distributions(request.distributions),
    )


def _milestone(wire: WireMilestone) -> Milestone:
    flags = wire.flags
    return Milestone(
        description=wire.description,
        status=wire.status,
        evidence=wire.evidence,
        is_approved=wire.approved or (flags is not None and flags.approved),
        amount_minor=None if wire.amount is None else decimal_to_minor(wire.amount),
        receiver=wire.receiver,
        is_disputed=flags is not None and flags.disputed,
        is_released=flags is not None and flags.released,
        is_resolved=flags is not None and flags.resolved,
    )


def _platform_fee_bps(percent: Decimal) -> int:
    bps = percent * _BPS_PER_PERCENT
    if bps != bps.to_integral_value() or bps < 0:
        raise ValueError(f"platformFee {percent} is not a whole number of basis points")
    return int(bps)


def _escrow_type(wire: WireEscrow) -> EscrowType:
    # Reads without "type" come from older indexer rows; milestone amounts mean multi-release.
    if wire.escrow_type is None:
        has_amounts = any(m.amount is not None for m in wire.milestones)
        return "multi-release" if has_amounts else "single-release"
    if wire.escrow_type not in _ESCROW_TYPES:
        raise ValueError(f"unknown escrow type {wire.escrow_type!r}")
    return "multi-release" if wire.escrow_type == "multi-release" else "single-release"


def escrow_from_wire(wire: WireEscrow, *, contract_id: str | None = None) -> Escrow:
    """Convert a TW escrow object into the read model.

    Args:
        wire: The decoded escrow object.
        contract_id: Used when the object itself has no ``contractId`` (deploy replies).

    Raises:
        ValueError: An amount is negative or not representable, the fee is fractional in
            bps, the type is unknown, or a single-release escrow has no amount.
    """
    escrow_type = _escrow_type(wire)
    milestones = tuple(_milestone(m) for m in wire.milestones)
    if escrow_type == "single-release":
        if wire.amount is None:
            raise ValueError("a single-release escrow must carry an amount")
        amount_minor = decimal_to_minor(wire.amount)
        flags = wire.flags
        is_disputed = flags is not None and flags.disputed
        is_released = flags is not None and flags.released
        is_resolved = flags is not None and flags.resolved
    else:
        amount_minor = sum(m.amount_minor or 0 for m in milestones)
        is_disputed, is_released, is_resolved = _multi_release_flags(milestones)
    return Escrow(
        contract_id=wire.contract_id or contract_id or "",
        escrow_type=escrow_type,
        engagement_id=wire.engagement_id,
        title=wire.title,
        roles=_roles(wire.roles),
        amount_minor=amount_minor,
        platform_fee_bps=_platform_fee_bps(wire.platform_fee),
        balance_minor=decimal_to_minor(wire.balance),
        milestones=milestones,
        is_disputed=is_disputed,
        is_released=is_released,
        is_resolved=is_resolved,
        trustline_address=None if wire.trustline is None else wire.trustline.address,
        is_active=wire.is_active,
    )


def _roles(wire: WireRoles) -> EscrowRoles:
    return EscrowRoles(
        approver=wire.approver,
        service_provider=wire.service_provider,
        platform_address=wire.platform_address,
        release_signer=wire.release_signer,
        dispute_resolver=wire.dispute_resolver,
        receiver=wire.receiver,
    )


def _multi_release_flags(milestones: tuple[Milestone, ...]) -> tuple[bool, bool, bool]:
    # A multi-release escrow has flags per milestone. The escrow counts as released when every
    # milestone is, resolved when every milestone is settled and at least one by resolution,
    # and disputed while any milestone is.
    is_disputed = any(m.is_disputed for m in milestones)
    is_released = bool(milestones) and all(m.is_released for m in milestones)
    is_settled = bool(milestones) and all(m.is_released or m.is_resolved for m in milestones)
    is_resolved = is_settled and any(m.is_resolved for m in milestones)
    return is_disputed, is_released, is_resolved
