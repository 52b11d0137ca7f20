"""The escrow port: status derivation order (providers.md 1.5), request rules and wire amounts."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.trustless_work.port import (
    DeploySingleReleaseRequest,
    DisputeRequest,
    Distribution,
    Escrow,
    EscrowRoles,
    EscrowStatus,
    FundRequest,
    Milestone,
    ResolveDisputeRequest,
    WithdrawRemainingRequest,
    derive_status,
)
from providers.trustless_work.wire import WIRE_ENCODER, decimal_to_minor, minor_to_decimal

ROLES = EscrowRoles(
    approver="GB",
    service_provider="GS",
    platform_address="GP",
    release_signer="GB",
    dispute_resolver="GP",
    receiver="GS",
)


def _escrow(
    *,
    is_released: bool = False,
    is_resolved: bool = False,
    is_disputed: bool = False,
    is_approved: bool = False,
    balance_minor: int = 0,
) -> Escrow:
    milestone = Milestone(description="m", status="", evidence="", is_approved=is_approved)
    return Escrow(
        contract_id="C1",
        escrow_type="single-release",
        engagement_id="ord_1",
        title="t",
        roles=ROLES,
        amount_minor=100,
        platform_fee_bps=500,
        balance_minor=balance_minor,
        milestones=(milestone,),
        is_disputed=is_disputed,
        is_released=is_released,
        is_resolved=is_resolved,
    )


@pytest.mark.parametrize(
    ("escrow", "status"),
    [
        (_escrow(), "working"),
        (_escrow(balance_minor=99), "working"),
        (_escrow(balance_minor=100), "funded"),
        (_escrow(balance_minor=150), "funded"),
        (_escrow(balance_minor=100, is_approved=True), "pendingRelease"),
        (_escrow(balance_minor=100, is_approved=True, is_disputed=True), "disputed"),
        (_escrow(is_approved=True, is_disputed=True, is_resolved=True), "resolved"),
        (_escrow(is_approved=True, is_resolved=True, is_released=True), "released"),
    ],
)
def test_status_is_derived_in_order(escrow: Escrow, status: EscrowStatus) -> None:
    assert derive_status(escrow) == status
    assert escrow.status == status


def test_escrow_without_milestones_is_never_pending_release() -> None:
    escrow = _escrow(balance_minor=100).__replace__(milestones=())
    assert escrow.status == "funded"


def _deploy(**overrides: object) -> DeploySingleReleaseRequest:
    fields: dict[str, object] = {
        "signer": "GP",
        "engagement_id": "ord_1",
        "title": "t",
        "description": "d",
        "roles": ROLES,
        "amount_minor": 100,
        "platform_fee_bps": 500,
        "milestone_descriptions": ("m",),
        "trustline_address": "GI",
    }
    fields.update(overrides)
    return DeploySingleReleaseRequest(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "overrides",
    [
        {"amount_minor": 0},
        {"platform_fee_bps": 550},
        {"platform_fee_bps": 10_000},
        {"milestone_descriptions": ()},
        {"milestone_descriptions": ("m",) * 51},
        {"roles": ROLES.__replace__(receiver=None)},
    ],
)
def test_deploy_request_refuses_what_the_contract_refuses(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"amount|platform_fee|milestones|receiver"):
        _deploy(**overrides)


def test_milestone_index_follows_the_escrow_type() -> None:
    with pytest.raises(ValueError, match="multi-release needs"):
        DisputeRequest(escrow_type="multi-release", contract_id="C1", signer="GB")
    with pytest.raises(ValueError, match="single-release takes no"):
        DisputeRequest(
            escrow_type="single-release", contract_id="C1", signer="GB", milestone_index=0
        )


def test_distributions_are_unique_positive_and_bounded() -> None:
    one = Distribution(address="GB", amount_minor=1)
    with pytest.raises(ValueError, match="once"):
        WithdrawRemainingRequest(contract_id="C1", dispute_resolver="GP", distributions=(one, one))
    with pytest.raises(ValueError, match="1 to 50"):
        ResolveDisputeRequest(
            escrow_type="single-release", contract_id="C1", dispute_resolver="GP", distributions=()
        )
    with pytest.raises(ValueError, match="positive"):
        Distribution(address="GB", amount_minor=0)
    with pytest.raises(ValueError, match="positive"):
        FundRequest(escrow_type="single-release", contract_id="C1", signer="GB", amount_minor=-5)


@pytest.mark.parametrize(
    ("literal", "minor"),
    [
        ("12.3456789", 123_456_789),
        ("0.30000000000000004", 3_000_000),
        ("1e-7", 1),
        ("100", 1_000_000_000),
        ("922337203685.4775807", 2**63 - 1),
        ("0.00000005", 0),
        ("0.00000015", 2),
    ],
)
def test_wire_amounts_decode_exactly(literal: str, minor: int) -> None:
    assert decimal_to_minor(Decimal(literal)) == minor


@pytest.mark.parametrize("literal", ["-0.1", "922337203685.4775808", "NaN", "Infinity"])
def test_wire_amounts_out_of_range_are_refused(literal: str) -> None:
    with pytest.raises(ValueError, match="amount"):
        decimal_to_minor(Decimal(literal))


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_wire_amounts_round_trip_through_json_numbers(minor: int) -> None:
    encoded = WIRE_ENCODER.encode({"amount": minor_to_decimal(minor)})
    assert not encoded.startswith(b'{"amount":"')
    literal = encoded.removeprefix(b'{"amount":').removesuffix(b"}").decode()
    assert decimal_to_minor(Decimal(literal)) == minor
