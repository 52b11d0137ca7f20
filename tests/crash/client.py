"""A client that outlives the server: it retries a request with its Idempotency-Key until answered.

Every POST carries a key the caller chose and remembers. A transport failure (the server was
killed, or is still starting) or a 409 ``IDEMPOTENCY_KEY_IN_PROGRESS`` (the dead incarnation's
claim has not expired yet) sends the same request again with the same key. Answers are written
to a :class:`Journal`, so the test can later prove each one is reflected and replays unchanged.
"""

import asyncio
import dataclasses
from typing import Any, Final

import httpx

__all__ = ["Answer", "Journal", "ResilientClient"]

V1: Final = "/api/v1"
_RETRY_PAUSE_S: Final = 0.2


@dataclasses.dataclass(frozen=True)
class Answer:
    """The answer a POST finally got, and how many attempts lost theirs first."""

    key: str
    path: str
    body: Any
    status: int
    content: bytes
    # Attempts sent whose answer never came (the server died with the request in flight).
    lost: int
    # Attempts refused at connect (the server was down) or told the key was in progress.
    refused: int

    def json(self) -> Any:
        """The answer's JSON body."""
        return httpx.Response(self.status, content=self.content).json()


@dataclasses.dataclass
class Journal:
    """Every acknowledged POST, and the failures seen on the way."""

    answers: list[Answer] = dataclasses.field(default_factory=list)
    server_errors: list[str] = dataclasses.field(default_factory=list)

    @property
    def acknowledged(self) -> list[Answer]:
        """The POSTs answered 2xx."""
        return [answer for answer in self.answers if 200 <= answer.status < 300]

    @property
    def lost_then_answered(self) -> list[Answer]:
        """The POSTs whose first answers died with the server and that a retry completed."""
        return [answer for answer in self.answers if answer.lost]


def _in_progress(response: httpx.Response) -> bool:
    if response.status_code != 409:
        return False
    error = response.json().get("error", {})
    return bool(error.get("code") == "IDEMPOTENCY_KEY_IN_PROGRESS")


class ResilientClient:
    """POSTs and GETs under ``/api/v1`` that retry across server deaths, up to a deadline."""

    def __init__(
        self, http: httpx.AsyncClient, api_key: str, journal: Journal, *, patience_s: float = 90.0
    ) -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self.journal = journal
        self._patience_s = patience_s

    async def post(self, path: str, body: Any, key: str) -> Answer:
        """POST ``body`` with Idempotency-Key ``key`` until an answer other than "retry" comes."""
        headers = {**self._headers, "Idempotency-Key": key}
        lost = refused = 0
        deadline = asyncio.get_running_loop().time() + self._patience_s
        while True:
            try:
                response = await self._http.post(V1 + path, json=body, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                refused += 1
            except httpx.TransportError:
                lost += 1
            else:
                if _in_progress(response):
                    refused += 1
                elif response.status_code >= 500:
                    self.journal.server_errors.append(f"POST {path}: {response.text}")
                else:
                    answer = Answer(
                        key, path, body, response.status_code, response.content, lost, refused
                    )
                    self.journal.answers.append(answer)
                    return answer
            assert asyncio.get_running_loop().time() < deadline, f"POST {path} ({key}) unanswered"
            await asyncio.sleep(_RETRY_PAUSE_S)

    async def replay(self, answer: Answer) -> httpx.Response:
        """Send an answered POST again, once, with its key (the server is up)."""
        headers = {**self._headers, "Idempotency-Key": answer.key}
        return await self._http.post(V1 + answer.path, json=answer.body, headers=headers)

    async def get(self, path: str, **params: Any) -> Any:
        """GET until the server answers 200; the JSON body."""
        deadline = asyncio.get_running_loop().time() + self._patience_s
        while True:
            try:
                response = await self._http.get(V1 + path, params=params, headers=self._headers)
            except httpx.TransportError:
                pass
            else:
                if response.status_code == 200:
                    return response.json()
                if response.status_code < 500:
                    raise AssertionError(f"GET {path}: {response.status_code} {response.text}")
                self.journal.server_errors.append(f"GET {path}: {response.text}")
            assert asyncio.get_running_loop().time() < deadline, f"GET {path} unanswered"
            await asyncio.sleep(_RETRY_PAUSE_S)
