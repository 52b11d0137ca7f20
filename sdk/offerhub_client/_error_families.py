"""The roots and families of the client's errors (one family per HTTP status); see ``errors``."""

from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequest",
    "BusinessRuleError",
    "Conflict",
    "MethodNotAllowed",
    "NotFound",
    "OfferHubError",
    "PayloadTooLarge",
    "PermissionDenied",
    "ProviderError",
    "ProviderTimeout",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
    "UnexpectedState",
    "UnsupportedMediaType",
    "WaitTimeout",
    "WebhookVerificationError",
    "retry_after_s",
]


class OfferHubError(Exception):
    """Root of every error this package raises."""


class APIConnectionError(OfferHubError):
    """The request got no answer (connection refused or reset, protocol error)."""


class APITimeoutError(APIConnectionError):
    """The request got no answer in time."""


class APIError(OfferHubError):
    """The server answered with the error shape; ``code``, ``message``, ``details``, request id."""

    code: str = "INTERNAL_ERROR"
    status_code: int = 500

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        details: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        # Instance attributes shadow the class defaults when the answer says otherwise.
        self.code = code or type(self).code
        self.status_code = status_code or type(self).status_code
        self.details: dict[str, Any] = dict(details or {})
        self.request_id = request_id
        self.headers: dict[str, str] = dict(headers or {})

    def __str__(self) -> str:
        suffix = f" (request {self.request_id})" if self.request_id else ""
        return f"{self.status_code} {self.code}: {self.message}{suffix}"


class BadRequest(APIError):
    """400: the request is malformed or self-contradictory; nothing was written."""

    code, status_code = "INVALID_REQUEST", 400


class AuthenticationError(APIError):
    """401: no usable credential."""

    code, status_code = "UNAUTHORIZED", 401


class PermissionDenied(APIError):
    """403: the key lacks the endpoint's scope."""

    code, status_code = "INSUFFICIENT_SCOPE", 403


class MethodNotAllowed(APIError):
    """405: the route exists, the method does not."""

    code, status_code = "METHOD_NOT_ALLOWED", 405


class PayloadTooLarge(APIError):
    """413: the body is over the server's limit."""

    code, status_code = "PAYLOAD_TOO_LARGE", 413


class UnsupportedMediaType(APIError):
    """415: the body is not JSON."""

    code, status_code = "UNSUPPORTED_MEDIA_TYPE", 415


class NotFound(APIError):
    """404: no such route, or no such resource in this marketplace."""

    code, status_code = "NOT_FOUND", 404


class Conflict(APIError):
    """409: the request conflicts with the resource's current state."""

    code, status_code = "CONFLICT", 409


class BusinessRuleError(APIError):
    """422: the request is valid but a business rule refuses it."""

    code, status_code = "REJECTED", 422


class RateLimited(APIError):
    """429 RATE_LIMITED (retried automatically; raised when retries end)."""

    code, status_code = "RATE_LIMITED", 429

    @property
    def retry_after_s(self) -> float | None:
        """The server's ``Retry-After`` in seconds, if it sent one."""
        return retry_after_s(self.headers)


class ServerError(APIError):
    """5xx: the server or a provider failed; retrying with the same key is safe."""

    code, status_code = "INTERNAL_ERROR", 500


class ProviderError(ServerError):
    """502: a provider refused the call or answered nonsense (``details.provider*``)."""

    code, status_code = "PROVIDER_ERROR", 502


class ServiceUnavailable(ServerError):
    """503: the orchestrator is starting, draining, or its database is away."""

    code, status_code = "SERVICE_UNAVAILABLE", 503


class ProviderTimeout(ServerError):
    """504 PROVIDER_TIMEOUT."""

    code, status_code = "PROVIDER_TIMEOUT", 504


class WebhookVerificationError(OfferHubError):
    """A webhook delivery's signature is missing, malformed, stale or wrong."""


class WaitTimeout(OfferHubError):
    """The resource did not reach the awaited state in time; ``last`` is what was seen last."""

    def __init__(self, message: str, last: object) -> None:
        super().__init__(message)
        self.last = last


class UnexpectedState(OfferHubError):
    """The resource reached a state from which the awaited one is unreachable."""

    def __init__(self, message: str, last: object) -> None:
        super().__init__(message)
        self.last = last


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` as seconds (delay-seconds form; an HTTP date is ignored)."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None
