"""Every error answer in one place: the status table, the error body and the exception handlers.

Domain code raises :class:`common.errors.AppError` subclasses; this module is the only place that
knows their HTTP status (api.md section 2). The errors defined here exist only at the HTTP edge.

AppError (common.errors)
 +-- Unauthorized            401 UNAUTHORIZED: no or malformed ``Authorization`` header
 +-- InvalidApiKey           401 INVALID_API_KEY: unknown, revoked or wrong key
 +-- InsufficientScope       403 INSUFFICIENT_SCOPE
 +-- RouteNotFound           404 NOT_FOUND: no such route
 +-- MethodNotAllowed        405 METHOD_NOT_ALLOWED (with ``Allow``)
 +-- PayloadTooLarge         413 PAYLOAD_TOO_LARGE
 +-- UnsupportedMediaType    415 UNSUPPORTED_MEDIA_TYPE
 +-- RateLimited             429 RATE_LIMITED (with ``Retry-After``)
"""

import logging
import math
from collections.abc import Callable
from typing import Any, Final

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)

from api.request_id import request_id_of
from common.errors import (
    AppError,
    BadRequest,
    ConcurrentUpdate,
    Conflict,
    IdempotencyKeyInProgress,
    NotFound,
    ProviderFailure,
    ProviderTimeout,
    ProviderUnavailableError,
    Rejected,
    ServiceUnavailable,
    ValidationFailed,
)
from providers.errors import ProviderError, ProviderUnavailable

__all__ = [
    "ErrorReply",
    "FieldError",
    "InsufficientScope",
    "InvalidApiKey",
    "MethodNotAllowed",
    "PayloadTooLarge",
    "RateLimited",
    "RouteNotFound",
    "Unauthorized",
    "UnsupportedMediaType",
    "error_reply",
    "exception_handlers",
    "invalid",
    "is_stored_error",
]

logger = logging.getLogger("offerhub.api")

JSON_MEDIA_TYPE: Final = "application/json; charset=utf-8"


class Unauthorized(AppError):
    """Send an Authorization header of the form 'Bearer <api key>'."""

    code = "UNAUTHORIZED"


class InvalidApiKey(AppError):
    """The API key is unknown, revoked or wrong."""

    code = "INVALID_API_KEY"


class InsufficientScope(AppError):
    """The credential lacks the scope this endpoint requires."""

    code = "INSUFFICIENT_SCOPE"


class RouteNotFound(NotFound):
    """No such route."""

    code = "NOT_FOUND"


class MethodNotAllowed(AppError):
    """The route exists but does not accept this method."""

    code = "METHOD_NOT_ALLOWED"


class PayloadTooLarge(AppError):
    """The request body is larger than the limit."""

    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(AppError):
    """Send the request body as application/json."""

    code = "UNSUPPORTED_MEDIA_TYPE"


class RateLimited(AppError):
    """Too many requests; retry after the Retry-After delay."""

    code = "RATE_LIMITED"

    def __init__(self, *, limit: int, window_seconds: int, retry_after: int) -> None:
        super().__init__(limit=limit, window_seconds=window_seconds, retry_after=retry_after)
        self.retry_after_s = retry_after


class FieldError(msgspec.Struct, frozen=True):
    """One offending input: ``milestones[1].amount``, ``query.limit``, ``header.Name``."""

    field: str
    message: str


def invalid(field: str, message: str) -> ValidationFailed:
    """A 400 ``VALIDATION_ERROR`` naming one field, for checks a request Struct cannot express."""
    return ValidationFailed(fields=[FieldError(field, message)])


# The status of each family; a class not listed takes the status of its nearest listed base.
_STATUS: Final[dict[type[AppError], int]] = {
    AppError: 500,
    BadRequest: 400,
    Unauthorized: 401,
    InvalidApiKey: 401,
    InsufficientScope: 403,
    NotFound: 404,
    MethodNotAllowed: 405,
    Conflict: 409,
    # Contention that outlived the transaction retries: transient, so 503 and never stored.
    ConcurrentUpdate: 503,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    Rejected: 422,
    RateLimited: 429,
    ProviderFailure: 502,
    ProviderError: 502,
    ProviderUnavailableError: 503,
    ProviderUnavailable: 503,
    ServiceUnavailable: 503,
    ProviderTimeout: 504,
}

# Seconds a client should wait before retrying, per family (an error may carry its own).
_RETRY_AFTER_S: Final[dict[type[AppError], int]] = {
    IdempotencyKeyInProgress: 1,
    ConcurrentUpdate: 1,
    ProviderUnavailableError: 5,
    ProviderUnavailable: 5,
    ServiceUnavailable: 5,
}


