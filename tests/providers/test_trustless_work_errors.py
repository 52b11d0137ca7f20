"""The error conversion table of providers.md 1.8, driven through the real client."""

import json
from datetime import UTC, datetime

import httpx
import pytest

from providers.errors import (
    ProviderError,
    ProviderRejected,
    ProviderResponseInvalid,
    ProviderUnavailable,
)
from providers.trustless_work.client import TrustlessWorkClient
from providers.trustless_work.errors import reason_for_message, retry_after_s
from providers.trustless_work.port import ReleaseRequest, SignedTransaction
from providers.trustless_work.settings import TrustlessWorkSettings

CONTRACT = "CESCROWXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
BUYER = "GBUYERXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
SIGNED = SignedTransaction(tx_hash="cd" * 32, signed_xdr="AAAA")


def _nest(status: int, message: str | list[str], error: str = "Bad Request") -> bytes:
    return json.dumps({"statusCode": status, "message": message, "error": error}).encode()


def _client(answer: httpx.Response | Exception) -> TrustlessWorkClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return TrustlessWorkClient(
        http, TrustlessWorkSettings(base_url="https://tw.test"), api_key="id.secret"
    )


async def _fail(answer: httpx.Response | Exception, *, is_send: bool) -> ProviderError:
    client = _client(answer)
    release = ReleaseRequest(contract_id=CONTRACT, release_signer=BUYER)
    call = client.send_transaction(SIGNED) if is_send else client.build_release(release)
    with pytest.raises(ProviderError) as caught:
        await call
    return caught.value


REJECTED, UNAVAILABLE, INVALID = ProviderRejected, ProviderUnavailable, ProviderResponseInvalid
BUILD, SEND = False, True
VALIDATION = ["amount must be greater than 0", "signer should not be empty"]
GATEWAY_HTML = b"<html>Bad Gateway</html>"
COULD_NOT_SEND = "The transaction could not be sent, try again"


@pytest.mark.parametrize(
    ("status", "body", "is_send", "error_type", "reason"),
    [
        (400, _nest(400, "Escrow already in dispute"), BUILD, REJECTED, "already_in_dispute"),
        (400, _nest(400, VALIDATION), BUILD, REJECTED, "invalid_amount"),
        (400, _nest(400, "Something new"), BUILD, REJECTED, "provider_error"),
        (404, _nest(404, "Cannot POST /x", "Not Found"), BUILD, REJECTED, "provider_error"),
        (401, _nest(401, "Unauthorized", "Unauthorized"), BUILD, REJECTED, "unauthorized"),
        (401, _nest(401, "Unauthorized", "Unauthorized"), SEND, REJECTED, "unauthorized"),
        (403, b"", BUILD, REJECTED, "unauthorized"),
        (500, _nest(500, "Escrow not found", "Server Error"), BUILD, UNAVAILABLE, "server_error"),
        (502, GATEWAY_HTML, BUILD, UNAVAILABLE, "server_error"),
        (408, b"", BUILD, UNAVAILABLE, "server_error"),
        (500, _nest(500, COULD_NOT_SEND), SEND, UNAVAILABLE, "outcome_unknown"),
        (504, b"", SEND, UNAVAILABLE, "outcome_unknown"),
        (400, _nest(400, "Bad union: resultMetaXdr"), SEND, UNAVAILABLE, "outcome_unknown"),
        (400, _nest(400, "may not be complete yet"), SEND, UNAVAILABLE, "outcome_unknown"),
        (400, _nest(400, "tx_bad_seq"), SEND, REJECTED, "provider_error"),
        (302, b"", BUILD, INVALID, "unexpected_status"),
    ],
)
async def test_status_conversion(
    status: int, body: bytes, is_send: bool, error_type: type[ProviderError], reason: str
) -> None:
    error = await _fail(httpx.Response(status, content=body), is_send=is_send)
    assert type(error) is error_type
    assert (error.reason, error.status_code, error.provider) == (reason, status, "trustless_work")


@pytest.mark.parametrize("is_send", [BUILD, SEND])
async def test_rate_limit_is_retryable_even_on_send(is_send: bool) -> None:
    # TW's limiter answers before the handler runs, so a 429 send was not submitted.
    error = await _fail(httpx.Response(429, headers={"retry-after": "7"}), is_send=is_send)
    assert type(error) is ProviderUnavailable
    assert (error.reason, error.retry_after_s) == ("rate_limited", 7.0)


async def test_rate_limit_honours_retry_after() -> None:
    error = await _fail(httpx.Response(429, headers={"retry-after": "12"}), is_send=False)
    assert error.retry_after_s == 12.0
    error = await _fail(httpx.Response(429), is_send=False)
    assert error.retry_after_s is None


async def test_rejection_keeps_the_contract_message() -> None:
    body = _nest(400, ["Only the approver can approve milestones", "second"])
    error = await _fail(httpx.Response(400, content=body), is_send=False)
    assert error.reason == "wrong_signer"
    assert "Only the approver can approve milestones; second" in error.message


@pytest.mark.parametrize(
    ("exception", "is_send", "reason"),
    [
        (httpx.ReadTimeout("slow"), False, "timeout"),
        (httpx.ReadTimeout("slow"), True, "outcome_unknown"),
        (httpx.WriteTimeout("slow"), True, "outcome_unknown"),
        (httpx.RemoteProtocolError("dropped"), False, "connection_failed"),
        (httpx.RemoteProtocolError("dropped"), True, "outcome_unknown"),
        (httpx.ReadError("reset"), True, "outcome_unknown"),
        (httpx.ConnectError("refused"), False, "connection_failed"),
        (httpx.ConnectError("refused"), True, "connection_failed"),
        (httpx.ConnectTimeout("no route"), True, "connection_failed"),
        (httpx.PoolTimeout("busy"), True, "connection_failed"),
    ],
)
async def test_transport_conversion(exception: Exception, is_send: bool, reason: str) -> None:
    error = await _fail(exception, is_send=is_send)
    assert type(error) is ProviderUnavailable
    assert error.reason == reason
    assert error.__cause__ is exception


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("All milestones must be completed to release funds", "milestones_not_approved"),
        ("The escrow balance must be equal to the amount of earnings", "escrow_underfunded"),
        ("Escrow already in dispute", "already_in_dispute"),
        ("Escrow not in dispute", "not_in_dispute"),
        ("This escrow is already resolved", "already_resolved"),
        ("The escrow funds have been released", "already_released"),
        ("The milestone has already been approved", "already_approved"),
        ("The sum of distributions must equal the balance", "distribution_sum_mismatch"),
        ("The signer has insufficient funds to fund this escrow", "insufficient_funds"),
        ("The escrow properties do not match the stored escrow", "stale_escrow_state"),
        ("The dispute resolver cannot dispute the escrow", "resolver_cannot_dispute"),
        ("Only the service provider can change milestone status", "wrong_signer"),
        ("Only the dispute resolver can execute this function", "wrong_signer"),
        ("Invalid milestone index", "invalid_milestone_index"),
        ("Amount cannot be zero", "invalid_amount"),
        ("unexpected", "provider_error"),
    ],
)
def test_reason_for_message(message: str, reason: str) -> None:
    assert reason_for_message(message) == reason
    assert reason_for_message(message.upper()) == reason


def test_retry_after_forms() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_s("30", now=now) == 30.0
    assert retry_after_s("Wed, 01 Jan 2025 12:00:45 GMT", now=now) == 45.0
    assert retry_after_s("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0
    assert retry_after_s("soon", now=now) is None
    assert retry_after_s(None) is None
