"""How one resource class serves both clients: endpoints are descriptors over request builders.

A resource method is written once, as a builder that turns its arguments into a
:class:`Request` (method, path, query, body, response type). The class attribute holding it is
an :class:`Endpoint` descriptor: read from a ``Resource[Sync]`` it is a plain function that sends
the request and returns the decoded result; from a ``Resource[Async]`` the same function returns
an awaitable. The two clients therefore share every path, parameter and body rule and cannot
diverge; only the transport loop (``_transport``) and the iterators exist twice. :class:`Twin`
does the same for helpers whose sync and async bodies differ (pagination, SSE, waiting).
"""

import functools
import inspect
import string
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload
from urllib.parse import quote

import msgspec

from offerhub_client.models.common import Page

__all__ = [
    "Async",
    "Endpoint",
    "Paginated",
    "Request",
    "Resource",
    "Route",
    "Sync",
    "Twin",
    "endpoint",
    "paginated",
    "wire_body",
]

P = ParamSpec("P")
T = TypeVar("T")
RS = TypeVar("RS")
RA = TypeVar("RA")
M = TypeVar("M", "Sync", "Async")


class Sync:
    """Marker: a resource bound to the blocking client."""


class Async:
    """Marker: a resource bound to the asyncio client."""


class Route(msgspec.Struct, frozen=True):
    """An endpoint of the API: ``("GET", "/orders/{order_id}")``, relative to ``/api/v1``."""

    method: str
    path: str


class Request(msgspec.Struct, frozen=True, kw_only=True):
    """One logical API call: everything a transport needs to send it and decode the answer."""

    method: str
    path: str
    response: Any
    query: dict[str, str] = {}
    body: Any = None
    idempotency_key: str | None = None


class Resource(Generic[M]):
    """A group of endpoints bound to one transport (sync or async, per the type argument)."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport


def _query_value(value: object) -> str:
    """A query parameter as the API reads it: comma lists, RFC 3339 times, lowercase bools."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(_query_value(item) for item in value)
    return str(value)


def wire_body(value: object) -> object:
    """Builtins for a JSON body: Decimals become plain decimal strings, floats are refused.

    Amounts travel as strings with no exponent (``Decimal("1E-7")`` is sent as ``"0.0000001"``);
    a float anywhere in a body is a bug in the caller (the API refuses JSON numbers as amounts).
    """
    if isinstance(value, msgspec.Struct):
        value = msgspec.to_builtins(value, builtin_types=(Decimal, datetime))
    if isinstance(value, Mapping):
        return {str(k): wire_body(v) for k, v in value.items() if v is not None}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [wire_body(item) for item in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        raise TypeError("floats are not sent: pass amounts as str or decimal.Decimal")
    if isinstance(value, datetime):
        return _query_value(value)
    return value


class Endpoint(Generic[P, T]):
    """A descriptor: the builder's signature, sending through the owner's transport."""

    def __init__(
        self,
        route: Route,
        response: Any,
        body: type[msgspec.Struct] | None,
        build: Callable[P, Any],
    ) -> None:
        self.route = route
        self.response = response
        self.body = body
        self.build = build
        self.path_names = [
            name for _, name, _, _ in string.Formatter().parse(route.path) if name is not None
        ]
        functools.update_wrapper(self, build)  # type: ignore[arg-type]

    def request(self, *args: P.args, **kwargs: P.kwargs) -> Request:
        """The request for these arguments (the builder returns its ``locals()``)."""
        arguments = dict(self.build(*args, **kwargs))
        key = arguments.pop("idempotency_key", None)
        path = self.route.path.format(
            **{name: quote(str(arguments.pop(name)), safe="") for name in self.path_names}
        )
        body: object = None
        if self.body is not None:
            names = [field.name for field in msgspec.structs.fields(self.body)]
            fields = {name: arguments.pop(name) for name in names if name in arguments}
            body = wire_body(self.body(**fields))
        query = {
            name.rstrip("_"): _query_value(value)
            for name, value in arguments.items()
            if value is not None
        }
        return Request(
            method=self.route.method,
            path=path,
            response=self.response,
            query=query,
            body=body,
            idempotency_key=key,
        )

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, obj: Resource[Sync], owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: Resource[Async], owner: type[Any]) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, obj: Resource[Any] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self
        transport = obj._transport

        @functools.wraps(self.build)
        def call(*args: Any, **kwargs: Any) -> Any:
            return transport.run(self.request(*args, **kwargs))

        return call


def endpoint(
    method: str, path: str, response: type[T], *, body: type[msgspec.Struct] | None = None
) -> Callable[[Callable[P, Any]], Endpoint[P, T]]:
    """Declare a builder as the endpoint ``method path`` answering ``response``.

    The builder returns ``locals()``: path parameters fill the path, ``body`` fields build the
    JSON body, ``idempotency_key`` (POST only) is the caller's key, the rest is the query.
    """

    def wrap(build: Callable[P, Any]) -> Endpoint[P, T]:
        return Endpoint(Route(method, path), response, body, build)

    return wrap


class Paginated(Generic[P, T]):
    """``list_all``: every item of a list endpoint, page after page, as an iterator."""

    def __init__(self, source: "Endpoint[P, Page[T]]") -> None:
        self.source = source
        self.route = source.route
        functools.update_wrapper(self, source.build)  # type: ignore[arg-type]

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, obj: Resource[Sync], owner: type[Any]) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(self, obj: Resource[Async], owner: type[Any]) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, obj: Resource[Any] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self
        transport, source = obj._transport, self.source

        @functools.wraps(source.build)
        def iterate(*args: Any, **kwargs: Any) -> Any:
            return transport.iterate(source.request, *args, **kwargs)

        return iterate


def paginated(source: Endpoint[P, Page[T]]) -> Paginated[P, T]:
    """The iterator twin of a list endpoint (follows ``next_cursor`` until ``has_more`` ends)."""
    return Paginated(source)


class Twin(Generic[P, RS, RA]):
    """A helper written twice (blocking and asyncio) behind one attribute name."""

    def __init__(
        self,
        blocking: Callable[Concatenate[Any, P], RS],
        asynchronous: Callable[Concatenate[Any, P], RA],
        route: Route | None = None,
    ) -> None:
        self.blocking = blocking
        self.asynchronous = asynchronous
        self.route = route
        functools.update_wrapper(self, blocking)  # type: ignore[arg-type]

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, obj: Resource[Sync], owner: type[Any]) -> Callable[P, RS]: ...
    @overload
    def __get__(self, obj: Resource[Async], owner: type[Any]) -> Callable[P, RA]: ...
    def __get__(self, obj: Resource[Any] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self
        implementation = self.asynchronous if obj._transport.is_async else self.blocking

        @functools.wraps(implementation)
        def bound(*args: Any, **kwargs: Any) -> Any:
            return implementation(obj, *args, **kwargs)

        # Introspection (help(), IDEs) shows the signature without the resource argument.
        signature = inspect.signature(implementation)
        bound.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=list(signature.parameters.values())[1:]
        )
        return bound
