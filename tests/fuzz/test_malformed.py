"""Malformed and hostile input: a 4xx in the standard error shape, naming the field, no change.

Each case sends one bad request over real HTTP to the app served on the sandbox, to a
representative endpoint (users, orders, reserve, top-ups, withdrawals, adjustments, API keys,
webhook endpoints) whose body is otherwise valid: the answer must be the expected 4xx with
``{"error": {"code", "message", "details"}}`` (api.md 1.3), validation errors must name the
offending field in ``details.fields``, and no table may gain or lose a row (idempotency records
only for the 404s api.md 1.8 stores). The last test proves the untouched bodies are accepted, so
each refusal is due to the one thing broken.
"""

from collections.abc import Callable
from typing import Any

import pytest

from api.body_shape import MAX_DEPTH
from tests.fuzz.malformed import (
    BY_NAME,
    ENDPOINTS,
    WITH_AMOUNT,
    Endpoint,
    MiB,
    assert_error,
    encode,
    field_names,
    id_tricks,
    key_for,
    nested,
    raw_field,
    refused,
    row_counts,
    send,
    with_fields,
)
from tests.fuzz.support import Seeded

pytestmark = [pytest.mark.db, pytest.mark.slow]

# (case, body builder(body, endpoint), status, code, named field or None)
BodyCase = tuple[str, Callable[[dict[str, Any], Endpoint], bytes], int, str, str | None]
BODY_CASES: list[BodyCase] = [
    (
        "10 MB",
        lambda b, e: with_fields(b, padding="x" * (10 * MiB)),
        413,
        "PAYLOAD_TOO_LARGE",
        None,
    ),
    (
        "100k levels",
        lambda b, e: b'{"nest": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        400,
        "VALIDATION_ERROR",
        "body",
    ),
    ("100 levels", lambda b, e: with_fields(b, nest=nested(100)), 400, "VALIDATION_ERROR", "nest*"),
    (
        "invalid UTF-8",
        lambda b, e: raw_field(b, e.text_field, b'"\xff\xfeab"'),
        400,
        "VALIDATION_ERROR",
        "body",
    ),
    (
        "overlong UTF-8",
        lambda b, e: raw_field(b, e.text_field, b'"\xc0\xaf"'),
        400,
        "VALIDATION_ERROR",
        "body",
    ),
    (
        "lone surrogate",
        lambda b, e: raw_field(b, e.text_field, b'"a\\ud800b"'),
        400,
        "VALIDATION_ERROR",
        "body",
    ),
    (
        "NUL",
        lambda b, e: with_fields(b, **{e.text_field: "a\u0000b"}),
        400,
        "VALIDATION_ERROR",
        "text",
    ),
    (
        "NUL in a key",
        lambda b, e: with_fields(b, **{"a\u0000": 1}),
        400,
        "VALIDATION_ERROR",
        "a\u0000",
    ),
    (
        "duplicate key",
        lambda b, e: raw_field(
            b, e.text_field, b'"x", "' + e.text_field.encode() + b'": ' + encode(b[e.text_field])
        ),
        400,
        "VALIDATION_ERROR",
        "text",
    ),
    ("NaN", lambda b, e: raw_field(b, "x", b"NaN"), 400, "VALIDATION_ERROR", "body"),
    ("Infinity", lambda b, e: raw_field(b, "x", b"-Infinity"), 400, "VALIDATION_ERROR", "body"),
    ("1e309", lambda b, e: raw_field(b, "x", b"1e309"), 400, "VALIDATION_ERROR", "body"),
    ("BOM", lambda b, e: b"\xef\xbb\xbf" + encode(b), 400, "VALIDATION_ERROR", "body"),
    ("truncated", lambda b, e: encode(b)[:-1], 400, "VALIDATION_ERROR", "body"),
    ("trailing data", lambda b, e: encode(b) + b"}", 400, "VALIDATION_ERROR", "body"),
    ("two documents", lambda b, e: encode(b) + b" " + encode(b), 400, "VALIDATION_ERROR", "body"),
    ("null", lambda b, e: b"null", 400, "VALIDATION_ERROR", "body"),
    ("array", lambda b, e: encode([b]), 400, "VALIDATION_ERROR", "body"),
    ("string", lambda b, e: b'"{}"', 400, "VALIDATION_ERROR", "body"),
    ("number", lambda b, e: b"-0", 400, "VALIDATION_ERROR", "body"),
    # A number where a string belongs (an amount's own code, api.md 1.6).
    ("wrong type", lambda b, e: with_fields(b, **{e.text_field: 12}), 400, "TYPE", "text"),
    ("unknown field", lambda b, e: with_fields(b, colour="red"), 400, "VALIDATION_ERROR", "colour"),
]


