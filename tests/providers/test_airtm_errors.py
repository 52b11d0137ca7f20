"""The Airtm client against recorded-style answers (httpx.MockTransport): decoding and errors."""

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from providers.airtm import (
    AirtmClient,
    AirtmSettings,
    PayinCreate,
    PayinStatus,
    PayoutCreate,
    PayoutStatus,
)
from providers.errors import ProviderRejected, ProviderResponseInvalid, ProviderUnavailable

FIXTURES = Path(__file__).parent / "fixtures" / "airtm"
BASE_URL = "https://api.stg.enterprise.airtm.com/v2"
SETTINGS = AirtmSettings(base_url=BASE_URL, api_key="key", api_secret="secret")
Handler = Callable[[httpx.Request], httpx.Response]

PAYIN_REQUEST = PayinCreate(
    code="topup_recorded1",
    amount_minor=1_255_000_000,
    description="Wallet top-up",
    confirmation_uri="https://market.example/topups/ok",
    cancel_uri="https://market.example/topups/cancel",
)
PAYOUT_REQUEST = PayoutCreate(
    code="wd_recorded1",
    recipient_email="bob@example.com",
    amount_minor=500_000_000,
    notes="withdrawal",
    enterprise_fee_minor=5_000_000,
)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def answer(status: int, name: str | None = None, retry_after: str | None = None) -> httpx.Response:
    content = b"" if name is None else fixture(name)
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return httpx.Response(status, content=content, headers=headers)


def make_client(handler: Handler) -> AirtmClient:
    return AirtmClient(httpx.AsyncClient(transport=httpx.MockTransport(handler)), SETTINGS)


async def test_payin_decodes_exact_amounts_and_ignores_unknown_fields() -> None:
    client = make_client(lambda _: answer(200, "payin_created.json"))

    payin = await client.get_payin("0b6c7e2a-5d1f-4c43-9a55-2f1e8d3b7c10")

    assert payin.status is PayinStatus.CREATED
    assert payin.amount_minor == 1_255_000_000
    assert payin.net_amount_minor == 1_217_300_000
    assert payin.airtm_fee_minor == 37_700_000
    assert payin.airtm_user_id is None


async def test_payout_and_balance_decode() -> None:
    routes = {"/v2/payouts/p1": "payout_committed.json", "/v2/me/balance": "balance.json"}
    client = make_client(lambda request: answer(200, routes[request.url.path]))

    payout = await client.get_payout("p1")
    balance = await client.me_balance()

    assert payout.status is PayoutStatus.COMMITTED
    assert (payout.gross_amount_minor, payout.amount_minor) == (500_000_000, 495_000_000)
    assert (payout.net_amount_minor, payout.airtm_fee_minor) == (485_100_000, 9_900_000)
    assert payout.enterprise_fee_minor == 5_000_000
    assert (balance.available_minor, balance.pending_minor) == (105_002_500_000, 495_000_000)


async def test_request_carries_basic_auth_and_two_decimal_numbers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(201, "payin_created.json")

    await make_client(handler).create_payin(PAYIN_REQUEST)

    (request,) = seen
    assert request.url == f"{BASE_URL}/payins"
    assert request.headers["authorization"] == "Basic a2V5OnNlY3JldA=="
    assert b'"amount":125.50' in request.content
    body = json.loads(request.content)
    assert body["items"] == [{"description": "Wallet top-up", "amount": 125.5, "quantity": 1}]
    assert body["code"] == "topup_recorded1"


@pytest.mark.parametrize(
    ("response", "retry_after_s"),
    [
        (answer(429, retry_after="7"), 7.0),
        (answer(429), None),
        (answer(500), None),
        (answer(502, "gateway_502.html"), None),
        (answer(503, retry_after="2"), 2.0),
        (answer(504), None),
    ],
)
async def test_throttling_and_server_errors_are_unavailable(
    response: httpx.Response, retry_after_s: float | None
) -> None:
    client = make_client(lambda _: response)

    with pytest.raises(ProviderUnavailable) as caught:
        await client.get_payin("x")

    assert caught.value.status_code == response.status_code
    assert caught.value.retry_after_s == retry_after_s


@pytest.mark.parametrize(
    "error",
    [httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), httpx.RemoteProtocolError("")],
)
async def test_transport_failures_are_unavailable(error: httpx.TransportError) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    with pytest.raises(ProviderUnavailable) as caught:
        await make_client(handler).me_balance()

    assert caught.value.__cause__ is error


@pytest.mark.parametrize(
    ("status", "name", "reason"),
    [
        (422, "error_balance.json", "415016"),
        (401, "error_unauthorized.json", "415904"),
        (403, "gateway_502.html", None),
    ],
)
async def test_business_refusals_are_rejected_with_airtm_code(
    status: int, name: str, reason: str | None
) -> None:
    client = make_client(lambda _: answer(status, name))

    with pytest.raises(ProviderRejected) as caught:
        await client.create_payout(PAYOUT_REQUEST, commit=True)

    assert (caught.value.status_code, caught.value.reason) == (status, reason)


@pytest.mark.parametrize(
    "content",
    [
        b"<html>oops</html>",
        b'{"id": "x"}',
        fixture("payin_created.json").replace(b'"amount": 125.5,', b'"amount": 125.505,'),
        fixture("payin_created.json").replace(b'"amount": 125.5,', b'"amount": "lots",'),
        fixture("payin_created.json").replace(b'"amount": 125.5,', b'"amount": -1,'),
    ],
)
async def test_undecodable_answers_are_invalid(content: bytes) -> None:
    client = make_client(lambda _: httpx.Response(200, content=content))

    with pytest.raises(ProviderResponseInvalid):
        await client.get_payin("x")