def _lookup(table: dict[type[AppError], int], error: AppError) -> int | None:
    for cls in type(error).__mro__:
        if cls in table:
            return table[cls]
    return None


def status_of(error: AppError) -> int:
    """The HTTP status of an application error."""
    status = _lookup(_STATUS, error)
    assert status is not None
    return status


def is_stored_error(error: AppError) -> bool:
    """Whether an idempotent request stores this error (api.md 1.8: 404, 409 and 422)."""
    return status_of(error) in (404, 409, 422)


class ErrorReply(msgspec.Struct, frozen=True):
    """An error answer: status, encoded body and extra headers."""

    status_code: int
    body: bytes
    headers: dict[str, str]


def _encode_detail(value: Any) -> Any:
    return str(value)


def _body(code: str, message: str, details: dict[str, Any]) -> bytes:
    payload = {"error": {"code": code, "message": message, "details": details}}
    return msgspec.json.encode(payload, enc_hook=_encode_detail)


def _provider_details(error: ProviderError) -> dict[str, Any]:
    details = {
        "provider": error.provider,
        "provider_status": error.status_code,
        "provider_message": error.reason,
    }
    extra = {k: v for k, v in error.details.items() if k not in ("status_code", "reason")}
    return {**extra, **details}


def error_reply(error: AppError) -> ErrorReply:
    """Render an application error as the standard ``{"error": {...}}`` answer."""
    status = status_of(error)
    headers: dict[str, str] = {}
    if status == 500:
        # Never leak internals: the log has them, keyed by the request id.
        return ErrorReply(500, _body("INTERNAL_ERROR", "Internal error", {}), headers)
    details = _provider_details(error) if isinstance(error, ProviderError) else error.details
    retry_after = getattr(error, "retry_after_s", None) or _lookup(_RETRY_AFTER_S, error)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    allow = error.details.get("allow") if isinstance(error, MethodNotAllowed) else None
    if allow:
        headers["Allow"] = str(allow)
    return ErrorReply(status, _body(error.code, error.message, dict(details)), headers)


def _from_http_exception(exc: HTTPException) -> AppError:
    """Translate Litestar's own exceptions (routing, body size, parsing) into ours."""
    if isinstance(exc, MethodNotAllowedException):
        allow = (exc.headers or {}).get("allow", "")
        return MethodNotAllowed(allow=allow)
    if isinstance(exc, NotFoundException):
        return RouteNotFound()
    if exc.status_code == 413:
        return PayloadTooLarge()
    if exc.status_code == 415:
        return UnsupportedMediaType()
    if exc.status_code == 401:
        return Unauthorized()
    if exc.status_code == 403:
        return InsufficientScope()
    if isinstance(exc, ValidationException) or exc.status_code == 400:
        return ValidationFailed(fields=_litestar_fields(exc.extra))
    if exc.status_code == 503:
        return ServiceUnavailable()
    return AppError()


def _litestar_fields(extra: Any) -> list[FieldError]:
    """Fields of a Litestar validation error (our own checks normally answer first)."""
    fields = []
    for item in extra if isinstance(extra, list) else []:
        if not isinstance(item, dict):
            continue
        key = str(item.get("key", "body"))
        source = str(item.get("source", "body"))
        name = key if source == "body" else f"{source}.{key}"
        fields.append(FieldError(name, str(item.get("message", "invalid"))))
    return fields


# The database server is down, restarting or out of connections: 503 (api.md 2).
_DATABASE_UNAVAILABLE: Final = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
)


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The one exception handler: every exception becomes the standard error shape."""
    if isinstance(exc, AppError):
        error = exc
    elif isinstance(exc, HTTPException):
        error = _from_http_exception(exc)
    elif isinstance(exc, _DATABASE_UNAVAILABLE):
        logger.warning("database unavailable: %r", exc)
        error = ServiceUnavailable("The database is unavailable; retry later.")
    else:
        error = AppError()
    if status_of(error) == 500:
        logger.error(
            "unhandled error on %s %s (request %s)",
            request.method,
            request.url.path,
            request_id_of(request.scope),
            exc_info=exc,
        )
    reply = error_reply(error)
    return Response(
        reply.body,
        status_code=reply.status_code,
        headers=reply.headers,
        media_type=JSON_MEDIA_TYPE,
    )


exception_handlers: Final[
    dict[int | type[Exception], Callable[[Request[Any, Any, Any], Any], Response[Any]]]
] = {Exception: handle_exception}
