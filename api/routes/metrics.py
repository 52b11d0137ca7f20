"""``GET /metrics`` (api.md 3.1): Prometheus text format, outside ``/api/v1``.

Public unless ``OFFERHUB_METRICS_TOKEN`` is set; then it takes ``Authorization: Bearer <token>``
(compared in constant time; anything else is 401 UNAUTHORIZED). Mounted on the app, not on the
``/api/v1`` router: no request checks, no API-key guard, no rate limit (api.md 1.10).
"""

import hmac
from typing import Any, Final

from litestar import Request, Response, get

from api.auth import PUBLIC
from api.database import pool_of
from api.errors import Unauthorized
from api.metrics import METRICS_MEDIA_TYPE, render
from api.settings import Settings

__all__ = ["metrics"]

# The scrape-time database reads give up after this long (readiness uses the same bound).
_DATABASE_TIMEOUT_S: Final = 2.0


def _check_token(request: Request[Any, Any, Any], token: str) -> None:
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise Unauthorized("Send Authorization: Bearer <metrics token>")


@get("/metrics", opt=PUBLIC, include_in_schema=False, tags=["metrics"])
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Every metric of this process, and the gauges read from the database at this moment."""
    settings: Settings = request.app.state.settings
    if settings.metrics_token is not None:
        _check_token(request, settings.metrics_token)
    body = await render(pool_of(request), _DATABASE_TIMEOUT_S)
    return Response(body, media_type=METRICS_MEDIA_TYPE, headers={"Cache-Control": "no-store"})
