"""The three provider errors every port raises, converted from vendor errors in one place per
client.

ProviderError
 +-- ProviderUnavailable      timeout, connection error, 429, 5xx: retry (after Retry-After)
 +-- ProviderRejected         a business refusal (4xx with a reason): a retry will not help
 +-- ProviderResponseInvalid  the answer could not be decoded or failed a safety check
"""

from typing import ClassVar

from common.errors import AppError

__all__ = ["ProviderError", "ProviderRejected", "ProviderResponseInvalid", "ProviderUnavailable"]


class ProviderError(AppError):
    """A provider call failed."""

    code: ClassVar[str] = "PROVIDER_ERROR"

    def __init__(
        self,
        message: str | None = None,
        *,
        provider: str,
        status_code: int | None = None,
        reason: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider, status_code=status_code, reason=reason)
        self.provider = provider
        self.status_code = status_code
        self.reason = reason
        self.retry_after_s = retry_after_s


class ProviderUnavailable(ProviderError):
    """The provider did not answer usefully (timeout, connection error, 429 or 5xx); retry later."""

    code = "PROVIDER_UNAVAILABLE"


class ProviderRejected(ProviderError):
    """The provider refused the request for a business reason."""

    code = "PROVIDER_ERROR"


class ProviderResponseInvalid(ProviderError):
    """The provider's answer could not be decoded or failed verification."""

    code = "PROVIDER_ERROR"
