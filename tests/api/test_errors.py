"""Every error path of the edge answers the standard shape with its status, over HTTP."""

import logging
import uuid

import httpx
import pytest

from api.errors import error_reply
from common.errors import (
    ConcurrentUpdate,
    InvalidTransition,
    InvariantViolation,
    ProviderTimeout,
    ServiceUnavailable,
)
from providers.errors import ProviderRejected, ProviderUnavailable
from tests.api.support import MASTER_KEY, Api

pytestmark = pytest.mark.db


def error_of(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["details"], dict)
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    return dict(body["error"])


def fields_of(response: httpx.Response) -> list[dict[str, str]]:
    return list(error_of(response)["details"]["fields"])  # type: ignore[index]


async def test_authentication_failures_are_401(api: Api) -> None:
    _marketplace_id, key = await api.tenant()
    missing = await api.client.get("/api/v1/auth/me")
    basic = await api.client.get("/api/v1/auth/me", headers={"Authorization": "Basic abc"})
    empty = await api.client.get("/api/v1/auth/me", headers={"Authorization": "Bearer "})
    garbage = await api.get("/api/v1/auth/me", "ohk_test_nonsense")
    wrong_secret = await api.get("/api/v1/auth/me", key[:-4] + "0000")
    live = await api.get("/api/v1/auth/me", key.replace("ohk_test_", "ohk_live_"))
    header = await api.client.get("/api/v1/auth/me", headers={"x-api-key": key})
    for response in (missing, basic, empty, header):
        assert response.status_code == 401
        assert error_of(response)["code"] == "UNAUTHORIZED"
    for response in (garbage, wrong_secret, live):
        assert response.status_code == 401
        assert error_of(response)["code"] == "INVALID_API_KEY"
    assert (await api.get("/api/v1/auth/me", key)).status_code == 200


async def test_missing_scope_is_403_with_details(api: Api) -> None:
    _, reader = await api.tenant(["read"])
    _, writer = await api.tenant(["write"])
    _, admin = await api.tenant(["admin"])
    denied = await api.post("/api/v1/test/effects", reader, {"note": "x"})
    assert denied.status_code == 403
    assert error_of(denied) == {
        "code": "INSUFFICIENT_SCOPE",
        "message": "The credential lacks the scope this endpoint requires.",
        "details": {"required_scope": "write", "current_scopes": ["read"]},
    }
    assert (await api.get("/api/v1/test/events", writer)).status_code == 403
    assert (await api.get("/api/v1/test/events", admin)).status_code == 200  # admin satisfies all
    marketplaces = await api.get("/api/v1/marketplaces", admin)
    assert marketplaces.status_code == 403
    assert error_of(marketplaces)["details"] == {
        "required_scope": "master",
        "current_scopes": ["admin"],
    }


async def test_master_key_is_refused_on_marketplace_endpoints(api: Api) -> None:
    response = await api.get("/api/v1/test/events", MASTER_KEY)
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "INSUFFICIENT_SCOPE"
    assert error["details"] == {"required_scope": "read", "current_scopes": []}


