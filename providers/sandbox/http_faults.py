"""Injected faults applied to one HTTP call of a simulated service (shared by every gate).

Each simulated service renders errors its own way (Airtm's ``{code, message}``, Horizon's
problem JSON, Trustless Work's NestJS body) and words its failures its own way; what a fault
does to the call is the same everywhere, so it lives here once.
"""

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

from providers.sandbox.faults import Fault

__all__ = ["ASGIApp", "FaultReplies", "Message", "Receive", "Scope", "Send", "apply_http_fault"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# Sends one error response in the service's own shape: (send, status, message, retry_after_s).
ErrorSender = Callable[[Send, int, str, int | None], Awaitable[None]]


class FaultReplies(msgspec.Struct, frozen=True, kw_only=True):
    """How one service answers the faults that end a call."""

    send_error: ErrorSender
    hang_s: float
    before_apply_status: int
    before_apply_message: str
    response_lost_message: str


async def _discard(message: Message) -> None:
    """An ASGI ``send`` that drops the response, for ``applied_response_lost``."""


async def apply_http_fault(
    fault: Fault, app: ASGIApp, scope: Scope, receive: Receive, send: Send, *, replies: FaultReplies
) -> bool:
    """Apply ``fault`` to one call; return True when the response has already been sent.

    ``latency_ms`` and ``hang`` delay the call and let it proceed; ``status`` answers the
    injected status; ``fail_before_apply`` answers an error without touching the state;
    ``applied_response_lost`` runs the call (the change happens) and then answers a 504, so
    the caller cannot tell that it did. Other kinds are not about HTTP calls and do nothing.
    """
    if fault.kind == "latency_ms":
        await asyncio.sleep(fault.latency_ms / 1000)
        return False
    if fault.kind == "hang":
        await asyncio.sleep(replies.hang_s)
        return False
    if fault.kind == "status":
        message = f"injected HTTP {fault.status_code}"
        await replies.send_error(send, fault.status_code, message, fault.retry_after_s)
        return True
    if fault.kind == "fail_before_apply":
        status, message = replies.before_apply_status, replies.before_apply_message
        await replies.send_error(send, status, message, None)
        return True
    if fault.kind == "applied_response_lost":
        await app(scope, receive, _discard)
        await replies.send_error(send, 504, replies.response_lost_message, None)
        return True
    return False
