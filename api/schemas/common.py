"""Field types and base Structs shared by every request and response.

Request bodies subclass :class:`RequestStruct` (unknown fields are refused). Optional fields are
typed ``X | None = None``: JSON ``null`` then means "absent" (api.md 1.1). Amounts are
:data:`Amount` (a decimal string, checked by ``common.money.parse_amount``; convert it with
:func:`amount_minor`); currencies are :data:`Currency` (only ``"USD"``). The request checks in
``api.validation`` recognise both types and answer ``INVALID_AMOUNT_FORMAT``, ``INVALID_AMOUNT``
(zero) and ``INVALID_CURRENCY`` instead of ``VALIDATION_ERROR``.
"""

from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

from common.money import parse_amount
from common.times import format_time

__all__ = [
    "AMOUNT_META",
    "CURRENCY_META",
    "Amount",
    "Currency",
    "RequestStruct",
    "ResponseStruct",
    "amount_minor",
    "format_time",
]

# The pattern is documentation (OpenAPI); parse_amount is the rule, including the bigint bound.
AMOUNT_META: Final = Meta(
    pattern=r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,7})?$",
    description="Decimal string, up to 12 integer digits and 7 decimals; never a JSON number.",
    examples=["120.50"],
)
CURRENCY_META: Final = Meta(description="Only USD; optional, default USD.", examples=["USD"])

Amount = Annotated[str, AMOUNT_META]
Currency = Annotated[Literal["USD"], CURRENCY_META]


class RequestStruct(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every request body: snake_case fields, unknown fields refused."""


class ResponseStruct(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every response body; nullable fields are always present."""


def amount_minor(amount: str) -> int:
    """Integer minor units of an :data:`Amount` field that passed the request checks."""
    return parse_amount(amount)
