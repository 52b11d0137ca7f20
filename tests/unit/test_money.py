"""Money parsing and formatting: exact, string-only, scale 7."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.money import (
    AMOUNT_MINOR_MAX,
    AmountFormatError,
    format_amount,
    format_signed_amount,
    parse_amount,
    parse_signed_amount,
)


@pytest.mark.parametrize(
    ("text", "minor"),
    [
        ("0", 0),
        ("1", 10_000_000),
        ("120.00", 1_200_000_000),
        ("0.5", 5_000_000),
        ("5.125", 51_250_000),
        ("10.1234567", 101_234_567),
        ("0.0000001", 1),
        ("922337203685.4775807", AMOUNT_MINOR_MAX),
    ],
)
def test_parse_accepts_decimal_strings(text: str, minor: int) -> None:
    assert parse_amount(text) == minor


@pytest.mark.parametrize(
    "text",
    [
        "",
        " 1",
        "1 ",
        "+1",
        "-1",
        "1e3",
        "1E3",
        "1.",
        ".5",
        "01",
        "1.12345678",
        "1,5",
        "NaN",
        "Infinity",
        "0x10",
        "１",
        "1_000",
        "922337203685.4775808",
        "9999999999999",
        "1e309",
        "-0",
    ],
)
def test_parse_rejects_malformed_text(text: str) -> None:
    with pytest.raises(AmountFormatError):
        parse_amount(text)


@pytest.mark.parametrize("value", [1.5, 10, None, b"1.0", ["1"]])
def test_parse_rejects_non_strings_including_floats(value: object) -> None:
    with pytest.raises(AmountFormatError):
        parse_amount(value)


@pytest.mark.parametrize(
    ("minor", "text"),
    [
        (0, "0.00"),
        (1_200_000_000, "120.00"),
        (5_000_000, "0.50"),
        (51_250_000, "5.125"),
        (101_234_567, "10.1234567"),
        (1, "0.0000001"),
    ],
)
def test_format_renders_two_to_seven_decimals(minor: int, text: str) -> None:
    assert format_amount(minor) == text


def test_format_refuses_negative_and_non_int() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_amount(-1)
    with pytest.raises(ValueError, match="int"):
        format_amount(1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="int"):
        format_amount(True)


def test_signed_amounts_round_trip_and_refuse_negative_zero() -> None:
    assert parse_signed_amount("-5.125") == -51_250_000
    assert format_signed_amount(-51_250_000) == "-5.125"
    with pytest.raises(AmountFormatError):
        parse_signed_amount("-0.00")


@given(st.integers(min_value=0, max_value=AMOUNT_MINOR_MAX))
def test_format_then_parse_is_identity(minor: int) -> None:
    assert parse_amount(format_amount(minor)) == minor


@given(st.integers(min_value=-AMOUNT_MINOR_MAX, max_value=AMOUNT_MINOR_MAX))
def test_signed_format_then_parse_is_identity(minor: int) -> None:
    assert parse_signed_amount(format_signed_amount(minor)) == minor


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_no_float_is_ever_accepted(value: float) -> None:
    with pytest.raises(AmountFormatError):
        parse_amount(value)
