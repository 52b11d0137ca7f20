"""Routes of the users resources (api.md section 3)."""

from typing import Final

from litestar.handlers import HTTPRouteHandler

__all__ = ["USERS_ROUTES"]

USERS_ROUTES: Final[tuple[HTTPRouteHandler, ...]] = ()
