"""The base of every model, the list shape and the field types shared by the resources.

Responses decode leniently: unknown fields are ignored (new fields may appear within v1) and
status fields are plain strings (new enum values may appear); the known values are in
``offerhub_client.models.enums``. Amounts decode to :class:`decimal.Decimal` (exact, never a
float) and times to timezone-aware :class:`datetime.datetime`.
"""

from datetime import datetime
from decimal import Decimal
from typing import Generic, TypeAlias, TypeVar

import msgspec

__all__ = [
    "Amount",
    "AmountIn",
    "Body",
    "Model",
    "Page",
    "PageInfo",
    "Time",
]

T = TypeVar("T")

Amount: TypeAlias = Decimal
# What callers may pass as an amount: a decimal string ("80", "0.50") or a Decimal. Never a float.
AmountIn: TypeAlias = str | Decimal
Time: TypeAlias = datetime


class Model(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every response model: snake_case fields, unknown fields ignored."""


class Body(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base of every request body: absent optional fields are not sent."""


class PageInfo(Model, frozen=True, kw_only=True):
    """Where the next page starts; ``next_cursor`` is None on the last page."""

    has_more: bool
    next_cursor: str | None = None


class Page(Model, Generic[T], frozen=True, kw_only=True):
    """One page of a list endpoint."""

    data: list[T]
    pagination: PageInfo
