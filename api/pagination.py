"""Keyset pagination (api.md 1.4): ``limit`` 1..100, opaque cursors, newest first.

A list handler declares ``limit: Limit = DEFAULT_LIMIT`` and ``cursor: Cursor = None``, calls
:func:`page_request` with its filters, fetches ``fetch_limit`` rows ordered by
``created_at DESC, id DESC`` strictly after ``after``, and returns :func:`page_of`. A cursor is
bound to the endpoint (canonical path) and to the filters: used elsewhere it is a 400.
"""

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Generic, Protocol, TypeAlias, TypeVar

import msgspec
from litestar import Request
from litestar.params import QueryParameter

from api.errors import invalid
from api.paths import canonical_path
from api.schemas.common import ResponseStruct

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "Cursor",
    "Limit",
    "Page",
    "PageInfo",
    "PageRequest",
    "page_of",
    "page_request",
]

DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100
_PREFIX: Final = "c_"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)

Limit: TypeAlias = Annotated[
    int, QueryParameter(ge=1, le=MAX_LIMIT, description="Page size, 1..100 (default 20).")
]
Cursor: TypeAlias = Annotated[
    str | None, QueryParameter(description="The `next_cursor` of the previous page.")
]

T = TypeVar("T")
R = TypeVar("R", bound="_Keyed")


class _Keyed(Protocol):
    @property
    def created_at(self) -> datetime: ...

    @property
    def id(self) -> str: ...


class PageInfo(ResponseStruct, frozen=True):
    """Whether another page exists, and the cursor that fetches it."""

    has_more: bool
    next_cursor: str | None


class Page(ResponseStruct, Generic[T], frozen=True):
    """A list answer: ``{"data": [...], "pagination": {...}}``."""

    data: list[T]
    pagination: PageInfo


class PageRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A validated page position: fetch ``fetch_limit`` rows strictly after ``after``."""

    limit: int
    after: tuple[datetime, str] | None
    binding: str

    @property
    def fetch_limit(self) -> int:
        """One row more than the page, to learn whether another page exists."""
        return self.limit + 1


def _binding(endpoint: str, filters: Mapping[str, Any]) -> str:
    canonical = msgspec.json.encode([endpoint, dict(filters)], order="sorted")
    return hashlib.sha256(canonical).hexdigest()[:16]


def _encode(binding: str, created_at: datetime, row_id: str) -> str:
    micros = (created_at - _EPOCH) // _MICROSECOND
    raw = msgspec.json.encode([binding, micros, row_id])
    return _PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[str, datetime, str]:
    if not cursor.startswith(_PREFIX):
        raise ValueError("not a cursor")
    text = cursor.removeprefix(_PREFIX)
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    binding, micros, row_id = msgspec.json.decode(raw, type=tuple[str, int, str])
    return binding, _EPOCH + micros * _MICROSECOND, row_id


def page_request(
    request: Request[Any, Any, Any],
    *,
    limit: int,
    cursor: str | None,
    filters: Mapping[str, Any] | None = None,
) -> PageRequest:
    """Validate the position of a list request.

    Raises:
        ValidationFailed: ``query.cursor`` is malformed or belongs to another endpoint or to
            other filters.
    """
    binding = _binding(canonical_path(request), filters or {})
    if cursor is None:
        return PageRequest(limit=limit, after=None, binding=binding)
    try:
        cursor_binding, created_at, row_id = _decode(cursor)
    except (ValueError, binascii.Error, msgspec.DecodeError, OverflowError):
        raise invalid("query.cursor", "malformed cursor") from None
    if cursor_binding != binding:
        raise invalid("query.cursor", "cursor belongs to another endpoint or other filters")
    return PageRequest(limit=limit, after=(created_at, row_id), binding=binding)


def page_of(position: PageRequest, rows: Sequence[R], render: Callable[[R], T]) -> Page[T]:
    """The page of ``rows`` (fetched with ``fetch_limit``), rendered, with its next cursor."""
    has_more = len(rows) > position.limit
    shown = rows[: position.limit]
    next_cursor = None
    if has_more and shown:
        last = shown[-1]
        next_cursor = _encode(position.binding, last.created_at, last.id)
    return Page(
        data=[render(row) for row in shown],
        pagination=PageInfo(has_more=has_more, next_cursor=next_cursor),
    )
