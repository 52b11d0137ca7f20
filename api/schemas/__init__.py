"""Wire types of the API: request and response Structs per resource, and the shared field types."""

from api.schemas.common import (
    AMOUNT_META,
    CURRENCY_META,
    Amount,
    Currency,
    RequestStruct,
    ResponseStruct,
    amount_minor,
    format_time,
)

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
