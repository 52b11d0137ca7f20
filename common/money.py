"""Exact money: the only place where decimal strings become integer minor units and back.

Amounts are integers at scale 7 (Stellar stroops): ``"1"`` is ``10_000_000``. Nothing here
uses floats; a float given as an amount is refused, never rounded.
"""

import re
from typing import Final

__all__ = [
    "AMOUNT_MINOR_MAX",
    "SCALE",
    "UNIT_MINOR",
    "AmountFormatError",
    "format_amount",
    "format_signed_amount",
    "parse_amount",
    "parse_signed_amount",
]

SCALE: Final = 7
UNIT_MINOR: Final = 10**SCALE
# The largest amount PostgreSQL's bigint can hold: 922337203685.4775807 in decimal form.
AMOUNT_MINOR_MAX: Final = 2**63 - 1

# Up to 12 integer digits without a leading zero, up to 7 decimals; no sign, exponent or space.
_AMOUNT_PATTERN: Final = re.compile(r"(0|[1-9][0-9]{0,11})(?:\.([0-9]{1,7}))?")


class AmountFormatError(ValueError):
    """The text is not a decimal amount of the accepted form."""


def parse_amount(text: object) -> int:
    """Parse a non-negative decimal string into integer minor units.

    Args:
        text: The amount as sent on the wire, for example ``"120.50"``.

    Returns:
        The amount in minor units (scale 7).

    Raises:
        AmountFormatError: ``text`` is not a string, or has a sign, an exponent, spaces,
            more than 12 integer digits, more than 7 decimals, or exceeds the bigint range.
    """
    if not isinstance(text, str):
        raise AmountFormatError("amount must be a decimal string")
    match = _AMOUNT_PATTERN.fullmatch(text)
    if match is None:
        raise AmountFormatError("amount must match 123.4567890 with at most 7 decimals")
    whole, fraction = match.group(1), match.group(2) or ""
    minor = int(whole) * UNIT_MINOR + int(fraction.ljust(SCALE, "0"))
    if minor > AMOUNT_MINOR_MAX:
        raise AmountFormatError("amount exceeds 922337203685.4775807")
    return minor


def parse_signed_amount(text: object) -> int:
    """Parse a decimal string that may carry a leading ``-`` (ledger balances, drift)."""
    if isinstance(text, str) and text.startswith("-"):
        minor = parse_amount(text[1:])
        if minor == 0:
            raise AmountFormatError("negative zero is not an amount")
        return -minor
    return parse_amount(text)


def format_amount(minor: int) -> str:
    """Render non-negative minor units with at least 2 and at most 7 decimals.

    ``1_200_000_000`` gives ``"120.00"``, ``51_250_000`` gives ``"5.125"``.

    Raises:
        ValueError: ``minor`` is negative or not an ``int``.
    """
    if type(minor) is not int:
        raise ValueError("minor units must be an int")
    if minor < 0:
        raise ValueError("use format_signed_amount for negative values")
    whole, fraction = divmod(minor, UNIT_MINOR)
    digits = f"{fraction:0{SCALE}d}".rstrip("0").ljust(2, "0")
    return f"{whole}.{digits}"


def format_signed_amount(minor: int) -> str:
    """Render signed minor units; only negative values carry a sign."""
    if minor < 0:
        return "-" + format_amount(-minor)
    return format_amount(minor)
