"""Routes of the topups resources (api.md section 3)."""

from typing import Final

from litestar.handlers import HTTPRouteHandler

__all__ = ["TOPUPS_ROUTES"]

TOPUPS_ROUTES: Final[tuple[HTTPRouteHandler, ...]] = ()
