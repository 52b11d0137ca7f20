"""The SDK's retries, keys and errors against scripted answers (httpx.MockTransport, no server).

Each test scripts the server's answers in order and records what the client sent and how long
it chose to wait (the transport's ``sleep`` is swapped for a recorder), so the rules of
api.md 1.8 / 1.10 are checked exactly: one Idempotency-Key per logical call, reused on every
retry; Retry-After honoured; exponential backoff with jitter otherwise; no retry on other 4xx.
"""

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from offerhub_client import AsyncOfferHub, OfferHub, RetryPolicy, errors
from offerhub_client.models import Order

ORDER: dict[str, Any] = {
    "id": "ord_" + "a" * 32,
    "client_order_ref": None,
    "buyer_id": "usr_" + "b" * 32,
    "seller_id": "usr_" + "s" * 32,
    "amount": "80.00",
    "currency": "USD",
    "status": "FUNDS_RESERVED",
    "close_reason": None,
    "title": "Logo",
    "description": None,
    "metadata": None,
    "milestones": [],
    "escrow": None,
    "dispute_id": None,
    "operation": None,
    "created_at": "2026-01-12T10:00:00.000Z",
    "updated_at": "2026-01-12T10:00:01.000Z",
    "closed_at": None,
    "a_field_from_the_future": {"ignored": True},
}


def error(status: int, code: str, **headers: str) -> httpx.Response:
    """An answer in the API's error shape."""
    body = {"error": {"code": code, "message": code.lower(), "details": {"hint": 1}}}
    return httpx.Response(status, json=body, headers={"X-Request-ID": "req-1", **headers})


