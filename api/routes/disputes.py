"""Routes of the disputes resources (api.md section 3)."""

from typing import Final

from litestar.handlers import HTTPRouteHandler

__all__ = ["DISPUTES_ROUTES"]

DISPUTES_ROUTES: Final[tuple[HTTPRouteHandler, ...]] = ()
