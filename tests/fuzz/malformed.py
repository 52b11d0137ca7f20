"""Helpers of the malformed-input tests: the endpoints, raw requests, the refusal checks.

An :class:`Endpoint` is a POST route with a valid body; :func:`refused` sends a broken variant
and checks the standard error shape and that no table changed (no test here).
"""

import json
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

import httpx

from tests.fuzz.support import MASTER_KEY, Seeded

V1 = "/api/v1"
TABLES = (
    "marketplaces",
    "api_keys",
    "users",
    "wallets",
    "orders",
    "milestones",
    "disputes",
    "topups",
    "withdrawals",
    "operations",
    "ledger_accounts",
    "ledger_transfers",
    "ledger_entries",
    "events",
    "webhook_endpoints",
)
MiB = 1024 * 1024


class Endpoint(NamedTuple):
    """A POST endpoint, a valid body for it, and the fields the cases break."""

    name: str
    path: Callable[[Seeded], str]
    body: Callable[[Seeded], dict[str, Any]]
    text_field: str  # a required string field
    amount: bool = False
    master: bool = False


ENDPOINTS = [
    Endpoint(
        "users",
        lambda s: "/users",
        lambda s: {"external_user_id": f"fuzz-{uuid.uuid4().hex[:8]}", "metadata": {"a": 1}},
        "external_user_id",
    ),
    Endpoint(
        "orders",
        lambda s: "/orders",
        lambda s: {
            "buyer_id": s.ids["user_id"][0],
            "seller_id": s.ids["user_id"][1],
            "amount": "10",
            "title": "Logo",
        },
        "title",
        amount=True,
    ),
    Endpoint(
        "reserve",
        lambda s: f"/orders/{s.ids['order_id'][0]}/reserve",  # created, not reserved: 80
        lambda s: {"amount": "80"},
        "amount",
        amount=True,
    ),
    Endpoint(
        "topups",
        lambda s: "/topups",
        lambda s: {"user_id": s.ids["user_id"][0], "amount": "25"},
        "user_id",
        amount=True,
    ),
    Endpoint(
        "withdrawals",
        lambda s: "/withdrawals",
        lambda s: {
            "user_id": s.ids["user_id"][0],
            "amount": "1",
            "destination_type": "crypto",
            "destination_ref": s.ids["stellar_address"][0],
        },
        "user_id",
        amount=True,
    ),
    Endpoint(
        "adjustments",
        lambda s: f"/users/{s.ids['user_id'][1]}/balance/adjustments",
        lambda s: {
            "direction": "CREDIT",
            "amount": "1",
            "reason": "goodwill",
            "counter_account": "fees:platform",
        },
        "reason",
        amount=True,
    ),
    Endpoint(
        "keys",
        lambda s: "/auth/api-keys",
        lambda s: {
            "name": "fuzz",
            "scopes": ["read"],
            "marketplace_id": s.ids["marketplace_id"][0],
        },
        "name",
        master=True,
    ),
    Endpoint(
        "webhook_endpoints",
        lambda s: "/webhook-endpoints",
        lambda s: {"url": "https://hooks.example/fuzz"},
        "url",
    ),
]
BY_NAME = {endpoint.name: endpoint for endpoint in ENDPOINTS}
WITH_AMOUNT = [endpoint for endpoint in ENDPOINTS if endpoint.amount]


async def row_counts(seeded: Seeded) -> dict[str, int]:
    """Rows of every watched table."""
    counts = {}
    for table in TABLES:
        counts[table] = int(await seeded.market.pool.fetchval(f"SELECT count(*) FROM {table}"))
    return counts


async def idempotency_records(seeded: Seeded) -> int:
    """Stored idempotency records (api.md 1.8: never for 400, 413, 415)."""
    return int(await seeded.market.pool.fetchval("SELECT count(*) FROM idempotency_keys"))


def key_for(endpoint: Endpoint, seeded: Seeded) -> str:
    """The master key where the endpoint needs it, else the marketplace's all-scope key."""
    return MASTER_KEY if endpoint.master else seeded.key


async def send(
    seeded: Seeded,
    method: str,
    path: str,
    *,
    key: str,
    content: bytes | None = None,
    headers: dict[str, str | bytes] | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    """One raw request: the bytes as given, a fresh Idempotency-Key on POST unless given."""
    sent: dict[str, str | bytes] = {"Authorization": f"Bearer {key}"}
    if method == "POST":
        sent["Idempotency-Key"] = str(uuid.uuid4())
        if content is not None:
            sent["Content-Type"] = "application/json"
    sent.update(headers or {})
    client = seeded.market.api.client
    return await client.request(method, V1 + path, content=content, headers=sent, params=params)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The standard error shape with ``status`` and ``code``; its ``details``."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["details"], dict)
    return dict(error["details"])


def field_names(details: dict[str, Any]) -> list[str]:
    """The fields a validation error names."""
    return [field["field"] for field in details["fields"]]


async def refused(
    seeded: Seeded,
    endpoint: Endpoint,
    content: bytes | None,
    status: int,
    code: str,
    *,
    headers: dict[str, str | bytes] | None = None,
) -> dict[str, Any]:
    """POST ``content`` to ``endpoint``: refused as expected, and nothing written."""
    before, records = await row_counts(seeded), await idempotency_records(seeded)
    response = await send(
        seeded,
        "POST",
        endpoint.path(seeded),
        key=key_for(endpoint, seeded),
        content=content,
        headers=headers,
    )
    details = assert_error(response, status, code)
    assert await row_counts(seeded) == before
    assert await idempotency_records(seeded) == records  # 400, 413, 415: never stored
    return details


def encode(value: Any) -> bytes:
    """JSON text of ``value``, non-ASCII kept as UTF-8."""
    return json.dumps(value, ensure_ascii=False).encode()


def with_fields(body: dict[str, Any], **fields: Any) -> bytes:
    """JSON text of ``body`` with ``fields`` set."""
    return encode({**body, **fields})


def nested(depth: int) -> Any:
    """``depth`` lists, one inside the other."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def raw_field(body: dict[str, Any], field: str, raw: bytes) -> bytes:
    """``body`` with ``field`` (first) set to the raw JSON text ``raw``."""
    rest = encode({k: v for k, v in body.items() if k != field})
    return b'{"' + field.encode() + b'": ' + raw + (b", " + rest[1:] if len(rest) > 2 else b"}")


# Cyrillic and Armenian letters drawn like the Latin ones of the id prefixes.
HOMOGLYPHS = {"o": "\u043e", "u": "\u057d", "d": "\u0501", "w": "\u051d", "p": "\u0440"}


def homoglyph(real: str) -> str:
    """``real`` with its first letter that has a look-alike replaced by it."""
    index = next(i for i, char in enumerate(real) if char in HOMOGLYPHS)
    return real[:index] + HOMOGLYPHS[real[index]] + real[index + 1 :]


def id_tricks(real: str) -> list[tuple[str, str]]:
    """``(label, path segment as sent)``: ids that look like ``real`` or break paths."""
    return [
        ("zero-width space", real + "\u200b"),
        ("RTL override", "\u202e" + real),
        ("homoglyph", homoglyph(real)),
        ("combining accent", real + "\u0301"),
        ("full-width", real[:-1] + chr(0xFF10 + 1)),
        ("upper case", real.upper()),
        ("emoji", real[:4] + "\U0001f600"),
        ("overlong", real + "x" * 10_000),
        ("invalid UTF-8", "%ff%fe"),
        ("dot dot", "%2e%2e"),
        ("percent-encoded slash", real + "%2Fx"),
    ]