def _named(details: dict[str, Any], expected: str, endpoint: Endpoint) -> bool:
    """Whether ``details.fields`` names ``expected`` ("text": the endpoint's text field;
    "x*": a field under x)."""
    fields = field_names(details)
    if expected == "text":
        return endpoint.text_field in fields
    if expected.endswith("*"):
        return any(field.startswith(expected[:-1]) for field in fields)
    return expected in fields


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda endpoint: endpoint.name)
@pytest.mark.parametrize(
    ("build", "status", "code", "field"),
    [case[1:] for case in BODY_CASES],
    ids=[case[0] for case in BODY_CASES],
)
async def test_malformed_bodies_are_refused_naming_the_field(
    seeded: Seeded,
    endpoint: Endpoint,
    build: Callable[[dict[str, Any], Endpoint], bytes],
    status: int,
    code: str,
    field: str | None,
) -> None:
    content = build(endpoint.body(seeded), endpoint)
    if code == "TYPE":
        code = "INVALID_AMOUNT_FORMAT" if endpoint.text_field == "amount" else "VALIDATION_ERROR"
    details = await refused(seeded, endpoint, content, status, code)
    if field is not None:
        assert _named(details, field, endpoint), details


async def test_metadata_deeper_than_the_limit_is_refused_and_up_to_it_accepted(
    seeded: Seeded,
) -> None:
    """940 levels once passed the decoder and failed later (500); the limit is 64 levels."""
    users = BY_NAME["users"]
    for lists in (64, 940):  # metadata.a holds the lists: the innermost is at depth lists + 1
        body = with_fields(users.body(seeded), metadata={"a": nested(lists)})
        details = await refused(seeded, users, body, 400, "VALIDATION_ERROR")
        [field] = field_names(details)
        assert field.startswith("metadata.a[0]"), field
    body = with_fields(users.body(seeded), metadata={"a": nested(MAX_DEPTH - 1)})
    response = await send(seeded, "POST", "/users", key=seeded.key, content=body)
    assert response.status_code == 201, response.text


MEDIA_TYPES = [
    "text/plain",
    "application/json; charset=latin-1",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/jsonp",
    "",
]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda endpoint: endpoint.name)
@pytest.mark.parametrize("media_type", MEDIA_TYPES, ids=lambda value: value or "none")
async def test_a_body_not_sent_as_json_is_415(
    seeded: Seeded, endpoint: Endpoint, media_type: str
) -> None:
    headers = {"Content-Type": media_type}
    await refused(
        seeded,
        endpoint,
        encode(endpoint.body(seeded)),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        headers=headers,
    )


# A reserve body is optional (its one field too): an empty one is a valid request.
@pytest.mark.parametrize(
    "endpoint", [e for e in ENDPOINTS if e.name != "reserve"], ids=lambda endpoint: endpoint.name
)
async def test_an_empty_body_names_the_required_fields(seeded: Seeded, endpoint: Endpoint) -> None:
    for content in (b"", b"{}"):
        details = await refused(seeded, endpoint, content, 400, "VALIDATION_ERROR")
        assert {"field": endpoint.text_field, "message": "required"} in details["fields"]


IDEMPOTENCY_KEYS = [
    ("8 KiB", "k" * 8192),
    ("256 chars", "k" * 256),
    ("empty", ""),
    ("latin-1", "clé"),
    ("tab", "a\tb"),
    ("DEL", "a\x7fb"),
]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda endpoint: endpoint.name)
@pytest.mark.parametrize(("label", "key"), IDEMPOTENCY_KEYS, ids=[k[0] for k in IDEMPOTENCY_KEYS])
async def test_a_bad_idempotency_key_is_refused_naming_the_header(
    seeded: Seeded, endpoint: Endpoint, label: str, key: str
) -> None:
    details = await refused(
        seeded,
        endpoint,
        encode(endpoint.body(seeded)),
        400,
        "VALIDATION_ERROR",
        headers={"Idempotency-Key": key.encode("latin-1")},
    )
    assert field_names(details) == ["header.Idempotency-Key"], label


