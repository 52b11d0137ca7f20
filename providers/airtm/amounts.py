"""Exact conversion between Airtm's wire amounts (USD, at most 2 decimals) and our minor units.

Airtm sends and accepts amounts as JSON numbers such as ``12.34``. We decode them as ``Decimal``
from the literal text (never through a float) and keep integer minor units at scale 7, so one
cent is ``100_000`` minor units and only multiples of it can travel to Airtm.
"""

from decimal import Decimal
from typing import Final

from common.money import AMOUNT_MINOR_MAX

__all__ = ["CENT_MINOR", "AirtmAmountError", "airtm_to_minor", "minor_to_airtm"]

CENT_MINOR: Final = 100_000


class AirtmAmountError(ValueError):
    """The amount cannot be represented exactly on Airtm's 2-decimal wire."""


def minor_to_airtm(amount_minor: int) -> Decimal:
    """Render minor units as the Decimal Airtm expects, always with exactly 2 decimals.

    Args:
        amount_minor: A non-negative amount at scale 7 that is a whole number of cents.

    Returns:
        The amount in USD, for example ``Decimal("12.34")`` for ``123_400_000``.

    Raises:
        AirtmAmountError: The amount is not an int, is negative, or has sub-cent digits.
    """
    if type(amount_minor) is not int:
        raise AirtmAmountError("amount must be int minor units")
    if amount_minor < 0 or amount_minor > AMOUNT_MINOR_MAX:
        raise AirtmAmountError("amount is out of range")
    cents, remainder = divmod(amount_minor, CENT_MINOR)
    if remainder != 0:
        raise AirtmAmountError(
            "Airtm amounts must be whole cents (multiples of 100000 minor units)"
        )
    # Built from text so no context precision or rounding is involved.
    return Decimal(f"{cents // 100}.{cents % 100:02d}")


def airtm_to_minor(amount: Decimal) -> int:
    """Convert an Airtm wire amount to minor units, exactly.

    Trailing zeros are accepted (``12.340`` is 12.34) but a non-zero third decimal is refused.

    Raises:
        AirtmAmountError: The amount is not finite, is negative, has sub-cent digits or
            exceeds the bigint range of the ledger.
    """
    if not amount.is_finite():
        raise AirtmAmountError("amount must be a finite number")
    sign, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite decimals always have an int exponent
    if sign == 1 and any(digits):
        raise AirtmAmountError("amount must not be negative")
    if len(digits) + exponent > 15:
        # Far beyond the ledger's bigint range; refuse before building a huge integer.
        raise AirtmAmountError("amount exceeds the ledger range")
    coefficient = int("".join(map(str, digits))) if digits else 0
    # Integer arithmetic only: Decimal multiplication would round past 28 significant digits.
    shift = exponent + 2
    scale: int = 10 ** abs(shift)
    if shift >= 0:
        cents = coefficient * scale
    else:
        cents, remainder = divmod(coefficient, scale)
        if remainder != 0:
            raise AirtmAmountError("Airtm amounts have at most 2 decimals")
    amount_minor = cents * CENT_MINOR
    if amount_minor > AMOUNT_MINOR_MAX:
        raise AirtmAmountError("amount exceeds the ledger range")
    return amount_minor
