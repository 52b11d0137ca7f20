"""The real Airtm Enterprise API v2 client over an injected ``httpx.AsyncClient``.

Vendor failures become provider errors in one place, ``_converted_errors`` plus the status
check it wraps:

- timeouts, connection errors, 408, 429 and 5xx -> ProviderUnavailable (with Retry-After);
- any other 4xx -> ProviderRejected, ``reason`` = Airtm's error code (``"415029"``);
- an undecodable body or a non-cent amount -> ProviderResponseInvalid.

Creates are idempotent through Airtm's ``code`` (providers.md 4.2): after an unknown outcome the
client looks the code up before posting again, and a duplicate-code answer is resolved by reading
the stored resource, which is adopted only if it matches the request.
"""

import asyncio
import base64
import contextlib
import email.utils
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Final, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from common.metrics import provider_call
from providers.airtm import wire
from providers.airtm.amounts import AirtmAmountError
from providers.airtm.port import (
    AirtmUser,
    Balance,
    Payin,
    PayinCreate,
    PayinStatus,
    Payout,
    PayoutCreate,
    PayoutEvent,
    PayoutStatus,
)
from providers.errors import ProviderRejected, ProviderResponseInvalid, ProviderUnavailable

__all__ = ["AirtmClient", "AirtmSettings", "is_not_found"]

PROVIDER: Final = "airtm"
PAYIN_CODE_EXISTS: Final = "415029"
PAYIN_NOT_FOUND: Final = "415031"
PAYIN_CANNOT_CHANGE: Final = "415030"
PAYOUT_CODE_EXISTS: Final = "415056"
PAYOUT_NOT_FOUND: Final = "415005"
PAYOUT_ALREADY_PROCESSED: Final = "415027"
PAYOUT_CANNOT_CANCEL: Final = "415055"
RECIPIENT_NOT_FOUND: Final = "415059"
# 415059 is Airtm's "no account with this email", whatever HTTP status carries it.
_NOT_FOUND_REASONS: Final = frozenset({PAYIN_NOT_FOUND, PAYOUT_NOT_FOUND, RECIPIENT_NOT_FOUND})
_RETRYABLE_4XX: Final = frozenset({408, 429})

T = TypeVar("T")
W = TypeVar("W")


class AirtmSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where and how to reach Airtm; read once from configuration."""

    base_url: str
    api_key: str
    api_secret: str
    timeout_s: float = 10.0
    # POSTs per create call: after an unknown outcome the code is looked up before re-posting.
    create_attempts: int = 2
    # Where the payer pays a payin: Airtm's checkout page, "{payin_id}" replaced by the payin id
    # (api.md 3.7 confirmation_uri). Airtm's reply does not carry it; None leaves it unknown.
    checkout_url_template: str | None = None

    def __repr__(self) -> str:
        """Keep the credentials out of logs and tracebacks."""
        return f"AirtmSettings(base_url={self.base_url!r}, api_key='***', api_secret='***')"


def _retry_after_s(response: httpx.Response) -> float | None:
    """Read Retry-After as delta-seconds or an HTTP date; ``None`` when absent or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _status_error(response: httpx.Response) -> Exception:
    """Turn a non-2xx answer into the provider error that tells the caller what to do."""
    status = response.status_code
    if status in _RETRYABLE_4XX or status >= 500:
        return ProviderUnavailable(
            f"Airtm answered HTTP {status}",
            provider=PROVIDER,
            status_code=status,
            retry_after_s=_retry_after_s(response),
        )
    if 400 <= status < 500:
        try:
            body = wire.ERROR_DECODER.decode(response.content)
        except msgspec.DecodeError:
            # A refusal without Airtm's body (a proxy's 403, say) is still a refusal.
            return ProviderRejected(
                f"Airtm answered HTTP {status}", provider=PROVIDER, status_code=status
            )
        return ProviderRejected(
            body.message or f"Airtm answered HTTP {status}",
            provider=PROVIDER,
            status_code=status,
            reason=str(body.code),
        )
    return ProviderResponseInvalid(
        f"unexpected HTTP {status}", provider=PROVIDER, status_code=status
    )


@contextlib.contextmanager
def _converted_errors() -> Iterator[None]:
    """Convert httpx, msgspec and amount errors raised inside the block into provider errors."""
    try:
        yield
    except (httpx.TimeoutException, TimeoutError) as error:
        raise ProviderUnavailable("Airtm timed out", provider=PROVIDER, reason="timeout") from error
    except httpx.TransportError as error:
        raise ProviderUnavailable(
            f"Airtm unreachable: {type(error).__name__}", provider=PROVIDER, reason="transport"
        ) from error
    except (msgspec.DecodeError, AirtmAmountError) as error:
        raise ProviderResponseInvalid(f"bad Airtm answer: {error}", provider=PROVIDER) from error