# Breaches of the amount rule (api.md 1.6): 400 INVALID_AMOUNT_FORMAT naming the field.
BAD_AMOUNTS: list[Any] = [
    "-0",
    "-0.00",
    "-1",
    "1e309",
    "1e5",
    "1E2",
    "0.00000001",
    "12.12345678",
    " 1",
    "1 ",
    "+1",
    "1_000",
    "1,5",
    "1.5.5",
    "٠١٢",  # Arabic-Indic digits
    "１２",  # full-width digits
    "0x10",
    ".5",
    "1.",
    "00.5",
    "01",
    "1000000000000",
    "922337203685.4775808",
    "NaN",
    "Infinity",
    "-Infinity",
    "",
    "1\u200b",
    12.5,
    10,
    -0.0,
    1e308,
    True,
    {},
    [],
]
ZERO_AMOUNTS = ["0", "0.0", "0.0000000"]


@pytest.mark.parametrize("endpoint", WITH_AMOUNT, ids=lambda endpoint: endpoint.name)
@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
async def test_a_malformed_amount_is_refused_naming_it(
    seeded: Seeded, endpoint: Endpoint, amount: Any
) -> None:
    body = with_fields(endpoint.body(seeded), amount=amount)
    details = await refused(seeded, endpoint, body, 400, "INVALID_AMOUNT_FORMAT")
    assert field_names(details) == ["amount"], details


@pytest.mark.parametrize("endpoint", WITH_AMOUNT, ids=lambda endpoint: endpoint.name)
@pytest.mark.parametrize("amount", ZERO_AMOUNTS)
async def test_a_zero_amount_is_invalid_amount(
    seeded: Seeded, endpoint: Endpoint, amount: str
) -> None:
    body = with_fields(endpoint.body(seeded), amount=amount)
    details = await refused(seeded, endpoint, body, 400, "INVALID_AMOUNT")
    assert field_names(details) == ["amount"], details


# (resource path template, its code when the id is unknown)
RESOURCES = [
    ("/orders/{}", "order_id", "ORDER_NOT_FOUND"),
    ("/users/{}", "user_id", "USER_NOT_FOUND"),
    ("/topups/{}", "topup_id", "TOPUP_NOT_FOUND"),
    ("/withdrawals/{}", "withdrawal_id", "WITHDRAWAL_NOT_FOUND"),
    ("/disputes/{}", "dispute_id", "DISPUTE_NOT_FOUND"),
]


@pytest.mark.parametrize(("template", "kind", "code"), RESOURCES, ids=[r[1] for r in RESOURCES])
async def test_unicode_tricks_in_path_ids_are_not_found(
    seeded: Seeded, template: str, kind: str, code: str
) -> None:
    real = seeded.ids[kind][0]
    assert (await send(seeded, "GET", template.format(real), key=seeded.key)).status_code == 200
    for label, segment in id_tricks(real):
        response = await send(seeded, "GET", template.format(segment), key=seeded.key)
        expected = "NOT_FOUND" if label == "percent-encoded slash" else code
        assert_error(response, 404, expected)


@pytest.mark.parametrize("segment", ["%00", "ord_%00x", "x%00"])
async def test_a_nul_in_a_path_id_is_refused_naming_the_parameter(
    seeded: Seeded, segment: str
) -> None:
    for method, path in [("GET", "/orders/{}"), ("POST", "/orders/{}/reserve")]:
        before = await row_counts(seeded)
        content = b"{}" if method == "POST" else None
        response = await send(seeded, method, path.format(segment), key=seeded.key, content=content)
        details = assert_error(response, 400, "VALIDATION_ERROR")
        assert field_names(details) == ["path.order_id"]
        assert await row_counts(seeded) == before