async def test_unknown_route_is_404_and_wrong_method_is_405_with_allow(api: Api) -> None:
    for path in ("/api/v1/nope", "/api/v1/a/b/c", "/elsewhere", "/api/v1/users/x/balance/raw"):
        response = await api.client.get(path)
        assert response.status_code == 404, path
        assert error_of(response) == {
            "code": "NOT_FOUND",
            "message": "No such route.",
            "details": {},
        }
    wrong = await api.client.put("/api/v1/marketplaces", headers=api.auth(MASTER_KEY))
    assert wrong.status_code == 405
    assert error_of(wrong)["code"] == "METHOD_NOT_ALLOWED"
    assert set(wrong.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


async def test_body_over_the_limit_is_413(api: Api) -> None:
    _, key = await api.tenant()
    body = b'{"note": "' + b"x" * (1024 * 1024) + b'"}'
    headers = api.auth(key, **{"Idempotency-Key": "k", "Content-Type": "application/json"})
    response = await api.client.post("/api/v1/test/effects", content=body, headers=headers)
    assert response.status_code == 413
    assert error_of(response)["code"] == "PAYLOAD_TOO_LARGE"


async def test_non_json_body_is_415_and_malformed_json_is_400(api: Api) -> None:
    _, key = await api.tenant()
    headers = api.auth(key, **{"Idempotency-Key": "k"})
    text = await api.client.post(
        "/api/v1/test/effects",
        content=b"note=x",
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert text.status_code == 415
    assert error_of(text)["code"] == "UNSUPPORTED_MEDIA_TYPE"
    broken = await api.client.post(
        "/api/v1/test/effects",
        content=b'{"note": ',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert broken.status_code == 400
    assert error_of(broken)["code"] == "VALIDATION_ERROR"
    assert [field["field"] for field in fields_of(broken)] == ["body"]
    blank = await api.client.post(
        "/api/v1/test/no-body",
        content=b"  ",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert [field["field"] for field in fields_of(blank)] == ["body"]
    array = await api.client.post("/api/v1/test/effects", json=[1], headers=headers)
    assert fields_of(array) == [{"field": "body", "message": "must be a JSON object"}]


async def test_validation_lists_every_offending_input(api: Api) -> None:
    _, key = await api.tenant()
    response = await api.client.post(
        "/api/v1/test/effects?colour=red",
        json={"colour": "red", "milestones": [{"ref": "a", "amount": "1"}, {"ref": "b"}]},
        headers=api.auth(key),
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "VALIDATION_ERROR"
    assert sorted(fields_of(response), key=lambda field: field["field"]) == [
        {"field": "colour", "message": "unknown field"},
        {"field": "header.Idempotency-Key", "message": "required"},
        {"field": "milestones[1].amount", "message": "required"},
        {"field": "note", "message": "required"},
        {"field": "query.colour", "message": "unknown parameter"},
    ]


async def test_query_parameters_are_checked(api: Api) -> None:
    response = await api.get("/api/v1/marketplaces", MASTER_KEY, limit="0", cursor="c_x")
    assert fields_of(response)[0] == {"field": "query.limit", "message": "must be 1..100"}
    words = await api.get("/api/v1/marketplaces", MASTER_KEY, limit="ten")
    assert fields_of(words)[0]["field"] == "query.limit"
    twice = await api.client.get(
        "/api/v1/marketplaces?limit=1&limit=2", headers=api.auth(MASTER_KEY)
    )
    assert fields_of(twice) == [{"field": "query.limit", "message": "must appear once"}]


async def test_amount_and_currency_errors_have_their_own_codes(api: Api) -> None:
    _, key = await api.tenant()
    cases = [
        ({"amount": 12.5}, "INVALID_AMOUNT_FORMAT", "amount"),
        ({"amount": "1.12345678"}, "INVALID_AMOUNT_FORMAT", "amount"),
        ({"amount": "-1"}, "INVALID_AMOUNT_FORMAT", "amount"),
        ({"amount": "922337203685.4775808"}, "INVALID_AMOUNT_FORMAT", "amount"),
        ({"milestones": [{"ref": "a", "amount": "1e3"}]}, "INVALID_AMOUNT_FORMAT", None),
        ({"amount": "0.00"}, "INVALID_AMOUNT", "amount"),
        ({"amount": "1", "currency": "EUR"}, "INVALID_CURRENCY", "currency"),
    ]
    for extra, code, field in cases:
        response = await api.post("/api/v1/test/effects", key, {"note": "n", **extra})
        assert response.status_code == 400, extra
        assert error_of(response)["code"] == code, extra
        if field is not None:
            assert [item["field"] for item in fields_of(response)] == [field]
    nested = await api.post(
        "/api/v1/test/effects", key, {"note": "n", "milestones": [{"ref": "a", "amount": 5}]}
    )
    assert [item["field"] for item in fields_of(nested)] == ["milestones[0].amount"]
    mixed = await api.post("/api/v1/test/effects", key, {"note": 1, "amount": 5})
    assert error_of(mixed)["code"] == "VALIDATION_ERROR"  # another field is invalid too
    assert len(fields_of(mixed)) == 2
    good = await api.post(
        "/api/v1/test/effects", key, {"note": "n", "amount": "120.50", "currency": None}
    )
    assert good.status_code == 201
    assert good.json()["amount_minor"] == 1_205_000_000


async def test_post_without_fields_takes_no_body_or_an_empty_object(api: Api) -> None:
    _, key = await api.tenant()
    headers = api.auth(key, **{"Idempotency-Key": str(uuid.uuid4())})
    assert (await api.client.post("/api/v1/test/no-body", headers=headers)).status_code == 200
    empty = await api.post("/api/v1/test/no-body", key, {})
    assert empty.status_code == 200
    extra = await api.post("/api/v1/test/no-body", key, {"x": 1})
    assert fields_of(extra) == [{"field": "x", "message": "unknown field"}]


async def test_unexpected_errors_are_500_without_details(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    _, key = await api.tenant()
    with caplog.at_level(logging.ERROR, logger="offerhub.api"):
        response = await api.get("/api/v1/test/boom", key)
    assert response.status_code == 500
    assert error_of(response) == {
        "code": "INTERNAL_ERROR",
        "message": "Internal error",
        "details": {},
    }
    assert "secret internals" not in response.text
    assert any(record.exc_info for record in caplog.records)
    assert response.headers["x-request-id"] in caplog.text


async def test_request_id_is_echoed_or_generated_on_every_response(api: Api) -> None:
    echoed = await api.client.get("/api/v1/health", headers={"X-Request-ID": "abc-123:x.y_z"})
    assert echoed.headers["x-request-id"] == "abc-123:x.y_z"
    for bad in ("has space", "x" * 129, "é".encode()):
        response = await api.client.get("/api/v1/nope", headers={"X-Request-ID": bad})
        generated = response.headers["x-request-id"]
        assert generated != bad
        assert uuid.UUID(generated).version == 4
    unauthorized = await api.client.get("/api/v1/auth/me", headers={"X-Request-ID": "r-1"})
    assert unauthorized.headers["x-request-id"] == "r-1"


def test_error_families_map_to_their_statuses() -> None:
    assert error_reply(InvalidTransition()).status_code == 409
    assert error_reply(ProviderRejected(provider="airtm", status_code=400)).status_code == 502
    unavailable = error_reply(ProviderUnavailable(provider="airtm", retry_after_s=2.5))
    assert unavailable.status_code == 503
    assert unavailable.headers == {"Retry-After": "3"}
    assert error_reply(ServiceUnavailable()).headers == {"Retry-After": "5"}
    assert error_reply(ProviderTimeout()).status_code == 504
    assert error_reply(ConcurrentUpdate()).status_code == 503
    invariant = error_reply(InvariantViolation("balance went negative", account="acc_1"))
    assert invariant.status_code == 500
    assert b"negative" not in invariant.body
    rejected = error_reply(ProviderRejected("no", provider="airtm", status_code=422, reason="r"))
    assert b'"provider":"airtm","provider_status":422,"provider_message":"r"' in rejected.body
