"""Request checks that list every offending input (api.md 1.3), before Litestar parses anything.

The ``before_request`` hook :func:`check_request` runs after the route's guard and before the
handler's parameters are parsed. It checks the query string against the handler's declared query
parameters, and on POST the ``Idempotency-Key`` header, the media type, the size and the JSON
body against the handler's ``data: JSONBody[T]`` Struct. When it passes, Litestar's own parsing
of the same declarations cannot fail; when it fails, the answer names every field.
"""

import types
import weakref
from collections.abc import Iterable
from typing import (
    Annotated,
    Any,
    Final,
    Literal,
    NamedTuple,
    Union,
    cast,
    get_args,
    get_origin,
)

import msgspec
from litestar import Request
from litestar.enums import ParamType
from litestar.handlers import HTTPRouteHandler
from msgspec import Meta

from api.body_shape import NUL_MESSAGE, shape_problems
from api.errors import FieldError, UnsupportedMediaType
from api.schemas.common import AMOUNT_META, CURRENCY_META
from common.errors import (
    AppError,
    InvalidAmount,
    InvalidAmountFormat,
    InvalidCurrency,
    ValidationFailed,
)
from common.money import AmountFormatError, parse_amount

__all__ = [
    "Problem",
    "check_body_value",
    "check_declarations",
    "check_request",
    "problems_error",
]

ProblemKind = Literal["schema", "amount_format", "amount_zero", "currency"]
_BOUNDS: Final = ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern", "multiple_of")


class Problem(NamedTuple):
    """One offending input and the error family it belongs to."""

    field: str
    message: str
    kind: ProblemKind = "schema"


def problems_error(problems: Iterable[Problem]) -> AppError:
    """The error for a list of problems: any schema problem makes it ``VALIDATION_ERROR``."""
    listed = list(problems)
    kinds = {problem.kind for problem in listed}
    fields = [FieldError(problem.field, problem.message) for problem in listed]
    if "schema" in kinds:
        return ValidationFailed(fields=fields)
    if "amount_format" in kinds:
        return InvalidAmountFormat(fields=fields)
    if "currency" in kinds:
        return InvalidCurrency(fields=fields)
    return InvalidAmount(fields=fields)


# -- types ---------------------------------------------------------------------------------------


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (Union, types.UnionType):
        args = get_args(annotation)
        others = [arg for arg in args if arg is not type(None)]
        if len(others) == 1 and len(args) == 2:
            return others[0], True
    return annotation, False


