"""The SDK cannot drift from the server: every endpoint, field and enum value the server serves
must be in ``offerhub_client``, and nothing the SDK sends may be unknown to the server.

The OpenAPI document is fetched from the real app (``GET /api/v1/openapi.json``; no database is
needed to serve it). For each operation: the SDK has a method on that route, accepting every
query parameter, sending the same request body Struct and decoding the same response Struct.
Every component reachable from the SDK's operations is compared field by field (names and JSON
kinds), every enum of the document against the SDK's Literal types or ``FIELD_ENUMS``. What the
document cannot describe (SSE envelope, report JSON, status lifecycles, event types, error
codes) is compared with the server's own Python definitions.
"""

import collections.abc
import inspect
import types
import typing
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
from offerhub_client import errors as sdk_errors
from offerhub_client import models, resources
from offerhub_client._call import Endpoint, Paginated, Twin

import api.errors
import common.errors
import providers.errors
from api.app import create_app
from api.schemas import ledger as server_ledger
from flows.event_catalog import EVENT_TYPES
from flows.events import Event as ServerEvent
from statemachines import status
from tests.api.support import PUBLIC_CONFIG, settings_for_tests

PREFIX = "/api/v1"
# Not client calls: inbound provider webhooks and the payer's browser redirect.
EXCLUDED = {
    ("POST", "/webhooks/airtm"),
    ("POST", "/webhooks/trustless-work"),
    ("GET", "/topups/{topup_id}/callback"),
}
# Documented aliases (api.md 7): the SDK calls the canonical path.
ALIASES = {
    ("GET", "/me"): ("GET", "/auth/me"),
    ("GET", "/health/detailed"): ("GET", "/health/ready"),
    ("POST", "/orders/{order_id}/release"): ("POST", "/orders/{order_id}/resolution/release"),
    ("POST", "/orders/{order_id}/refund"): ("POST", "/orders/{order_id}/resolution/refund"),
    ("POST", "/orders/{order_id}/disputes"): ("POST", "/orders/{order_id}/resolution/dispute"),
}
SDK_ONLY_PARAMETERS = {"idempotency_key", "reconnect_delay_s", "max_reconnects", "read_timeout_s"}


class SdkMethod(msgspec.Struct, frozen=True):
    """One SDK method on one route."""

    name: str
    method: str
    path: str
    parameters: frozenset[str]
    body: Any
    response: Any


def _parameters(function: Any, *, skip_first: bool = False) -> frozenset[str]:
    names = list(inspect.signature(getattr(function, "__func__", function)).parameters)
    return frozenset(name.rstrip("_") for name in names[1 if skip_first else 0 :])


def sdk_methods() -> Iterator[SdkMethod]:
    """Every route-bound attribute of every resource class."""
    for class_name in resources.__all__:
        cls = getattr(resources, class_name)
        for name, attribute in vars(cls).items():
            label = f"{class_name}.{name}"
            if isinstance(attribute, Endpoint):
                route, build = attribute.route, attribute.build
                parameters = _parameters(build)
                yield SdkMethod(
                    label, route.method, route.path, parameters, attribute.body, attribute.response
                )
            elif isinstance(attribute, Paginated):
                source = attribute.source
                parameters = _parameters(source.build)
                yield SdkMethod(
                    label, source.route.method, source.route.path, parameters, None, source.response
                )
            elif isinstance(attribute, Twin) and attribute.route is not None:
                parameters = _parameters(attribute.blocking, skip_first=True)
                yield SdkMethod(
                    label, attribute.route.method, attribute.route.path, parameters, None, None
                )


@pytest.fixture(scope="module")
async def openapi() -> dict[str, Any]:
    """The OpenAPI document as the running app serves it."""
    app = create_app(
        settings_for_tests(), "postgresql://unused/unused", public_config=PUBLIC_CONFIG
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get(f"{PREFIX}/openapi.json")
    assert response.status_code == 200, response.text
    return dict(response.json())


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(METHOD, path below /api/v1): operation}`` of the client's operations."""
    found = {}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            key = (method.upper(), path.removeprefix(PREFIX))
            if key not in EXCLUDED:
                found[key] = operation
    return found


