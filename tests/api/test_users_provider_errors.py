"""``api.provider_errors``: every provider error becomes the documented API code (api.md 2)."""

import json

import pytest

from api.errors import error_reply
from api.provider_errors import provider_call, translate
from common.errors import AirtmUserInvalid, AppError, OrderNotFound
from providers.errors import (
    ProviderError,
    ProviderRejected,
    ProviderResponseInvalid,
    ProviderUnavailable,
)
from providers.stellar.port import ResultCodes, TransactionFailed


def _wire(error: Exception) -> tuple[int, str, dict[str, object], dict[str, str]]:
    translated = translate(error)
    assert isinstance(translated, AppError)
    reply = error_reply(translated)
    body = json.loads(reply.body)["error"]
    return reply.status_code, body["code"], body["details"], reply.headers


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ProviderUnavailable("slow", provider="airtm", reason="timeout"), 504, "PROVIDER_TIMEOUT"),
        (
            ProviderUnavailable("lost", provider="stellar", reason="outcome_unknown"),
            504,
            "PROVIDER_TIMEOUT",
        ),
        (
            ProviderUnavailable("busy", provider="airtm", status_code=429, retry_after_s=3),
            502,
            "PROVIDER_RATE_LIMITED",
        ),
        (
            ProviderUnavailable("down", provider="stellar", status_code=503, reason="server_error"),
            502,
            "STELLAR_NETWORK_ERROR",
        ),
        (
            ProviderUnavailable("down", provider="trustless_work", status_code=502),
            503,
            "PROVIDER_UNAVAILABLE",
        ),
        (
            ProviderUnavailable("no route", provider="airtm", reason="transport"),
            503,
            "PROVIDER_UNAVAILABLE",
        ),
        (
            ProviderRejected("bad", provider="airtm", status_code=400, reason="415901"),
            502,
            "PROVIDER_ERROR",
        ),
        (ProviderResponseInvalid("garbled", provider="trustless_work"), 502, "PROVIDER_ERROR"),
        (
            TransactionFailed(
                "failed",
                result_codes=ResultCodes(transaction="tx_failed", operations=("op_underfunded",)),
                result_xdr=None,
            ),
            502,
            "PROVIDER_ERROR",
        ),
    ],
)
def test_each_provider_error_maps_to_its_code(error: ProviderError, status: int, code: str) -> None:
    got_status, got_code, details, _ = _wire(error)
    assert (got_status, got_code) == (status, code)
    assert set(details) >= {"provider", "provider_status", "provider_message", "provider_code"}
    assert details["provider"] == error.provider


def test_retry_after_is_kept_and_defaulted() -> None:
    limited = ProviderUnavailable("busy", provider="airtm", status_code=429, retry_after_s=2.5)
    assert _wire(limited)[3]["Retry-After"] == "3"
    waited = ProviderUnavailable("down", provider="airtm", status_code=503, retry_after_s=9)
    assert _wire(waited)[3]["Retry-After"] == "9"
    default = ProviderUnavailable("down", provider="airtm", reason="transport")
    assert _wire(default)[3]["Retry-After"] == "5"


def test_details_name_who_answered_what() -> None:
    _, _, details, _ = _wire(
        ProviderRejected("recipient not found", provider="airtm", status_code=422, reason="415059")
    )
    assert details == {
        "provider": "airtm",
        "provider_status": 422,
        "provider_message": "recipient not found",
        "provider_code": "415059",
    }


def test_a_refusal_may_carry_a_business_code_and_other_errors_pass() -> None:
    def business(error: ProviderRejected) -> AppError | None:
        return AirtmUserInvalid(reason="USER_NOT_FOUND") if error.status_code == 404 else None

    missing = ProviderRejected("no such user", provider="airtm", status_code=404)
    assert isinstance(translate(missing, rejected=business), AirtmUserInvalid)
    other = ProviderRejected("nope", provider="airtm", status_code=400)
    assert translate(other, rejected=business).__class__.__name__ == "ProviderFailure"
    # The mapper sees only refusals: an outage stays an outage.
    down = ProviderUnavailable("down", provider="airtm", status_code=503)
    assert type(translate(down, rejected=business)).__name__ == "ProviderUnavailableError"
    plain = OrderNotFound()
    assert translate(plain) is plain


async def test_provider_call_translates_inside_the_block() -> None:
    with pytest.raises(AppError) as caught:
        async with provider_call():
            raise ProviderUnavailable("slow", provider="stellar", reason="timeout")
    assert caught.value.code == "PROVIDER_TIMEOUT"
    assert isinstance(caught.value.__cause__, ProviderUnavailable)
    with pytest.raises(OrderNotFound):
        async with provider_call():
            raise OrderNotFound()
    async with provider_call():
        pass
