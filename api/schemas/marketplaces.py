"""Marketplace wire types (api.md 3.2, 4)."""

from typing import Annotated

from msgspec import Meta

from api.queries.marketplaces import MarketplaceRow
from api.schemas.common import RequestStruct, ResponseStruct, format_time

__all__ = ["DEFAULT_PLATFORM_FEE_BPS", "Marketplace", "MarketplaceCreate", "marketplace_out"]

DEFAULT_PLATFORM_FEE_BPS = 500


class MarketplaceCreate(RequestStruct, frozen=True):
    """``POST /marketplaces``."""

    name: Annotated[str, Meta(min_length=1, max_length=100)]
    platform_fee_bps: Annotated[int, Meta(ge=0, le=9900)] | None = None


class Marketplace(ResponseStruct, frozen=True):
    """A tenant of the orchestrator."""

    id: str
    name: str
    platform_fee_bps: int
    created_at: str
    updated_at: str


def marketplace_out(row: MarketplaceRow) -> Marketplace:
    """The wire form of a marketplace row."""
    return Marketplace(
        id=row.id,
        name=row.name,
        platform_fee_bps=row.platform_fee_bps,
        created_at=format_time(row.created_at),
        updated_at=format_time(row.updated_at),
    )
