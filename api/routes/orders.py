"""Routes of the orders resources (api.md section 3)."""

from typing import Final

from litestar.handlers import HTTPRouteHandler

__all__ = ["ORDERS_ROUTES"]

ORDERS_ROUTES: Final[tuple[HTTPRouteHandler, ...]] = ()
