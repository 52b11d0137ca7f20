"""What the OpenAPI document says beyond what Litestar infers from a handler's signature.

Litestar documents one success status per handler and, for handlers with parameters, its own
400 body (``{status_code, detail}``), which this API never sends. :func:`document_operations`
gives every handler an ``operation_class`` that completes its operation when the document is
built (lazily, once per app):

- every error status the route can answer (api.md 2), each pointing at the shared
  ``#/components/responses/Error`` (the ``{"error": {code, message, details}}`` shape);
- the other success statuses (202 while a durable operation runs, 200 for an existing user);
- the ``Idempotency-Key`` header every mutating POST requires (api.md 1.8);
- the real media types of streams and exports.

Statuses come from rules (who may call, the method, path parameters) plus :data:`_ERRORS` and
:data:`_SUCCESSES`, the endpoint-specific answers of the api.md tables.
"""

import dataclasses
import re
from typing import TYPE_CHECKING, Final

import msgspec
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
)

from api.auth import is_public

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.typing import FieldDefinition

__all__ = [
    "ERROR_RESPONSES",
    "ClosedStructs",
    "document_operations",
    "route_path",
]

_ERROR_REF: Final = Reference(ref="#/components/responses/Error")

_STRING: Final = Schema(type=OpenAPIType.STRING)
_NULL: Final = OpenAPIType.NULL
_ERROR_SCHEMA: Final = Schema(
    type=OpenAPIType.OBJECT,
    required=["error"],
    properties={
        "error": Schema(
            type=OpenAPIType.OBJECT,
            required=["code", "message", "details"],
            properties={
                "code": _STRING,
                "message": _STRING,
                "details": Schema(type=OpenAPIType.OBJECT),
            },
        )
    },
)

#: ``components.responses`` of the document (referenced by every operation).
ERROR_RESPONSES: Final[dict[str, OpenAPIResponse | Reference]] = {
    "Error": OpenAPIResponse(
        description="An error in the standard shape; `code` is one of the error catalog.",
        content={"application/json": OpenAPIMediaType(schema=_ERROR_SCHEMA)},
    )
}

# Inline in each operation (not a ``$ref``): clients read header parameters in place.
_IDEMPOTENCY_KEY: Final = Parameter(
    name="Idempotency-Key",
    param_in="header",
    required=True,
    description="1-255 printable ASCII characters; a retry with the same key replays.",
    schema=Schema(
        type=OpenAPIType.STRING, min_length=1, max_length=255, pattern="^[\\x20-\\x7e]+$"
    ),
)

# Endpoint-specific errors (api.md 3) beyond the rules of :func:`_errors`; aliases share their
# canonical route's entries. A durable operation's definitive refusal is a 502 or a 422 (api.md
# 1.9); 502/504: a provider call or read failed or timed out.
_PROVIDER: Final = frozenset({502, 504})
_DURABLE: Final = frozenset({422}) | _PROVIDER
_ERRORS: Final[dict[tuple[str, str], frozenset[int]]] = {
    ("GET", "/auth/api-keys"): frozenset({404}),  # the master key naming a marketplace
    ("POST", "/auth/api-keys"): frozenset({404}),
    ("POST", "/users/{user_id}/airtm/link"): frozenset({422}) | _PROVIDER,
    ("GET", "/users/{user_id}/wallet"): _PROVIDER,
    ("GET", "/users/{user_id}/wallet/transactions"): _PROVIDER,
    ("POST", "/users/{user_id}/balance/adjustments"): frozenset({422}),
    ("POST", "/orders"): frozenset({404}),
    ("POST", "/orders/{order_id}/reserve"): frozenset({422}),
    ("POST", "/orders/{order_id}/escrow"): _DURABLE,
    ("POST", "/orders/{order_id}/escrow/fund"): _DURABLE,
    ("POST", "/orders/{order_id}/resolution/release"): _DURABLE,
    ("POST", "/orders/{order_id}/resolution/refund"): _DURABLE,
    ("POST", "/disputes/{dispute_id}/resolve"): _DURABLE,
    ("POST", "/topups"): frozenset({404}) | _DURABLE,
    ("POST", "/topups/{topup_id}/refresh"): _PROVIDER,
    ("POST", "/topups/{topup_id}/cancel"): _PROVIDER,
    ("GET", "/topups/{topup_id}/callback"): frozenset({400}),
    ("POST", "/withdrawals"): frozenset({404}) | _DURABLE,
    ("POST", "/withdrawals/{withdrawal_id}/commit"): _DURABLE,
    ("POST", "/withdrawals/{withdrawal_id}/refresh"): _PROVIDER,
    ("POST", "/withdrawals/{withdrawal_id}/cancel"): _PROVIDER,
    ("GET", "/reconciliation/runs/latest"): frozenset({404}),
    ("GET", "/reports/account-statement"): frozenset({404}),
    ("POST", "/webhooks/airtm"): frozenset({400, 401, 413, 415}),
    ("POST", "/webhooks/trustless-work"): frozenset({400, 401, 413, 415}),
}