def _metadata(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    if get_origin(annotation) is Annotated:
        base, *metadata = get_args(annotation)
        return base, tuple(metadata)
    return annotation, ()


def _is_struct(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)


def _message(error: msgspec.ValidationError) -> tuple[str, str]:
    """Split msgspec's "Expected `int`, got `str` - at `$.a[1]`" into message and sub-path."""
    text, _, where = str(error).partition(" - at `$")
    return text, where.rstrip("`")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# -- body ----------------------------------------------------------------------------------------


def _check_amount(value: Any, path: str, problems: list[Problem]) -> None:
    try:
        minor = parse_amount(value)
    except AmountFormatError as error:
        problems.append(Problem(path, str(error), "amount_format"))
        return
    if minor == 0:
        problems.append(Problem(path, "must be greater than zero", "amount_zero"))


def _check_list(
    value: Any, base: Any, meta: tuple[Any, ...], path: str, out: list[Problem]
) -> None:
    if not isinstance(value, list):
        out.append(Problem(path, f"Expected `array`, got `{type(value).__name__}`"))
        return
    for bound in (item for item in meta if isinstance(item, Meta)):
        if bound.min_length is not None and len(value) < bound.min_length:
            out.append(Problem(path, f"must have at least {bound.min_length} items"))
        if bound.max_length is not None and len(value) > bound.max_length:
            out.append(Problem(path, f"must have at most {bound.max_length} items"))
    (item_type,) = get_args(base)
    for index, item in enumerate(value):
        check_body_value(item, item_type, f"{path}[{index}]", out)


def _needs_walk(annotation: Any) -> bool:
    """Whether a type holds Structs, amounts or currencies that need our own checks."""
    inner, _ = _unwrap_optional(annotation)
    base, meta = _metadata(inner)
    if AMOUNT_META in meta or CURRENCY_META in meta or _is_struct(base):
        return True
    return get_origin(base) is list and _needs_walk(get_args(base)[0])


def check_body_value(value: Any, annotation: Any, path: str, problems: list[Problem]) -> None:
    """Check one JSON value against a field type, appending every problem found."""
    inner, is_optional = _unwrap_optional(annotation)
    if value is None and is_optional:
        return
    base, meta = _metadata(inner)
    if AMOUNT_META in meta:
        _check_amount(value, path, problems)
    elif CURRENCY_META in meta:
        if value != "USD":
            problems.append(Problem(path, "only USD is supported", "currency"))
    elif _is_struct(base):
        _check_struct(value, base, path, problems)
    elif get_origin(base) is list and _needs_walk(get_args(base)[0]):
        _check_list(value, base, meta, path, problems)
    else:
        try:
            msgspec.convert(value, annotation, strict=True)
        except msgspec.ValidationError as error:
            message, where = _message(error)
            problems.append(Problem(path + where, message))


def _check_struct(value: Any, struct_type: Any, path: str, problems: list[Problem]) -> None:
    if not isinstance(value, dict):
        problems.append(Problem(path or "body", "must be a JSON object"))
        return
    fields = msgspec.structs.fields(struct_type)
    known = {field.encode_name for field in fields}
    unknown = [name for name in value if name not in known]
    problems.extend(Problem(_join(path, name), "unknown field") for name in unknown)
    for field in fields:
        here = _join(path, field.encode_name)
        if field.encode_name not in value:
            if field.required:
                problems.append(Problem(here, "required"))
            continue
        check_body_value(value[field.encode_name], field.type, here, problems)


def _check_whole(value: Any, struct_type: Any, problems: list[Problem]) -> None:
    """After the field checks pass, convert once more to catch rules only the Struct knows."""
    try:
        msgspec.convert(value, struct_type, strict=True)
    except msgspec.ValidationError as error:
        message, where = _message(error)
        problems.append(Problem(where.lstrip(".") or "body", message))


# -- handler declarations ------------------------------------------------------------------------


class _QueryParam(NamedTuple):
    annotation: Any
    is_sequence: bool
    bounds: dict[str, Any]


class _RequestSpec(NamedTuple):
    query: dict[str, _QueryParam]
    body_type: Any  # the Struct of `data`, or None when the handler takes no body
    body_optional: bool


# Per handler function: Litestar deep-copies handlers when it registers them, so the spec is
# keyed by the function they all share (and dies with it).
_SPECS: Final[weakref.WeakKeyDictionary[Any, _RequestSpec]] = weakref.WeakKeyDictionary()


def _query_param(field: Any) -> _QueryParam:
    kwarg = field.kwarg_definition
    bounds = {name: getattr(kwarg, name) for name in _BOUNDS if getattr(kwarg, name) is not None}
    base, is_optional = _unwrap_optional(field.annotation)
    annotation = field.annotation
    if bounds:
        # Constraints apply to the value type, not to the "or None" around it.
        bounded = cast(Any, Annotated)[base, Meta(**bounds)]
        annotation = bounded | None if is_optional else bounded
    return _QueryParam(annotation, get_origin(base) in (list, tuple, set), bounds)


def _spec(handler: HTTPRouteHandler) -> _RequestSpec:
    """What the handler declares, computed once per handler function."""
    cached = _SPECS.get(handler.fn)
    if cached is not None:
        return cached
    query: dict[str, _QueryParam] = {}
    body_type, body_optional = None, True
    for name, field in handler.parsed_fn_signature.parameters.items():
        kwarg = field.kwarg_definition
        if getattr(kwarg, "param_type", None) == ParamType.QUERY:
            query[getattr(kwarg, "name", None) or getattr(kwarg, "query", None) or name] = (
                _query_param(field)
            )
        elif name == "data":
            body_type, body_optional = _unwrap_optional(field.annotation)
            body_optional = body_optional or field.has_default
    spec = _RequestSpec(query, body_type, body_optional)
    _SPECS[handler.fn] = spec
    return spec


def check_declarations(handler: HTTPRouteHandler) -> None:
    """Refuse, at start-up, a body these checks cannot validate the way Litestar parses it.

    Raises:
        RuntimeError: ``data`` is not a Struct, or a body whose fields are all optional is
            required (an empty POST body would then fail inside Litestar).
    """
    spec = _spec(handler)
    if spec.body_type is None:
        return
    if not _is_struct(spec.body_type):
        raise RuntimeError(f"{handler.handler_name}: data must be a RequestStruct")
    fields = msgspec.structs.fields(spec.body_type)
    if not spec.body_optional and not any(field.required for field in fields):
        raise RuntimeError(
            f"{handler.handler_name}: every field of the body is optional; declare "
            "`data: JSONBody[T | None] = None` so that an empty body is accepted"
        )


# -- the hook ------------------------------------------------------------------------------------


def _check_query(spec: _RequestSpec, request: Request[Any, Any, Any]) -> list[Problem]:
    problems = []
    for name, values in request.query_params.dict().items():
        param = spec.query.get(name)
        if param is None:
            problems.append(Problem(f"query.{name}", "unknown parameter"))
            continue
        if not param.is_sequence and len(values) > 1:
            problems.append(Problem(f"query.{name}", "must appear once"))
            continue
        raw = values if param.is_sequence else values[0]
        if any("\x00" in value for value in values):
            problems.append(Problem(f"query.{name}", NUL_MESSAGE))
            continue
        try:
            msgspec.convert(raw, param.annotation, strict=False)
        except msgspec.ValidationError as error:
            message, _ = _message(error)
            if "ge" in param.bounds and "le" in param.bounds:
                message = f"must be {param.bounds['ge']}..{param.bounds['le']}"
            problems.append(Problem(f"query.{name}", message))
    return problems


def _check_idempotency_key(request: Request[Any, Any, Any]) -> list[Problem]:
    key = request.headers.get("idempotency-key")
    if key is None:
        return [Problem("header.Idempotency-Key", "required")]
    if not 1 <= len(key) <= 255 or not all(" " <= char <= "~" for char in key):
        return [Problem("header.Idempotency-Key", "must be 1-255 printable ASCII characters")]
    return []


def _is_json(content_type: str | None) -> bool:
    media_type, _, parameters = (content_type or "").partition(";")
    charset = parameters.strip().lower().removeprefix("charset=").strip('"')
    return media_type.strip().lower() == "application/json" and charset in ("", "utf-8")


async def _check_body(spec: _RequestSpec, request: Request[Any, Any, Any]) -> list[Problem]:
    body = await request.body()  # Litestar answers 413 past the configured size
    if not body:  # as Litestar sees it: only a truly empty body is "no body"
        if spec.body_type is None or spec.body_optional:
            return []
        value: Any = {}
    else:
        if not _is_json(request.headers.get("content-type")):
            raise UnsupportedMediaType()
        try:
            value = msgspec.json.decode(body)
            shape = shape_problems(body, value)
        except (msgspec.DecodeError, UnicodeDecodeError) as error:
            return [Problem("body", f"malformed JSON: {error}")]
        except RecursionError:
            return [Problem("body", "malformed JSON: nested too deeply")]
        if shape:
            return [Problem(field, message) for field, message in shape]
    if spec.body_type is None:
        if not isinstance(value, dict):
            return [Problem("body", "must be a JSON object")]
        return [Problem(name, "unknown field") for name in value]
    problems: list[Problem] = []
    _check_struct(value, spec.body_type, "", problems)
    if not problems:
        _check_whole(value, spec.body_type, problems)
    return problems


async def check_request(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook of every API route: raise one error listing every problem."""
    spec = _spec(request.route_handler)
    problems = [
        Problem(f"path.{name}", NUL_MESSAGE)
        for name, value in request.path_params.items()
        if isinstance(value, str) and "\x00" in value
    ]
    problems.extend(_check_query(spec, request))
    if request.method == "POST":
        if request.route_handler.opt.get("idempotency", True):
            problems.extend(_check_idempotency_key(request))
        problems.extend(await _check_body(spec, request))
    if problems:
        raise problems_error(problems)
