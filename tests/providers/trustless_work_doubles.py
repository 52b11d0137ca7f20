"""Test doubles shared by the Trustless Work client tests: a recording MockTransport handler."""

import json
from decimal import Decimal

import httpx

Reply = tuple[int, bytes, dict[str, str]]


def json_reply(status: int, body: object, headers: dict[str, str] | None = None) -> Reply:
    return status, json.dumps(body).encode(), headers or {}


class Recorder:
    """A MockTransport handler that answers from a queue and records every request."""

    def __init__(self, *replies: Reply | Exception) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        status, content, headers = reply
        return httpx.Response(status, content=content, headers=headers)

    def body(self, index: int = 0) -> dict[str, object]:
        # parse_float=Decimal keeps the literal digits: this is what TW's JSON parser sees.
        decoded: dict[str, object] = json.loads(self.requests[index].content, parse_float=Decimal)
        return decoded
