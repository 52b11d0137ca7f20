"""The base path and the canonical path of a request (aliases map to one path)."""

import re
from typing import Any, Final

from litestar import Request

__all__ = ["API_PREFIX", "canonical_path"]

API_PREFIX: Final = "/api/v1"
_PARAMETER: Final = re.compile(r"\{(\w+)(?::\w+)?\}")


def canonical_path(request: Request[Any, Any, Any]) -> str:
    """The request's path with every alias mapped to one path of its handler.

    The handler's ``opt["canonical_path"]`` names it (relative to ``/api/v1``); otherwise the
    first of its paths in sorted order is used, so aliases of one handler always agree. Path
    parameters are filled in: ``/api/v1/orders/ord_1/resolution/release``.
    """
    handler = request.route_handler
    template = handler.opt.get("canonical_path") or sorted(handler.paths)[0]
    params = request.path_params
    filled = _PARAMETER.sub(lambda match: str(params[match.group(1)]), template)
    return API_PREFIX + filled if handler.opt.get("under_api_prefix", True) else filled
