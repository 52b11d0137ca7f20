"""Routes of the withdrawals resources (api.md section 3)."""

from typing import Final

from litestar.handlers import HTTPRouteHandler

__all__ = ["WITHDRAWALS_ROUTES"]

WITHDRAWALS_ROUTES: Final[tuple[HTTPRouteHandler, ...]] = ()
