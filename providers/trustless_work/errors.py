"""The one place where Trustless Work failures become provider errors (providers.md 1.8).

What happened                                  Raised (reason)
---------------------------------------------  ---------------------------------------------------
connect error, connect or pool timeout         ProviderUnavailable (connection_failed); nothing
                                               reached TW, so this holds even for a send
read/write timeout, dropped connection         ProviderUnavailable (timeout, connection_failed);
                                               on a send: outcome_unknown
429                                            ProviderUnavailable (rate_limited) + Retry-After
5xx, 408                                       ProviderUnavailable (server_error);
                                               on a send: outcome_unknown
send error "resultMetaXdr", "not be complete   ProviderUnavailable (outcome_unknown): it has
yet", or a 2xx send reply without SUCCESS      probably landed; look the hash up on Horizon
401, 403                                       ProviderRejected (unauthorized): configuration
other 4xx                                      ProviderRejected (a code from _MESSAGE_REASONS)
undecodable body / other status                ProviderResponseInvalid (undecodable,
                                               unexpected_status)
"""

import email.utils
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Final

import httpx
import msgspec

from providers.errors import (
    ProviderError,
    ProviderRejected,
    ProviderResponseInvalid,
    ProviderUnavailable,
)
from providers.trustless_work.port import OUTCOME_UNKNOWN
from providers.trustless_work.wire import ErrorBody

__all__ = [
    "PROVIDER",
    "converted_errors",
    "error_for_response",
    "is_transient_send_message",
    "reason_for_message",
    "retry_after_s",
]

PROVIDER: Final = "trustless_work"
_MESSAGE_LENGTH_MAX: Final = 500

# Contract errors arrive only as text (V1 error numbers in brackets). Order matters: the
# generic "only the" role message is checked after the specific ones.
_MESSAGE_REASONS: Final = (
    ("must be completed to release", "milestones_not_approved"),  # [5]
    ("balance must be equal to the amount", "escrow_underfunded"),  # [6]
    ("already in dispute", "already_in_dispute"),  # [13]
    ("not in dispute", "not_in_dispute"),  # [14]
    ("already resolved", "already_resolved"),  # [24]
    ("funds have been released", "already_released"),  # [35]
    ("already been approved", "already_approved"),  # [29]
    ("sum of distributions must equal", "distribution_sum_mismatch"),  # [39]
    ("insufficient funds to fund", "insufficient_funds"),  # [42]
    ("do not match the stored escrow", "stale_escrow_state"),  # [33]
    ("dispute resolver cannot dispute", "resolver_cannot_dispute"),  # [40]
    ("invalid milestone index", "invalid_milestone_index"),  # [10]
    ("only the", "wrong_signer"),  # [4, 8, 11, 12, 26]
    # The exact texts of the amount <= 0 errors [1, 38, 41] are not confirmed.
    ("greater than zero", "invalid_amount"),
    ("greater than 0", "invalid_amount"),
    ("cannot be zero", "invalid_amount"),
)
_TRANSIENT_SEND_MARKERS: Final = ("resultmetaxdr", "not be complete yet")
_ERROR_BODY_DECODER: Final = msgspec.json.Decoder(ErrorBody)


def reason_for_message(message: str) -> str:
    """Map a TW/contract error text to a stable reason code (``provider_error`` if unknown)."""
    folded = message.casefold()
    for marker, reason in _MESSAGE_REASONS:
        if marker in folded:
            return reason
    return "provider_error"


def is_transient_send_message(message: str) -> bool:
    """Tell whether a send-transaction error text means "probably landed, result not ready"."""
    folded = message.casefold()
    return any(marker in folded for marker in _TRANSIENT_SEND_MARKERS)


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse a Retry-After header (delta seconds or an HTTP date) into seconds from now."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    reference = now or datetime.now(UTC)
    return max(0.0, (moment - reference).total_seconds())


def _error_message(content: bytes) -> str:
    try:
        body = _ERROR_BODY_DECODER.decode(content)
    except msgspec.DecodeError:
        # Proxies and gateways answer with HTML or plain text; keep a bounded excerpt.
        return content[:_MESSAGE_LENGTH_MAX].decode("utf-8", errors="replace")
    if isinstance(body.message, list):
        return "; ".join(body.message)
    return body.message or body.error or ""


def error_for_response(response: httpx.Response, *, is_send: bool) -> ProviderError:
    """Convert a non-2xx TW answer into the provider error the caller must handle.

    Args:
        response: The answer, with its body read.
        is_send: True for ``/helper/send-transaction``, whose failures may hide a landed tx.
    """
    status = response.status_code
    message = _error_message(response.content)
    where = f"{response.request.method} {response.request.url.path}"
    text = f"{where} answered {status}: {message}"
    if status == 429:
        wait_s = retry_after_s(response.headers.get("retry-after"))
        return ProviderUnavailable(
            text,
            provider=PROVIDER,
            status_code=status,
            reason="rate_limited",
            retry_after_s=wait_s,
        )
    if status >= 500 or status == 408 or (is_send and is_transient_send_message(message)):
        reason = OUTCOME_UNKNOWN if is_send else "server_error"
        return ProviderUnavailable(text, provider=PROVIDER, status_code=status, reason=reason)
    if status in (401, 403):
        return ProviderRejected(text, provider=PROVIDER, status_code=status, reason="unauthorized")
    if 400 <= status < 500:
        reason = reason_for_message(message)
        return ProviderRejected(text, provider=PROVIDER, status_code=status, reason=reason)
    return ProviderResponseInvalid(
        text, provider=PROVIDER, status_code=status, reason="unexpected_status"
    )


@contextmanager
def converted_errors(*, is_send: bool) -> Iterator[None]:
    """Convert transport and decoding failures raised inside the block into provider errors.

    Provider errors raised inside pass through unchanged. Decoding failures include a
    ``ValueError`` from converting an amount.
    """
    try:
        yield
    except ProviderError:
        raise
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
        # Nothing reached TW, so even a send is known not to have been submitted by this call.
        raise ProviderUnavailable(
            f"could not reach Trustless Work: {error!r}",
            provider=PROVIDER,
            reason="connection_failed",
        ) from error
    except TimeoutError as error:
        # Our own deadline (asyncio.timeout): the request may have reached TW.
        reason = OUTCOME_UNKNOWN if is_send else "timeout"
        raise ProviderUnavailable(
            "Trustless Work did not answer in time", provider=PROVIDER, reason=reason
        ) from error
    except (httpx.TimeoutException, httpx.TransportError) as error:
        reason = _ambiguous_reason(error, is_send=is_send)
        raise ProviderUnavailable(
            f"Trustless Work did not answer: {error!r}", provider=PROVIDER, reason=reason
        ) from error
    except (msgspec.DecodeError, ValueError) as error:
        raise ProviderResponseInvalid(
            f"Trustless Work answer could not be decoded: {error}",
            provider=PROVIDER,
            reason="undecodable",
        ) from error


def _ambiguous_reason(error: httpx.HTTPError, *, is_send: bool) -> str:
    if is_send:
        return OUTCOME_UNKNOWN
    if isinstance(error, httpx.TimeoutException):
        return "timeout"
    return "connection_failed"
