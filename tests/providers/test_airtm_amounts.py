"""Airtm's 2-decimal wire amounts <-> our scale-7 minor units, exactly and without floats."""

from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.money import AMOUNT_MINOR_MAX, parse_amount
from providers.airtm.amounts import CENT_MINOR, AirtmAmountError, airtm_to_minor, minor_to_airtm
from providers.airtm.port import PayinCreate

CENTS_MAX = AMOUNT_MINOR_MAX // CENT_MINOR


class Wire(msgspec.Struct):
    amount: Decimal


ENCODER = msgspec.json.Encoder(decimal_format="number")
DECODER = msgspec.json.Decoder(Wire)


@given(st.integers(min_value=0, max_value=CENTS_MAX))
def test_every_two_decimal_amount_round_trips_through_json_text(cents: int) -> None:
    minor = cents * CENT_MINOR
    text = ENCODER.encode(Wire(minor_to_airtm(minor)))

    assert text == f'{{"amount":{cents // 100}.{cents % 100:02d}}}'.encode()
    assert airtm_to_minor(DECODER.decode(text).amount) == minor
    assert minor == parse_amount(f"{cents // 100}.{cents % 100:02d}")


@given(st.integers(min_value=0, max_value=CENTS_MAX), st.integers(min_value=0, max_value=6))
def test_trailing_zeros_and_exponents_are_read_exactly(cents: int, extra_zeros: int) -> None:
    literal = f"{cents // 100}.{cents % 100:02d}" + "0" * extra_zeros
    scientific = f"{cents}E-2"

    assert airtm_to_minor(Decimal(literal)) == cents * CENT_MINOR
    assert airtm_to_minor(DECODER.decode(f'{{"amount":{scientific}}}'.encode()).amount) == (
        cents * CENT_MINOR
    )


@given(st.integers(min_value=1, max_value=AMOUNT_MINOR_MAX).filter(lambda m: m % CENT_MINOR))
def test_sub_cent_minor_units_never_reach_the_wire(minor: int) -> None:
    with pytest.raises(AirtmAmountError):
        minor_to_airtm(minor)


@pytest.mark.parametrize(
    "literal", ["12.345", "0.001", "-1", "-0.01", "NaN", "Infinity", "1E+30", "922337203685.48"]
)
def test_amounts_airtm_could_not_have_meant_are_refused(literal: str) -> None:
    with pytest.raises(AirtmAmountError):
        airtm_to_minor(Decimal(literal))


def test_largest_ledger_amount_in_whole_cents_is_accepted() -> None:
    assert airtm_to_minor(Decimal("922337203685.47")) == 9_223_372_036_854_700_000


def test_floats_and_bools_are_not_amounts() -> None:
    with pytest.raises(AirtmAmountError):
        minor_to_airtm(1.0)  # type: ignore[arg-type]
    with pytest.raises(AirtmAmountError):
        minor_to_airtm(True)


def test_requests_refuse_sub_cent_amounts_before_sending() -> None:
    with pytest.raises(ValueError, match="whole cents"):
        PayinCreate(
            code="topup_1",
            amount_minor=10_000_001,
            description="d",
            confirmation_uri="https://ok",
            cancel_uri="https://no",
        )