class Script:
    """Answers in order; records every request and every wait the client chose."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers: Iterator[httpx.Response | Exception] = iter(answers)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = next(self.answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        return self.handle(request)

    def client(self, policy: RetryPolicy | None = None) -> OfferHub:
        client = OfferHub(
            "http://offerhub.test/api/v1",
            "ohk_test_key",
            transport=httpx.MockTransport(self.handle),
            retry=policy,
        )
        client.orders._transport.sleep = self.sleeps.append
        return client

    def async_client(self, policy: RetryPolicy | None = None) -> AsyncOfferHub:
        client = AsyncOfferHub(
            "http://offerhub.test/api/v1",
            "ohk_test_key",
            transport=httpx.MockTransport(self.handle_async),
            retry=policy,
        )

        async def record(delay: float) -> None:
            self.sleeps.append(delay)

        client.orders._transport.sleep = record
        return client

    def keys(self) -> list[str | None]:
        return [request.headers.get("Idempotency-Key") for request in self.requests]


def reserve(client: OfferHub, **kwargs: Any) -> Order:
    return client.orders.reserve("ord_" + "a" * 32, **kwargs)


def test_a_post_carries_one_generated_key_reused_on_every_retry() -> None:
    script = Script(
        httpx.ReadTimeout("lost"),
        error(503, "SERVICE_UNAVAILABLE", **{"Retry-After": "2"}),
        error(409, "IDEMPOTENCY_KEY_IN_PROGRESS", **{"Retry-After": "1"}),
        error(500, "INTERNAL_ERROR"),
        httpx.Response(200, json=ORDER, headers={"Idempotency-Replayed": "true"}),
    )
    order = reserve(script.client(), amount=Decimal("80"))
    assert order.status == "FUNDS_RESERVED"
    assert order.amount == Decimal("80.00")
    keys = script.keys()
    assert len(keys) == 5
    assert len(set(keys)) == 1
    assert keys[0]
    # Every attempt sent the same body; Decimal amounts travel as plain strings.
    assert {request.content for request in script.requests} == {b'{"amount":"80"}'}
    # Retry-After is honoured as given; the others are jittered backoffs of 0.25 s doubling.
    assert script.sleeps[1:3] == [2.0, 1.0]
    assert 0.125 <= script.sleeps[0] <= 0.25
    assert 1.0 <= script.sleeps[3] <= 2.0


def test_each_logical_call_gets_its_own_key_and_a_callers_key_is_used() -> None:
    script = Script(*(httpx.Response(200, json=ORDER) for _ in range(3)))
    client = script.client()
    reserve(client)
    reserve(client)
    reserve(client, idempotency_key="my-key-1")
    first, second, mine = script.keys()
    assert first != second
    assert mine == "my-key-1"
    assert script.requests[0].headers["Authorization"] == "Bearer ohk_test_key"


def test_gets_carry_no_key_and_are_retried_on_connection_errors() -> None:
    script = Script(httpx.ConnectError("refused"), httpx.Response(200, json=ORDER))
    order = script.client().orders.get("ord_" + "a" * 32)
    assert order.id == ORDER["id"]
    assert script.keys() == [None, None]
    assert len(script.sleeps) == 1


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "VALIDATION_ERROR", errors.ValidationError),
        (401, "INVALID_API_KEY", errors.InvalidApiKey),
        (403, "INSUFFICIENT_SCOPE", errors.InsufficientScope),
        (404, "ORDER_NOT_FOUND", errors.OrderNotFound),
        (409, "INVALID_STATE", errors.InvalidState),
        (409, "IDEMPOTENCY_KEY_REUSED", errors.IdempotencyKeyReused),
        (422, "INSUFFICIENT_FUNDS", errors.InsufficientFunds),
        (422, "SOMETHING_NEW_IN_V1", errors.BusinessRuleError),
    ],
)
def test_other_4xx_are_raised_at_once_with_code_details_and_request_id(
    status: int, code: str, expected: type[errors.APIError]
) -> None:
    script = Script(error(status, code))
    with pytest.raises(expected) as raised:
        reserve(script.client())
    assert len(script.requests) == 1
    assert script.sleeps == []
    assert (raised.value.code, raised.value.status_code) == (code, status)
    assert (raised.value.details, raised.value.request_id) == ({"hint": 1}, "req-1")
    assert type(raised.value) is expected


def test_when_retries_run_out_the_last_answer_is_raised() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.01)
    script = Script(*(error(502, "PROVIDER_ERROR") for _ in range(3)))
    with pytest.raises(errors.ProviderError):
        reserve(script.client(policy))
    assert len(script.requests) == 3
    assert len(set(script.keys())) == 1
    script = Script(*(httpx.ReadTimeout("slow") for _ in range(3)))
    with pytest.raises(errors.APITimeoutError):
        reserve(script.client(policy))
    script = Script(error(429, "RATE_LIMITED", **{"Retry-After": "3600"}))
    with pytest.raises(errors.RateLimited) as raised:
        reserve(script.client(policy))
    # A wait longer than the policy allows is not slept: the caller decides.
    assert raised.value.retry_after_s == 3600
    assert script.sleeps == []


def test_floats_are_refused_before_anything_is_sent() -> None:
    script = Script()
    with pytest.raises(TypeError):
        reserve(script.client(), amount=80.0)
    assert script.requests == []


def test_list_all_follows_the_cursor_with_the_same_filters() -> None:
    pages = [
        {"data": [ORDER, ORDER], "pagination": {"has_more": True, "next_cursor": "c_2"}},
        {"data": [ORDER], "pagination": {"has_more": False, "next_cursor": None}},
    ]
    script = Script(*(httpx.Response(200, json=page) for page in pages))
    orders = list(script.client().orders.list_all(status=["IN_PROGRESS", "CLOSED"], limit=2))
    assert len(orders) == 3
    queries = [dict(request.url.params) for request in script.requests]
    assert queries == [
        {"status": "IN_PROGRESS,CLOSED", "limit": "2"},
        {"status": "IN_PROGRESS,CLOSED", "limit": "2", "cursor": "c_2"},
    ]


async def test_the_async_client_retries_with_the_same_key() -> None:
    script = Script(
        httpx.RemoteProtocolError("reset"),
        error(429, "RATE_LIMITED", **{"Retry-After": "1"}),
        httpx.Response(200, json=ORDER),
    )
    async with script.async_client() as client:
        order = await client.orders.reserve(ORDER["id"])
    assert order.id == ORDER["id"]
    keys = script.keys()
    assert len(keys) == 3
    assert len(set(keys)) == 1
    assert keys[0] is not None
    assert script.sleeps[1] == 1.0


def _answers(kinds: list[str]) -> list[httpx.Response | Exception]:
    table: dict[str, Callable[[], httpx.Response | Exception]] = {
        "timeout": lambda: httpx.ReadTimeout("t"),
        "reset": lambda: httpx.ReadError("r"),
        "429": lambda: error(429, "RATE_LIMITED", **{"Retry-After": "0"}),
        "500": lambda: error(500, "INTERNAL_ERROR"),
        "503": lambda: error(503, "PROVIDER_UNAVAILABLE"),
        "in_progress": lambda: error(409, "IDEMPOTENCY_KEY_IN_PROGRESS"),
    }
    return [table[kind]() for kind in kinds]


@given(
    st.lists(st.sampled_from(["timeout", "reset", "429", "500", "503", "in_progress"]), max_size=4)
)
def test_any_sequence_of_transient_failures_ends_in_one_success_with_one_key(
    failures: list[str],
) -> None:
    script = Script(*_answers(failures), httpx.Response(200, json=ORDER))
    order = reserve(script.client(RetryPolicy(max_attempts=5, max_delay_s=4)))
    assert order.id == ORDER["id"]
    assert len(script.requests) == len(failures) + 1
    assert len(set(script.keys())) == 1
    # Waits are never negative and never beyond the policy's cap.
    assert all(0 <= delay <= 4 for delay in script.sleeps)
    assert len(script.sleeps) == len(failures)
    bodies = {json.loads(request.content or b"{}").get("amount") for request in script.requests}
    assert bodies == {None}