# Other successes, with the body of the declared one: 202 while a durable operation runs
# (api.md 1.9), 200 for an existing user, 503 for a readiness check that fails.
_SUCCESSES: Final[dict[tuple[str, str], frozenset[int]]] = {
    ("POST", "/users"): frozenset({200}),
    ("POST", "/orders/{order_id}/escrow"): frozenset({202}),
    ("POST", "/orders/{order_id}/escrow/fund"): frozenset({202}),
    ("POST", "/orders/{order_id}/resolution/release"): frozenset({202}),
    ("POST", "/orders/{order_id}/resolution/refund"): frozenset({202}),
    ("POST", "/disputes/{dispute_id}/resolve"): frozenset({202}),
    ("POST", "/topups"): frozenset({202}),
    ("POST", "/withdrawals"): frozenset({202}),
    ("POST", "/withdrawals/{withdrawal_id}/commit"): frozenset({202}),
    ("POST", "/reconciliation/runs"): frozenset({202}),
    ("GET", "/health/ready"): frozenset({503}),
}

# Success answers that are not JSON (api.md 1.1): the event stream and the exports.
_CSV: Final = OpenAPIMediaType(schema=_STRING)
_PARQUET: Final = OpenAPIMediaType(
    schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
)
_MEDIA: Final[dict[tuple[str, str], dict[str, OpenAPIMediaType]]] = {
    ("GET", "/events"): {"text/event-stream": OpenAPIMediaType(schema=_STRING)},
    ("GET", "/reports/journal"): {"text/csv": _CSV, "application/vnd.apache.parquet": _PARQUET},
    ("GET", "/reports/entries"): {"text/csv": _CSV, "application/vnd.apache.parquet": _PARQUET},
}
# Reports that answer JSON by default and CSV or Parquet on request.
_ALSO_EXPORTS: Final = frozenset(
    {("GET", "/reports/trial-balance"), ("GET", "/reports/account-statement")}
)

_TYPED_PARAMETER: Final = re.compile(r"\{(\w+):\w+\}")


def route_path(path: str) -> str:
    """``/orders/{order_id:str}`` -> ``/orders/{order_id}``."""
    return _TYPED_PARAMETER.sub(r"{\1}", path)


def _errors(handler: HTTPRouteHandler, method: str, paths: list[str]) -> set[int]:
    """Every error status a route answers."""
    statuses = {500, 503}
    if not is_public(handler):
        statuses |= {400, 401, 403, 429}
        if method == "POST":
            statuses |= {409, 413, 415}  # idempotency conflicts, body size, media type
    if any("{" in path for path in paths):
        statuses.add(404)
    for path in paths:
        statuses |= _ERRORS.get((method, path), frozenset())
    return statuses


class _Documented(Operation):
    """The operation classes made here (so a handler is completed once)."""