def is_not_found(error: ProviderRejected) -> bool:
    """Tell whether a rejection means the resource does not exist."""
    return error.status_code == 404 or error.reason in _NOT_FOUND_REASONS


class AirtmClient:
    """``FiatProvider`` over HTTP. The caller owns the httpx client's lifecycle."""

    def __init__(self, http: httpx.AsyncClient, settings: AirtmSettings) -> None:
        self._http = http
        self._settings = settings
        self._base_url = settings.base_url.rstrip("/")
        token = base64.b64encode(f"{settings.api_key}:{settings.api_secret}".encode()).decode()
        self._headers = {
            "authorization": f"Basic {token}",
            "accept": "application/json",
            "content-type": "application/json",
        }

    async def _send(self, method: str, path: str, body: bytes | None = None) -> httpx.Response:
        with _converted_errors(), provider_call(PROVIDER, method, path) as call:
            # asyncio.timeout as well as httpx's: in-process transports (ASGI) ignore httpx's.
            async with asyncio.timeout(self._settings.timeout_s):
                response = await self._http.request(
                    method,
                    self._base_url + path,
                    content=body,
                    headers=self._headers,
                    timeout=self._settings.timeout_s,
                )
            call.answered(response.status_code)
        if not response.is_success:
            raise _status_error(response)
        return response

    async def _fetch(
        self,
        method: str,
        path: str,
        decoder: msgspec.json.Decoder[W],
        convert: Callable[[W], T],
        body: bytes | None = None,
    ) -> T:
        response = await self._send(method, path, body)
        with _converted_errors():
            return convert(decoder.decode(response.content))

    async def _create_idempotently(
        self,
        post: Callable[[], Awaitable[T]],
        find: Callable[[], Awaitable[T | None]],
        duplicate_reason: str,
    ) -> T:
        """POST, resolving an unknown outcome or a duplicate code by reading the code back."""
        unknown_outcome: ProviderUnavailable | None = None
        for _ in range(max(1, self._settings.create_attempts)):
            try:
                return await post()
            except ProviderRejected as error:
                if error.reason != duplicate_reason:
                    raise
                found = await find()
                if found is None:
                    raise  # Airtm says the code exists but cannot show it: do not guess.
                return found
            except ProviderUnavailable as error:
                # The POST may have been applied with only the answer lost (providers.md 4.2).
                unknown_outcome = error
                found = await find()
                if found is not None:
                    return found
        assert unknown_outcome is not None
        raise unknown_outcome

    def _payin_from_wire(self, decoded: wire.WirePayin) -> Payin:
        payin = wire.payin_from_wire(decoded)
        template = self._settings.checkout_url_template
        if template is None:
            return payin
        checkout = template.replace("{payin_id}", quote(payin.id, safe=""))
        return msgspec.structs.replace(payin, checkout_url=checkout)

    async def create_payin(self, request: PayinCreate) -> Payin:
        """Create a payin or adopt the matching payin already stored under ``request.code``."""
        body = wire.payin_request_body(request)

        async def post() -> Payin:
            """One POST of the same body (the same code) per attempt."""
            return await self._fetch(
                "POST", "/payins", wire.PAYIN_DECODER, self._payin_from_wire, body
            )

        payin = await self._create_idempotently(
            post, lambda: self._find_payin_by_code(request.code), PAYIN_CODE_EXISTS
        )
        if payin.code != request.code or payin.amount_minor != request.amount_minor:
            raise ProviderRejected(
                "the code belongs to a different payin",
                provider=PROVIDER,
                status_code=409,
                reason=PAYIN_CODE_EXISTS,
            )
        return payin

    async def get_payin(self, payin_id: str) -> Payin:
        """Read a payin by its Airtm id."""
        path = f"/payins/{quote(payin_id, safe='')}"
        return await self._fetch("GET", path, wire.PAYIN_DECODER, self._payin_from_wire)

    async def get_payin_by_code(self, code: str) -> Payin:
        """Read a payin by our code."""
        path = f"/payins/by-code/{quote(code, safe='')}"
        return await self._fetch("GET", path, wire.PAYIN_DECODER, self._payin_from_wire)

    async def _find_payin_by_code(self, code: str) -> Payin | None:
        try:
            return await self.get_payin_by_code(code)
        except ProviderRejected as error:
            if is_not_found(error):
                return None
            raise

    async def cancel_payin(self, payin_id: str) -> Payin:
        """Cancel a CREATED payin; a repeated cancel returns the already cancelled payin."""
        path = f"/payins/{quote(payin_id, safe='')}"
        try:
            # The DELETE answer's shape is not documented; the GET below is the truth.
            await self._send("DELETE", path)
        except ProviderRejected as error:
            if error.reason != PAYIN_CANNOT_CHANGE:
                raise
            payin = await self.get_payin(payin_id)
            if payin.status not in {PayinStatus.CANCELED, PayinStatus.BRIDGE_CANCELED}:
                raise
            return payin
        return await self.get_payin(payin_id)

    async def create_payout(self, request: PayoutCreate, *, commit: bool) -> Payout:
        """Create (and optionally commit) a payout, adopting a matching one by ``request.code``."""
        body = wire.payout_request_body(request, commit=commit)

        async def post() -> Payout:
            """One POST of the same body (the same code) per attempt."""
            return await self._fetch(
                "POST", "/payouts", wire.PAYOUT_DECODER, wire.payout_from_wire, body
            )

        payout = await self._create_idempotently(
            post, lambda: self._find_payout_by_code(request.code), PAYOUT_CODE_EXISTS
        )
        if not _payout_matches(payout, request):
            raise ProviderRejected(
                "the code belongs to a different payout",
                provider=PROVIDER,
                status_code=409,
                reason=PAYOUT_CODE_EXISTS,
            )
        if commit and payout.status is PayoutStatus.CREATED:
            # An adopted payout from an earlier commit:false attempt still needs its commit.
            return await self.commit_payout(payout.id)
        return payout

    async def commit_payout(self, payout_id: str) -> Payout:
        """Commit a payout; the answer is empty (204), so the payout is read afterwards."""
        path = f"/payouts/{quote(payout_id, safe='')}/commit"
        try:
            await self._send("POST", path)  # never parse: the body is empty
        except ProviderRejected as error:
            # 415027 "already processed": an earlier commit went through; the GET confirms.
            if error.reason != PAYOUT_ALREADY_PROCESSED:
                raise
        return await self.get_payout(payout_id)

    async def get_payout(self, payout_id: str) -> Payout:
        """Read a payout by its Airtm id."""
        path = f"/payouts/{quote(payout_id, safe='')}"
        return await self._fetch("GET", path, wire.PAYOUT_DECODER, wire.payout_from_wire)

    async def get_payout_by_code(self, code: str) -> Payout:
        """Read a payout by our code."""
        path = f"/payouts/by-code/{quote(code, safe='')}"
        return await self._fetch("GET", path, wire.PAYOUT_DECODER, wire.payout_from_wire)

    async def _find_payout_by_code(self, code: str) -> Payout | None:
        try:
            return await self.get_payout_by_code(code)
        except ProviderRejected as error:
            if is_not_found(error):
                return None
            raise

    async def get_payout_events(self, payout_id: str) -> tuple[PayoutEvent, ...]:
        """Read a payout's status history."""
        path = f"/payouts/{quote(payout_id, safe='')}/events"
        return await self._fetch("GET", path, wire.EVENTS_DECODER, wire.events_from_wire)

    async def cancel_payout(self, payout_id: str) -> Payout:
        """Cancel a CREATED or PENDING payout; a repeated cancel returns the cancelled payout."""
        path = f"/payouts/{quote(payout_id, safe='')}"
        try:
            await self._send("DELETE", path)
        except ProviderRejected as error:
            if error.reason != PAYOUT_CANNOT_CANCEL:
                raise
            payout = await self.get_payout(payout_id)
            if payout.status is not PayoutStatus.CANCELED:
                raise
            return payout
        return await self.get_payout(payout_id)

    async def me_balance(self) -> Balance:
        """Read the enterprise balance."""
        return await self._fetch("GET", "/me/balance", wire.BALANCE_DECODER, wire.balance_from_wire)

    async def get_user_by_email(self, email: str) -> AirtmUser:
        """Read the Airtm account behind ``email`` (404 / ``is_not_found`` when there is none)."""
        # safe="" so "@", "+" and "/" travel encoded: one path segment, never a query or a space.
        path = f"/users/{quote(email, safe='')}"
        return await self._fetch("GET", path, wire.USER_DECODER, wire.user_from_wire)


def _payout_matches(payout: Payout, request: PayoutCreate) -> bool:
    return (
        payout.code == request.code
        and payout.gross_amount_minor == request.amount_minor
        and payout.airtm_user_email.casefold() == request.recipient_email.casefold()
    )
