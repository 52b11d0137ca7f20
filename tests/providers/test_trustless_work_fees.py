"""The fee math of providers.md 1.7: the R/D table as literal vectors, then properties."""

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.trustless_work.fees import (
    BPS_DENOMINATOR,
    FeeSplit,
    distribution_split,
    release_split,
)

PLATFORM_FEE_BPS = 500  # 5 %, as in the table


@pytest.mark.parametrize(
    ("case", "amount_minor", "platform_fee_bps", "expected"),
    [
        ("R1", 1_000_000_000, 500, (3_000_000, 50_000_000, 947_000_000)),
        ("R2", 123_456_789, 500, (370_370, 6_172_839, 116_913_580)),
        ("R3", 123_456_789, 0, (370_370, 0, 123_086_419)),
    ],
)
def test_release_rows(
    case: str, amount_minor: int, platform_fee_bps: int, expected: tuple[int, int, int]
) -> None:
    split = release_split(amount_minor, platform_fee_bps=platform_fee_bps)
    trustless_work_minor, platform_minor, net_minor = expected
    assert split == FeeSplit(
        total_minor=amount_minor,
        trustless_work_minor=trustless_work_minor,
        platform_minor=platform_minor,
        net_minor=net_minor,
    ), case


def test_d1_full_refund_is_not_free() -> None:
    split = distribution_split([1_000_000_000], platform_fee_bps=PLATFORM_FEE_BPS)
    (buyer,) = split.recipients
    assert (buyer.trustless_work_minor, buyer.platform_minor, buyer.net_minor) == (
        3_000_000,
        50_000_000,
        947_000_000,
    )
    assert (split.trustless_work_minor, split.platform_minor) == (3_000_000, 50_000_000)


def test_d2_split_sixty_forty() -> None:
    split = distribution_split([600_000_000, 400_000_000], platform_fee_bps=PLATFORM_FEE_BPS)
    seller, buyer = split.recipients
    assert (seller.trustless_work_minor, buyer.trustless_work_minor) == (1_800_000, 1_200_000)
    assert (seller.platform_minor, buyer.platform_minor) == (30_000_000, 20_000_000)
    assert (seller.net_minor, buyer.net_minor) == (568_200_000, 378_800_000)


def test_d3_split_rounding_favours_recipients() -> None:
    split = distribution_split([70_000_001, 53_456_788], platform_fee_bps=PLATFORM_FEE_BPS)
    seller, buyer = split.recipients
    assert (seller.trustless_work_minor, buyer.trustless_work_minor) == (209_999, 160_370)
    assert split.trustless_work_minor == 370_369
    assert (seller.platform_minor, buyer.platform_minor) == (3_499_999, 2_672_839)
    assert split.platform_minor == 6_172_838
    assert (seller.net_minor, buyer.net_minor) == (66_290_003, 50_623_579)
    # The formula on the total is one stroop higher per fee: the recipients keep it.
    assert (split.formula.trustless_work_minor, split.formula.platform_minor) == (
        370_370,
        6_172_839,
    )


def test_trustless_work_fee_is_configurable() -> None:
    split = release_split(1_000_000_000, platform_fee_bps=0, trustless_work_fee_bps=0)
    assert split.net_minor == 1_000_000_000


@pytest.mark.parametrize(
    ("amount_minor", "platform_fee_bps", "trustless_work_fee_bps"),
    [(0, 500, 30), (-1, 500, 30), (100, -1, 30), (100, 9_980, 30), (100, 500, 10_001)],
)
def test_release_split_refuses_bad_input(
    amount_minor: int, platform_fee_bps: int, trustless_work_fee_bps: int
) -> None:
    with pytest.raises(ValueError, match=r"amount|fee"):
        release_split(
            amount_minor,
            platform_fee_bps=platform_fee_bps,
            trustless_work_fee_bps=trustless_work_fee_bps,
        )


def test_release_split_refuses_bool_and_float() -> None:
    with pytest.raises(ValueError, match="amount"):
        release_split(1.5, platform_fee_bps=500)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fee"):
        release_split(100, platform_fee_bps=True)


def test_distribution_split_refuses_empty_and_non_positive() -> None:
    with pytest.raises(ValueError, match="at least one"):
        distribution_split([], platform_fee_bps=500)
    with pytest.raises(ValueError, match="amount"):
        distribution_split([100, 0], platform_fee_bps=500)


amounts = st.integers(min_value=1, max_value=2**63 - 1)
fees_bps = st.tuples(
    st.integers(min_value=0, max_value=9_900), st.integers(min_value=0, max_value=100)
)


def _parts(split: FeeSplit) -> tuple[int, int, int]:
    return split.trustless_work_minor, split.platform_minor, split.net_minor


@given(amount_minor=amounts, fees=fees_bps)
def test_release_parts_sum_exactly_and_match_the_formula(
    amount_minor: int, fees: tuple[int, int]
) -> None:
    platform_fee_bps, trustless_work_fee_bps = fees
    split = release_split(
        amount_minor,
        platform_fee_bps=platform_fee_bps,
        trustless_work_fee_bps=trustless_work_fee_bps,
    )
    assert sum(_parts(split)) == amount_minor
    assert min(_parts(split)) >= 0
    assert split.trustless_work_minor * BPS_DENOMINATOR <= amount_minor * trustless_work_fee_bps
    assert split.platform_minor * BPS_DENOMINATOR <= amount_minor * platform_fee_bps


@given(
    amounts_minor=st.lists(st.integers(min_value=1, max_value=10**15), min_size=1, max_size=50),
    fees=fees_bps,
)
def test_distribution_sums_exactly_and_favours_recipients(
    amounts_minor: list[int], fees: tuple[int, int]
) -> None:
    platform_fee_bps, trustless_work_fee_bps = fees
    split = distribution_split(
        amounts_minor,
        platform_fee_bps=platform_fee_bps,
        trustless_work_fee_bps=trustless_work_fee_bps,
    )
    total_minor = sum(amounts_minor)
    net_minor = sum(r.net_minor for r in split.recipients)
    assert net_minor + split.trustless_work_minor + split.platform_minor == total_minor
    # The fee accounts never get more than the formula, and at most n - 1 stroops less.
    shortfall_max = len(amounts_minor) - 1
    tw_formula, pf_formula = split.formula.trustless_work_minor, split.formula.platform_minor
    assert tw_formula - shortfall_max <= split.trustless_work_minor <= tw_formula
    assert pf_formula - shortfall_max <= split.platform_minor <= pf_formula
    for amount_minor, recipient in zip(amounts_minor, split.recipients, strict=True):
        assert recipient.total_minor == amount_minor
        assert sum(_parts(recipient)) == amount_minor
        assert min(_parts(recipient)) >= 0
        # Each recipient bears at most its exact pro-rata share of each fee, never more.
        exact_tw = Fraction(amount_minor * tw_formula, total_minor)
        exact_pf = Fraction(amount_minor * pf_formula, total_minor)
        assert exact_tw - 1 < recipient.trustless_work_minor <= exact_tw
        assert exact_pf - 1 < recipient.platform_minor <= exact_pf
        assert recipient.net_minor >= amount_minor - exact_tw - exact_pf
