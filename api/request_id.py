"""``X-Request-ID`` (api.md 1.1): echoed when well-formed, generated otherwise, on every response.

The id is decided once per request and kept in the ASGI scope, so handlers, error logs, the
``Caller`` and the response header all carry the same value.
"""

import re
import uuid
from typing import Any, Final, cast

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

__all__ = ["add_request_id_header", "request_id_of", "scope_state"]

HEADER: Final = "X-Request-ID"
_STATE_KEY: Final = "offerhub.request_id"
_WELL_FORMED: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def scope_state(scope: Scope) -> dict[str, Any]:
    """The per-request state dictionary of an ASGI scope (created when missing)."""
    return cast(dict[str, Any], cast(dict[str, Any], scope).setdefault("state", {}))


def _incoming(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"x-request-id":
            text = value.decode("latin-1")
            return text if _WELL_FORMED.fullmatch(text) else None
    return None


def request_id_of(scope: Scope) -> str:
    """The request's correlation id: the client's, if well-formed, else a fresh UUID v4."""
    state = scope_state(scope)
    request_id = state.get(_STATE_KEY)
    if not isinstance(request_id, str):
        request_id = _incoming(scope) or str(uuid.uuid4())
        state[_STATE_KEY] = request_id
    return request_id


async def add_request_id_header(message: Message, scope: Scope) -> None:
    """``before_send`` hook: put ``X-Request-ID`` on every HTTP response, errors included."""
    if message["type"] == "http.response.start":
        MutableScopeHeaders.from_message(message)[HEADER] = request_id_of(scope)
