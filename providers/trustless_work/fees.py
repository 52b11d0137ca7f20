"""The escrow contract's fee arithmetic (providers.md 1.7), in integer stroops only.

Both the release payout and every dispute/withdraw payout pay a Trustless Work fee and the
platform fee. The contract computes them with integer floor division; these functions repeat
that arithmetic so the ledger can compare the on-chain transfers with the formula.
"""

from collections.abc import Sequence
from typing import Final

import msgspec

__all__ = [
    "BPS_DENOMINATOR",
    "TRUSTLESS_WORK_FEE_BPS_DEFAULT",
    "DistributionSplit",
    "FeeSplit",
    "distribution_split",
    "release_split",
]

BPS_DENOMINATOR: Final = 10_000
# The contract constant is 0.3 %; configurable because whether it applies on testnet is uncertain.
TRUSTLESS_WORK_FEE_BPS_DEFAULT: Final = 30


class FeeSplit(msgspec.Struct, frozen=True, kw_only=True):
    """How one payout total divides: TW fee, platform fee and what the recipient nets.

    ``trustless_work_minor + platform_minor + net_minor == total_minor`` always holds.
    """

    total_minor: int
    trustless_work_minor: int
    platform_minor: int
    net_minor: int


class DistributionSplit(msgspec.Struct, frozen=True, kw_only=True):
    """A dispute resolution or withdraw split across several recipients.

    ``formula`` holds the fees computed on the grand total; ``recipients`` holds each
    recipient's pro-rata share in input order. The fee accounts receive the sums of the
    per-recipient fees, which can be up to ``len(recipients) - 1`` stroops below the formula.
    """

    formula: FeeSplit
    recipients: tuple[FeeSplit, ...]
    trustless_work_minor: int
    platform_minor: int


def _check_bps(platform_fee_bps: int, trustless_work_fee_bps: int) -> None:
    # Booleans are ints in Python; a True fee would silently mean 1 bps.
    for bps in (platform_fee_bps, trustless_work_fee_bps):
        if type(bps) is not int or not 0 <= bps <= BPS_DENOMINATOR:
            raise ValueError(f"fee must be an int between 0 and {BPS_DENOMINATOR} bps, got {bps!r}")
    if platform_fee_bps + trustless_work_fee_bps > BPS_DENOMINATOR:
        raise ValueError("platform fee plus Trustless Work fee exceed 100 %")


def _check_amount(amount_minor: int) -> None:
    if type(amount_minor) is not int or amount_minor <= 0:
        raise ValueError(f"amount must be a positive int of stroops, got {amount_minor!r}")


def release_split(
    amount_minor: int,
    *,
    platform_fee_bps: int,
    trustless_work_fee_bps: int = TRUSTLESS_WORK_FEE_BPS_DEFAULT,
) -> FeeSplit:
    """Split a release payout into TW fee, platform fee and the receiver's net.

    Args:
        amount_minor: The escrow amount (single-release) or milestone amount, in stroops.
        platform_fee_bps: The escrow's platform fee in basis points (5 % is 500).
        trustless_work_fee_bps: Trustless Work's fee in basis points.

    Returns:
        The split; its three parts sum to ``amount_minor``.

    Raises:
        ValueError: The amount is not a positive int, or a fee is outside 0..10000 bps
            or both fees together exceed 100 %.
    """
    _check_amount(amount_minor)
    _check_bps(platform_fee_bps, trustless_work_fee_bps)
    trustless_work_minor = amount_minor * trustless_work_fee_bps // BPS_DENOMINATOR
    platform_minor = amount_minor * platform_fee_bps // BPS_DENOMINATOR
    net_minor = amount_minor - trustless_work_minor - platform_minor
    assert net_minor >= 0
    return FeeSplit(
        total_minor=amount_minor,
        trustless_work_minor=trustless_work_minor,
        platform_minor=platform_minor,
        net_minor=net_minor,
    )


def distribution_split(
    amounts_minor: Sequence[int],
    *,
    platform_fee_bps: int,
    trustless_work_fee_bps: int = TRUSTLESS_WORK_FEE_BPS_DEFAULT,
) -> DistributionSplit:
    """Split a dispute resolution or withdraw across its recipients, pro rata and floored.

    The fees are computed on the grand total ``T``; each recipient ``i`` then bears
    ``a_i * fee // T`` of each fee, so rounding always favours the recipient.

    Args:
        amounts_minor: Each recipient's gross amount in stroops, in distribution order.
        platform_fee_bps: The escrow's platform fee in basis points.
        trustless_work_fee_bps: Trustless Work's fee in basis points.

    Returns:
        The formula fees on the total, each recipient's split and the fee account totals.

    Raises:
        ValueError: No amounts, a non-positive amount, or fees out of range.
    """
    if not amounts_minor:
        raise ValueError("a distribution needs at least one recipient")
    for amount_minor in amounts_minor:
        _check_amount(amount_minor)
    total_minor = sum(amounts_minor)
    formula = release_split(
        total_minor,
        platform_fee_bps=platform_fee_bps,
        trustless_work_fee_bps=trustless_work_fee_bps,
    )
    recipients = tuple(_recipient_share(a, formula) for a in amounts_minor)
    trustless_work_minor = sum(r.trustless_work_minor for r in recipients)
    platform_minor = sum(r.platform_minor for r in recipients)
    net_minor = sum(r.net_minor for r in recipients)
    assert trustless_work_minor + platform_minor + net_minor == total_minor
    assert trustless_work_minor <= formula.trustless_work_minor
    assert platform_minor <= formula.platform_minor
    return DistributionSplit(
        formula=formula,
        recipients=recipients,
        trustless_work_minor=trustless_work_minor,
        platform_minor=platform_minor,
    )


def _recipient_share(amount_minor: int, formula: FeeSplit) -> FeeSplit:
    trustless_work_minor = amount_minor * formula.trustless_work_minor // formula.total_minor
    platform_minor = amount_minor * formula.platform_minor // formula.total_minor
    return FeeSplit(
        total_minor=amount_minor,
        trustless_work_minor=trustless_work_minor,
        platform_minor=platform_minor,
        net_minor=amount_minor - trustless_work_minor - platform_minor,
    )
