"""The one mapping from provider errors to the API's error codes (api.md section 2).

Ports raise the three ``providers.errors`` kinds; a handler that calls a provider itself (an
Airtm lookup, a Horizon read) wraps the call so the client sees the documented code::

    async with provider_call():
        found = await runtime.fiat.get_user_by_email(email)

    # or, when a refusal has a business meaning for this endpoint:
    def refused(error: ProviderRejected) -> AppError | None:
        return AirtmUserInvalid(reason="USER_NOT_FOUND") if error.status_code == 404 else None

    async with provider_call(rejected=refused):
        ...

or calls :func:`translate` on a caught error. The mapping:

==========================================  ================================================
ProviderUnavailable, reason timeout or      504 ``PROVIDER_TIMEOUT``
outcome_unknown (a read that timed out)
ProviderUnavailable, HTTP 429               502 ``PROVIDER_RATE_LIMITED`` (+ ``Retry-After``)
ProviderUnavailable from Horizon            502 ``STELLAR_NETWORK_ERROR``
ProviderUnavailable, any other              503 ``PROVIDER_UNAVAILABLE`` (+ ``Retry-After``)
ProviderRejected / ProviderResponseInvalid  502 ``PROVIDER_ERROR``, unless ``rejected`` maps a
                                            refusal to a business code
==========================================  ================================================

Every translated error carries ``details {provider, provider_status, provider_message,
provider_code}``. Errors that are not provider errors pass through untouched.
"""

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from common.errors import (
    AppError,
    ProviderFailure,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailableError,
    StellarNetworkError,
)
from providers.errors import ProviderError, ProviderRejected, ProviderUnavailable

__all__ = ["RejectedMapper", "provider_call", "provider_details", "translate"]

RejectedMapper = Callable[[ProviderRejected], AppError | None]
"""Turns a business refusal into the endpoint's own code; ``None`` keeps ``PROVIDER_ERROR``."""

# Reasons the clients give a read that got no answer in time (a submit's is outcome_unknown).
_TIMEOUT_REASONS: Final = frozenset({"timeout", "outcome_unknown"})
# Horizon's failures without a definitive result have their own code (api.md section 2).
_HORIZON: Final = "stellar"


def provider_details(error: ProviderError) -> dict[str, Any]:
    """The ``details`` of a translated provider error: who answered what."""
    return {
        "provider": error.provider,
        "provider_status": error.status_code,
        "provider_message": error.message,
        "provider_code": error.reason,
    }


def _with_retry_after(translated: AppError, error: ProviderError) -> AppError:
    # error_reply reads `retry_after_s` off the error when it carries one.
    if error.retry_after_s is not None:
        translated.retry_after_s = error.retry_after_s  # type: ignore[attr-defined]
    return translated


def _unavailable(error: ProviderUnavailable) -> AppError:
    details = provider_details(error)
    name = error.provider
    if error.reason in _TIMEOUT_REASONS:
        return ProviderTimeout(f"{name} did not answer in time", **details)
    if error.status_code == 429 or error.reason == "rate_limited":
        limited = ProviderRateLimited(f"{name} is rate limiting us", **details)
        return _with_retry_after(limited, error)
    if name == _HORIZON:
        return StellarNetworkError(f"Horizon failed: {error.message}", **details)
    return _with_retry_after(ProviderUnavailableError(f"{name} is unavailable", **details), error)


def translate(error: Exception, *, rejected: RejectedMapper | None = None) -> Exception:
    """The API error for ``error``: provider errors are mapped, anything else returned as is."""
    if not isinstance(error, ProviderError):
        return error
    if isinstance(error, ProviderUnavailable):
        return _unavailable(error)
    if isinstance(error, ProviderRejected) and rejected is not None:
        business = rejected(error)
        if business is not None:
            return business
    message = f"{error.provider} refused the call: {error.message}"
    return ProviderFailure(message, **provider_details(error))


@contextlib.asynccontextmanager
async def provider_call(*, rejected: RejectedMapper | None = None) -> AsyncIterator[None]:
    """Run a handler's own provider call; a provider error leaves the block translated.

    Args:
        rejected: Optional mapping of a business refusal to the endpoint's own error code.
    """
    try:
        yield
    except ProviderError as error:
        raise translate(error, rejected=rejected) from error
