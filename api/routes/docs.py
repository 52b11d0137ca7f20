"""``/openapi.json``: the OpenAPI document Litestar builds from the handlers and msgspec Structs.

The interactive page is ``/api/v1/docs`` (Litestar's OpenAPI router, configured in ``api.app``).
"""

from typing import Any

from litestar import Request, Response, get

from api.auth import PUBLIC

__all__ = ["openapi_document"]


@get("/openapi.json", opt=PUBLIC, include_in_schema=False, sync_to_thread=False)
def openapi_document(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """The OpenAPI 3.1 document of this API."""
    return Response(request.app.openapi_schema.to_schema())