async def test_unknown_status_is_kept_raw() -> None:
    content = fixture("payin_created.json").replace(b'"CREATED"', b'"on_hold"')
    client = make_client(lambda _: httpx.Response(200, content=content))

    payin = await client.get_payin("x")

    assert payin.status is None
    assert payin.raw_status == "on_hold"


async def test_status_is_matched_case_insensitively() -> None:
    content = fixture("payin_created.json").replace(b'"CREATED"', b'"confirmed"')
    payin = await make_client(lambda _: httpx.Response(200, content=content)).get_payin("x")

    assert payin.status is PayinStatus.CONFIRMED


@pytest.mark.parametrize("commit_answer", [answer(204), httpx.Response(201, content=b"not json")])
async def test_commit_never_parses_its_answer(commit_answer: httpx.Response) -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(f"{request.method} {request.url.path}")
        if request.url.path.endswith("/commit"):
            return commit_answer
        return answer(200, "payout_committed.json")

    payout = await make_client(handler).commit_payout("p1")

    assert payout.status is PayoutStatus.COMMITTED
    assert paths == ["POST /v2/payouts/p1/commit", "GET /v2/payouts/p1"]


async def test_duplicate_code_adopts_the_matching_payin() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return answer(409, "error_code_exists.json")
        assert request.url.path == "/v2/payins/by-code/topup_recorded1"
        return answer(200, "payin_created.json")

    payin = await make_client(handler).create_payin(PAYIN_REQUEST)

    assert payin.code == "topup_recorded1"


async def test_duplicate_code_with_a_different_amount_is_rejected() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return answer(409, "error_code_exists.json")
        return answer(200, "payin_created.json")

    other = PayinCreate(
        code="topup_recorded1",
        amount_minor=10_000_000,
        description="x",
        confirmation_uri="https://a",
        cancel_uri="https://b",
    )
    with pytest.raises(ProviderRejected) as caught:
        await make_client(handler).create_payin(other)

    assert caught.value.reason == "415029"


async def test_timeout_on_create_looks_up_the_code_then_posts_again_with_it() -> None:
    calls: list[tuple[str, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((f"{request.method} {request.url.path}", request.content))
        if request.method == "GET":
            return httpx.Response(404, json={"code": 415031, "message": "Payin not found"})
        if len(calls) == 1:
            raise httpx.ReadTimeout("slow")
        return answer(201, "payin_created.json")

    payin = await make_client(handler).create_payin(PAYIN_REQUEST)

    assert payin.id == "0b6c7e2a-5d1f-4c43-9a55-2f1e8d3b7c10"
    assert [name for name, _ in calls] == [
        "POST /v2/payins",
        "GET /v2/payins/by-code/topup_recorded1",
        "POST /v2/payins",
    ]
    assert calls[0][1] == calls[2][1]  # the retry is byte-identical, same code


async def test_repeated_cancel_returns_the_cancelled_payin() -> None:
    cancelled = fixture("payin_created.json").replace(b'"CREATED"', b'"CANCELED"')

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return httpx.Response(409, json={"code": 415030, "message": "cannot cancel"})
        return httpx.Response(200, content=cancelled)

    payin = await make_client(handler).cancel_payin("x")

    assert payin.status is PayinStatus.CANCELED


async def test_settings_repr_hides_credentials() -> None:
    settings = AirtmSettings(base_url=BASE_URL, api_key="k-7Hq2", api_secret="s-9Zx4")

    assert "k-7Hq2" not in repr(settings)
    assert "s-9Zx4" not in repr(settings)


USER_ANSWER = (
    b'{"id": "6f1c2d3e-0000-4000-8000-000000000001", "status": "inactive",'
    b' "primaryEmail": "a+b@example.com", "firstName": "Ana", "lastName": "B",'
    b' "country": "AR", "isVerified": true, "createdAt": "2024-01-02T03:04:05.000Z"}'
)


async def test_user_lookup_encodes_the_email_and_decodes_the_account() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=USER_ANSWER)

    user = await make_client(handler).get_user_by_email("a+b@example.com")

    (request,) = seen
    assert request.method == "GET"
    assert request.url.raw_path == b"/v2/users/a%2Bb%40example.com"
    assert (user.id, user.email) == ("6f1c2d3e-0000-4000-8000-000000000001", "a+b@example.com")
    assert (user.status, user.is_verified, user.country) == ("inactive", True, "AR")


async def test_user_without_is_verified_counts_as_unverified() -> None:
    content = USER_ANSWER.replace(b' "country": "AR", "isVerified": true,', b"")
    client = make_client(lambda _: httpx.Response(200, content=content))

    user = await client.get_user_by_email("a+b@example.com")

    assert (user.is_verified, user.country) == (False, None)


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(404, content=b'{"code": 415059, "message": "User not found"}'), None),
        (httpx.Response(200, content=b'{"id": "u1", "status": "active"}'), ProviderResponseInvalid),
        (answer(503, retry_after="3"), ProviderUnavailable),
    ],
)
async def test_user_lookup_failures_go_through_the_one_conversion(
    response: httpx.Response, error: type[Exception] | None
) -> None:
    client = make_client(lambda _: response)

    with pytest.raises(error or ProviderRejected) as caught:
        await client.get_user_by_email("nobody@example.com")

    if error is None:
        assert isinstance(caught.value, ProviderRejected)
        assert (caught.value.status_code, caught.value.reason) == (404, "415059")