def _refs(schema: Any) -> list[str]:
    """Component names referenced anywhere in ``schema``."""
    if isinstance(schema, dict):
        own = [schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else []
        return own + [name for value in schema.values() for name in _refs(value)]
    if isinstance(schema, list):
        return [name for value in schema for name in _refs(value)]
    return []


def _success_schema(operation: dict[str, Any]) -> Any:
    for code, answer in operation["responses"].items():
        if code.startswith("2"):
            return answer.get("content", {}).get("application/json", {}).get("schema")
    return None


def _item_name(reference: str) -> str:
    """``Page_api.schemas.orders.Order_`` -> ``Order``."""
    if reference.startswith("Page_"):
        return reference.removeprefix("Page_").rstrip("_").rsplit(".", 1)[-1]
    return reference


def _sdk_name(response: Any) -> str | None:
    if typing.get_origin(response) is models.Page:
        return str(typing.get_args(response)[0].__name__)
    return getattr(response, "__name__", None)


async def test_every_server_endpoint_has_an_sdk_method_and_no_sdk_route_is_unknown(
    openapi: dict[str, Any],
) -> None:
    served = operations(openapi)
    covered = {(method.method, method.path) for method in sdk_methods()}
    canonical = {ALIASES.get(key, key) for key in served}
    assert sorted(canonical - covered) == [], "server endpoints missing from the SDK"
    assert sorted(covered - set(served)) == [], "SDK routes the server does not serve"
    for alias, target in ALIASES.items():
        assert _success_schema(served[alias]) == _success_schema(served[target]), alias


async def test_sdk_methods_accept_every_query_parameter_and_send_the_same_bodies(
    openapi: dict[str, Any],
) -> None:
    served = operations(openapi)
    by_route: dict[tuple[str, str], list[SdkMethod]] = {}
    for method in sdk_methods():
        by_route.setdefault((method.method, method.path), []).append(method)
    for key, operation in served.items():
        if key in ALIASES:
            continue
        methods = by_route[key]
        accepted = frozenset().union(*(method.parameters for method in methods))
        wanted = {p["name"] for p in operation.get("parameters", []) if p["in"] in ("query",)}
        assert wanted <= accepted, (key, sorted(wanted - accepted))
        path_names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        request = operation.get("requestBody")
        body_names = set(_refs(request)) if request else set()
        for method in methods:
            assert path_names <= method.parameters, (method.name, path_names)
            sent = {method.body.__name__} if method.body is not None else set()
            if not method.name.endswith("_all") and method.response is not None:
                assert sent == body_names, (method.name, sent, body_names)
                extra = method.parameters - wanted - path_names - SDK_ONLY_PARAMETERS
                assert extra <= _field_names(method.body), (method.name, sorted(extra))
        success = _success_schema(operation)
        names = {_sdk_name(method.response) for method in methods} - {None, "bytes"}
        if success and "$ref" in success:
            assert names == {_item_name(success["$ref"].rsplit("/", 1)[-1])}, key


def _field_names(struct: Any) -> frozenset[str]:
    if struct is None:
        return frozenset()
    return frozenset(field.name for field in msgspec.structs.fields(struct))


def _reachable(document: dict[str, Any]) -> set[str]:
    """Every component reachable from the client's operations (requests and answers)."""
    schemas = document["components"]["schemas"]
    pending = [name for op in operations(document).values() for name in _refs(op)]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        pending.extend(_refs(schemas[name]))
    return {name for name in seen if not name.startswith("Page_")}


_SCALAR_KINDS: dict[Any, set[str]] = {
    str: {"string"},
    Decimal: {"string"},
    datetime: {"string"},
    int: {"integer"},
    float: {"number", "integer"},
    bool: {"boolean"},
    type(None): {"null"},
    Any: {"string", "integer", "number", "boolean", "null", "array", "object"},
}


def _kinds(annotation: Any) -> set[str]:
    """The JSON kinds an SDK field annotation decodes or encodes."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_kinds(member) for member in arguments))
    if origin is typing.Literal:
        return {"null" if value is None else "string" for value in arguments}
    if origin is typing.Annotated:
        return _kinds(arguments[0])
    if origin in (list, collections.abc.Sequence):
        return {"array"}
    if origin in (dict, collections.abc.Mapping):
        return {"object"}
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return {"object"}
    return _SCALAR_KINDS.get(annotation, {"?"})


def _openapi_kinds(schema: dict[str, Any]) -> set[str]:
    if "$ref" in schema:
        return {"object"}
    if "oneOf" in schema:
        return set().union(*(_openapi_kinds(member) for member in schema["oneOf"]))
    if "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        return {"null" if value is None else "string" for value in values}
    kind = schema.get("type")
    if kind is None:
        return set()  # Any: nothing to compare
    return set(kind) if isinstance(kind, list) else {kind}


def _enum_values(schema: Any) -> set[Any]:
    if isinstance(schema, dict):
        own = set(schema.get("enum", [])) | ({schema["const"]} if "const" in schema else set())
        return own.union(*(_enum_values(value) for value in schema.values()))
    if isinstance(schema, list):
        return set().union(*(_enum_values(value) for value in schema))
    return set()


def _literal_values(annotation: Any) -> set[Any]:
    if typing.get_origin(annotation) is typing.Literal:
        return set(typing.get_args(annotation))
    return set().union(*(_literal_values(member) for member in typing.get_args(annotation)))


async def test_every_reachable_component_matches_its_sdk_model_field_by_field(
    openapi: dict[str, Any],
) -> None:
    schemas = openapi["components"]["schemas"]
    for name in sorted(_reachable(openapi)):
        model = getattr(models, name, None)
        assert model is not None, f"{name} has no SDK model"
        fields = {field.encode_name: field for field in msgspec.structs.fields(model)}
        served = schemas[name].get("properties", {})
        assert set(served) == set(fields), (name, set(served) ^ set(fields))
        for prop, schema in served.items():
            sdk_kinds = _kinds(fields[prop].type)
            assert _openapi_kinds(schema) - {"null"} <= sdk_kinds, (name, prop)
            values = _enum_values(schema) - {None}
            if not values:
                continue
            known = _literal_values(fields[prop].type) or {
                member.value for member in models.FIELD_ENUMS.get((name, prop), ())
            }
            assert values <= known, (name, prop, values - known)


@pytest.mark.parametrize(
    ("sdk_model", "server_model"),
    [
        (models.Event, ServerEvent),
        (models.TrialBalance, server_ledger.TrialBalance),
        (models.TrialBalanceLine, server_ledger.TrialBalanceLine),
        (models.TrialBalanceTotals, server_ledger.TrialBalanceTotals),
        (models.AccountStatement, server_ledger.AccountStatement),
    ],
)
def test_models_the_document_cannot_describe_match_the_server_structs(
    sdk_model: Any, server_model: Any
) -> None:
    def names(struct: Any) -> set[str]:
        return {field.encode_name for field in msgspec.structs.fields(struct)}

    assert names(sdk_model) == names(server_model)


@pytest.mark.parametrize(
    ("sdk_enum", "server_enum"),
    [
        (models.OrderStatus, status.OrderStatus),
        (models.EscrowStatus, status.EscrowStatus),
        (models.MilestoneStatus, status.MilestoneStatus),
        (models.DisputeStatus, status.DisputeStatus),
        (models.TopUpStatus, status.TopUpStatus),
        (models.WithdrawalStatus, status.WithdrawalStatus),
    ],
)
def test_status_enums_match_the_server_lifecycles(sdk_enum: Any, server_enum: Any) -> None:
    assert {member.value for member in sdk_enum} == {member.value for member in server_enum}


def test_event_types_match_the_server_catalog() -> None:
    assert {member.value for member in models.EventType} == set(EVENT_TYPES)


def _server_error_classes() -> Iterator[type[common.errors.AppError]]:
    pending: list[type[common.errors.AppError]] = [common.errors.AppError]
    while pending:
        cls = pending.pop()
        yield cls
        pending.extend(cls.__subclasses__())


def test_every_server_error_code_has_its_sdk_class_with_the_same_status() -> None:
    modules = {common.errors.__name__, api.errors.__name__, providers.errors.__name__}
    checked = 0
    for cls in _server_error_classes():
        if cls.__module__ not in modules:
            continue  # test-only subclasses
        sdk_class = sdk_errors.ERROR_CLASSES.get(cls.code)
        assert sdk_class is not None, f"{cls.code} has no SDK error class"
        assert sdk_class.code == cls.code
        status_code = api.errors.status_of(cls.__new__(cls))
        assert sdk_class.status_code == status_code, (cls.code, status_code)
        checked += 1
    assert checked > 50
