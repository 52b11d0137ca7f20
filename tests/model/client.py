"""A sync HTTP client of the live API and the sandbox's control routes, and bounded waits.

Every POST is recorded as a :class:`Sent` (path, body, Idempotency-Key and the answer), so a
rule can send it again with the same key and expect the stored answer back. Waits poll a
resource until a predicate holds, with a deadline: the model never sleeps blindly.
"""

import time
import uuid
from collections.abc import Callable
from typing import Any, Final, TypeVar

import httpx
import msgspec

from tests.api.support import MASTER_KEY

__all__ = ["PROVIDER_CODES", "Client", "Sent", "error_code", "wait_until"]

T = TypeVar("T")

# Error codes a provider fault may surface, all 502/503/504 (api.md 2): a retry with the same
# Idempotency-Key is safe and runs again, since 5xx answers are not stored (api.md 1.8).
PROVIDER_CODES: Final = frozenset(
    {
        "PROVIDER_ERROR",
        "PROVIDER_RATE_LIMITED",
        "STELLAR_NETWORK_ERROR",
        "PROVIDER_UNAVAILABLE",
        "PROVIDER_TIMEOUT",
    }
)
_POLL_S: Final = 0.05


class Sent(msgspec.Struct, kw_only=True):
    """One POST and the answer it got."""

    path: str
    body: Any
    key: str
    status: int
    answer: Any
    replayed: bool


def error_code(response: httpx.Response) -> str | None:
    """The ``error.code`` of an error answer, else ``None``."""
    if response.status_code < 400:
        return None
    return str(response.json()["error"]["code"])


def wait_until(read: Callable[[], T], done: Callable[[T], bool], timeout_s: float, what: str) -> T:
    """Poll ``read()`` until ``done`` holds for its value; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}: last {value!r}"
        time.sleep(_POLL_S)


class Client:
    """One marketplace's all-scope key on the live API, plus the sandbox control routes."""

    def __init__(self, api_url: str, control_url: str) -> None:
        self.http = httpx.Client(timeout=60.0)
        self.api_url = api_url
        self.control_url = control_url
        self.key = ""
        self.marketplace_id = ""

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def new_marketplace(self) -> str:
        """Create a marketplace (5 % platform fee) and an all-scope key; use them from now on."""
        name = f"model-{uuid.uuid4().hex[:12]}"
        created = self.post("/marketplaces", {"name": name}, key=MASTER_KEY)
        assert created.status_code == 201, created.text
        self.marketplace_id = str(created.json()["id"])
        body = {"name": "model", "scopes": ["*"], "marketplace_id": self.marketplace_id}
        issued = self.post("/auth/api-keys", body, key=MASTER_KEY)
        assert issued.status_code == 201, issued.text
        self.key = str(issued.json()["key"])
        return self.marketplace_id

    def _headers(self, key: str | None, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def post(
        self, path: str, body: Any = None, *, key: str | None = None, idem: str | None = None
    ) -> httpx.Response:
        """POST JSON under ``/api/v1`` with ``idem`` (a fresh Idempotency-Key by default)."""
        headers = self._headers(key, idem or str(uuid.uuid4()))
        return self.http.post(self.api_url + path, json=body, headers=headers)

    def send(self, path: str, body: Any = None, *, idem: str | None = None) -> Sent:
        """POST and record it, for a replay later."""
        key = idem or str(uuid.uuid4())
        response = self.post(path, body, idem=key)
        assert response.status_code != 500, f"POST {path}: {response.text}"
        return Sent(
            path=path,
            body=body,
            key=key,
            status=response.status_code,
            answer=response.json() if response.content else None,
            replayed=response.headers.get("idempotency-replayed") == "true",
        )

    def get(self, path: str, **params: Any) -> Any:
        """GET under ``/api/v1``; must answer 200; the decoded body."""
        response = self.http.get(self.api_url + path, params=params, headers=self._headers(None))
        assert response.status_code == 200, f"GET {path}: {response.text}"
        return response.json()

    def listing(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a list route (following cursors)."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {**params, "limit": 100, **({"cursor": cursor} if cursor else {})}
            page = self.get(path, **query)
            items.extend(page["data"])
            cursor = page["pagination"]["next_cursor"]
            if cursor is None:
                return items

    def control(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """Call a sandbox control route."""
        return self.http.request(method, self.control_url + path, json=body)

    def usdc(self, address: str) -> str | None:
        """The USDC an account holds on the sandbox chain (``None``: no trustline)."""
        response = self.control("GET", f"/accounts/{address}")
        assert response.status_code == 200, response.text
        value = response.json()["usdc"]
        return None if value is None else str(value)