def _operation_class(handler: HTTPRouteHandler, method: str, paths: list[str]) -> type[Operation]:
    """An ``Operation`` that completes itself with what the route answers."""
    keys = [(method, path) for path in paths]
    successes = set().union(*(_SUCCESSES.get(key, frozenset()) for key in keys))
    errors = _errors(handler, method, paths) - successes
    keyed = method == "POST" and not is_public(handler)
    media = next((_MEDIA[key] for key in keys if key in _MEDIA), None)
    exports = any(key in _ALSO_EXPORTS for key in keys)
    declared = str(handler.status_code)

    @dataclasses.dataclass
    class DocumentedOperation(_Documented):
        def __post_init__(self) -> None:
            responses: dict[str, OpenAPIResponse | Reference] = dict(self.responses or {})
            success = responses.get(declared)
            if isinstance(success, OpenAPIResponse):
                success = _with_media(success, media, exports)
                responses[declared] = success
                responses.update({str(status): success for status in successes})
            responses.update({str(status): _ERROR_REF for status in errors})
            # The declared success first: clients take the first 2xx as the main answer.
            first = {declared: responses.pop(declared)} if declared in responses else {}
            self.responses = {**first, **dict(sorted(responses.items()))}
            if keyed:
                self.parameters = [*(self.parameters or []), _IDEMPOTENCY_KEY]
            if self.request_body is not None and not isinstance(self.request_body, Reference):
                self.request_body = _optional_body(self.request_body)

    DocumentedOperation.__name__ = DocumentedOperation.__qualname__ = (
        f"{handler.handler_name}_operation"
    )
    return DocumentedOperation


def _optional_body(body: RequestBody) -> RequestBody:
    """``T | None = None`` bodies: no body or an object, never JSON ``null`` (api.md 1.1)."""
    media = body.content.get("application/json")
    options = media.schema.one_of if media and isinstance(media.schema, Schema) else None
    if media is None or not options:
        return body
    members = [m for m in options if not (isinstance(m, Schema) and m.type == _NULL)]
    if len(members) != 1 or len(members) == len(options):
        return body
    content = {"application/json": dataclasses.replace(media, schema=members[0])}
    return dataclasses.replace(body, content=content, required=False)


def _with_media(
    success: OpenAPIResponse, media: dict[str, OpenAPIMediaType] | None, exports: bool
) -> OpenAPIResponse:
    if media is not None:
        return dataclasses.replace(success, content=media)
    if exports:
        content = {**(success.content or {}), "text/csv": _CSV}
        content["application/vnd.apache.parquet"] = _PARQUET
        return dataclasses.replace(success, content=content)
    return success


def document_operations(handlers: list[HTTPRouteHandler]) -> None:
    """Give each handler the operation class of its route (once per handler)."""
    for handler in handlers:
        if issubclass(handler.operation_class, _Documented):
            continue
        methods = sorted(handler.http_methods)
        assert len(methods) == 1, handler.handler_name
        paths = sorted(route_path(path) for path in handler.paths)
        handler.operation_class = _operation_class(handler, methods[0], paths)


class ClosedStructs(StructSchemaPlugin):
    """Request Structs refuse unknown fields (``forbid_unknown_fields``): the schema says so.

    Litestar's own Struct plugin leaves ``additionalProperties`` open.
    """

    def is_plugin_supported_field(self, field_definition: "FieldDefinition") -> bool:
        """Structs that forbid unknown fields."""
        if not super().is_plugin_supported_field(field_definition):
            return False
        struct: type[msgspec.Struct] = field_definition.type_
        return bool(struct.__struct_config__.forbid_unknown_fields)

    def to_openapi_schema(
        self, field_definition: "FieldDefinition", schema_creator: "SchemaCreator"
    ) -> Schema:
        """The Struct's schema, closed to other properties."""
        schema = super().to_openapi_schema(field_definition, schema_creator)
        schema.additional_properties = False
        return schema