async def test_unicode_tricks_in_action_ids_and_body_ids_change_nothing(seeded: Seeded) -> None:
    """Reserve a look-alike order; create an order for look-alike users: 404, nothing else."""
    real_order = seeded.ids["order_id"][0]
    for label, segment in id_tricks(real_order):
        before = await row_counts(seeded)
        response = await send(
            seeded, "POST", f"/orders/{segment}/reserve", key=seeded.key, content=b"{}"
        )
        expected = "NOT_FOUND" if label == "percent-encoded slash" else "ORDER_NOT_FOUND"
        assert_error(response, 404, expected)
        assert await row_counts(seeded) == before, label
    orders = BY_NAME["orders"]
    buyer = seeded.ids["user_id"][0]
    for label, look_alike in id_tricks(buyer):
        if "%" in look_alike:
            continue  # percent-encoding means nothing in a JSON string
        body = with_fields(orders.body(seeded), buyer_id=look_alike)
        before = await row_counts(seeded)
        response = await send(seeded, "POST", "/orders", key=seeded.key, content=body)
        if label == "overlong":  # past the 255 characters of an id field
            assert field_names(assert_error(response, 400, "VALIDATION_ERROR")) == ["buyer_id"]
        else:
            assert assert_error(response, 404, "USER_NOT_FOUND")["field"] == "buyer_id", label
        assert await row_counts(seeded) == before, label


QUERIES = [
    ("limit", "1e309"),
    ("limit", "-0"),
    ("limit", "NaN"),
    ("limit", "\u0661"),  # Arabic-Indic one
    ("limit", "0"),
    ("limit", "101"),
    ("limit", ""),
    ("cursor", "c_garbage"),
    ("cursor", "\x00"),
    ("created_after", "2026-01-01"),
    ("created_after", "2026-01-01T00:00:00"),
    ("created_after", "\x00"),
    ("status", "FUNDS_RESERVED\u200b"),
    ("buyer_id", "usr_\x00"),
]


@pytest.mark.parametrize(("name", "value"), QUERIES, ids=[f"{n}={v!r}" for n, v in QUERIES])
async def test_malformed_query_parameters_are_refused_naming_them(
    seeded: Seeded, name: str, value: str
) -> None:
    response = await send(seeded, "GET", "/orders", key=seeded.key, params={name: value})
    details = assert_error(response, 400, "VALIDATION_ERROR")
    assert field_names(details) == [f"query.{name}"], details


AUTHORIZATIONS = [
    ("zero-width after the key", lambda key: b"Bearer " + key + b"\xe2\x80\x8b", "INVALID_API_KEY"),
    ("RTL override before", lambda key: b"Bearer \xe2\x80\xae" + key, "INVALID_API_KEY"),
    ("NUL inside", lambda key: b"Bearer " + key[:10] + b"%00" + key[10:], "INVALID_API_KEY"),
    ("latin-1 byte", lambda key: b"Bearer " + key + b"\xe9", "INVALID_API_KEY"),
    ("overlong", lambda key: b"Bearer " + key * 200, "INVALID_API_KEY"),
    ("no scheme", lambda key: key, "UNAUTHORIZED"),
    ("Basic", lambda key: b"Basic " + key, "UNAUTHORIZED"),
]


@pytest.mark.parametrize(
    ("build", "code"), [a[1:] for a in AUTHORIZATIONS], ids=[a[0] for a in AUTHORIZATIONS]
)
async def test_tricked_credentials_are_401_and_change_nothing(
    seeded: Seeded, build: Callable[[bytes], bytes], code: str
) -> None:
    header = build(seeded.key.encode())
    before = await row_counts(seeded)
    for method, path, content in [
        ("GET", "/orders", None),
        ("POST", "/users", b'{"external_user_id": "x"}'),
    ]:
        response = await send(
            seeded, method, path, key="", content=content, headers={"Authorization": header}
        )
        assert_error(response, 401, code)
    assert await row_counts(seeded) == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda endpoint: endpoint.name)
async def test_the_untouched_bodies_are_accepted(seeded: Seeded, endpoint: Endpoint) -> None:
    """The control: each endpoint's base body succeeds, so every refusal above is the case's."""
    response = await send(
        seeded,
        "POST",
        endpoint.path(seeded),
        key=key_for(endpoint, seeded),
        content=encode(endpoint.body(seeded)),
    )
    assert response.status_code in (200, 201, 202), response.text
