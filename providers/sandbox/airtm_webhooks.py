"""The simulated Airtm webhook sender: Svix-signed POSTs of the state's outbox, on the clock.

Delivery is pumped explicitly (``await sender.deliver_due(http)``) so tests decide when it
happens. Each message is tried at once, then retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h
and 10 h (Airtm's schedule); the endpoint is disabled after 5 days of uninterrupted failures.
A 2xx answer is a delivery. Webhook faults are matched with method ``"WEBHOOK"`` and the event
type as the path: ``duplicate_webhook``, ``reorder_webhooks`` (swap with the next due message),
``bad_signature`` and ``stale_timestamp``.
"""

from collections.abc import Sequence
from typing import Final

import httpx
import msgspec

from providers.airtm.webhooks import signature_headers
from providers.sandbox.airtm_records import OutboxMessage
from providers.sandbox.airtm_state import DAY_S, AirtmState
from providers.sandbox.faults import Fault, FaultRules

__all__ = ["DISABLE_AFTER_S", "RETRY_DELAYS_S", "AirtmWebhookSender", "DeliveryAttempt"]

RETRY_DELAYS_S: Final = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
DISABLE_AFTER_S: Final = 5 * DAY_S
_STALE_BY_S: Final = 3600
# A valid secret that is not the configured one, for the bad_signature fault.
_WRONG_SECRET: Final = "whsec_c2FuZGJveC13cm9uZy1zZWNyZXQtZm9yLWZhdWx0cw=="  # noqa: S105


class DeliveryAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """One POST to the endpoint; ``status_code`` is ``None`` when no answer came back."""

    message_id: str
    type: str
    at_s: int
    attempt: int
    status_code: int | None
    fault: str | None = None
    error: str | None = None


class _Delivery(msgspec.Struct, kw_only=True):
    message: OutboxMessage
    next_at_s: float
    attempts: int = 0
    is_delivered: bool = False
    is_exhausted: bool = False


class AirtmWebhookSender:
    """Delivers ``state.outbox`` to one endpoint, signed with the configured secrets."""

    def __init__(
        self,
        state: AirtmState,
        faults: FaultRules,
        *,
        url: str,
        secrets: Sequence[str],
    ) -> None:
        assert not isinstance(secrets, str), "pass a sequence of secrets"
        self._state = state
        self._faults = faults
        self._url = url
        self._secrets = tuple(secrets)
        self._deliveries: list[_Delivery] = []
        self._outbox_read = 0
        self._failing_since_s: float | None = None
        self.is_disabled = False
        self.attempts: list[DeliveryAttempt] = []

    def undelivered(self) -> tuple[OutboxMessage, ...]:
        """Messages neither delivered nor given up, oldest first."""
        self._collect()
        return tuple(d.message for d in self._deliveries if not (d.is_delivered or d.is_exhausted))

    def next_due_s(self) -> float | None:
        """When the next attempt is due (sandbox time), or ``None`` if nothing is waiting."""
        self._collect()
        waiting = [d.next_at_s for d in self._deliveries if not (d.is_delivered or d.is_exhausted)]
        return min(waiting, default=None)

    async def deliver_due(self, http: httpx.AsyncClient) -> list[DeliveryAttempt]:
        """POST every message due by now on the sandbox clock; return this pump's attempts."""
        self._state.expire_due()  # expiry creates webhooks too
        self._collect()
        if self.is_disabled:
            return []
        now_s = self._state.clock.now()
        due = [
            d
            for d in self._deliveries
            if not (d.is_delivered or d.is_exhausted) and d.next_at_s <= now_s
        ]
        due.sort(key=lambda d: d.next_at_s)  # stable: equal times keep outbox order
        made: list[DeliveryAttempt] = []
        for delivery, fault in self._plan(due):
            made.extend(await self._attempt(http, delivery, fault))
        self.attempts.extend(made)
        return made

    def _collect(self) -> None:
        for message in self._state.outbox[self._outbox_read :]:
            self._deliveries.append(_Delivery(message=message, next_at_s=message.created_at_s))
        self._outbox_read = len(self._state.outbox)

    def _plan(self, due: list[_Delivery]) -> list[tuple[_Delivery, Fault | None]]:
        """Pair each due delivery with its fault, swapping reordered ones with their successor."""
        plan = [(d, self._faults.match("airtm", "WEBHOOK", d.message.type)) for d in due]
        index = 0
        while index < len(plan) - 1:
            fault = plan[index][1]
            if fault is not None and fault.kind == "reorder_webhooks":
                plan[index], plan[index + 1] = plan[index + 1], plan[index]
                index += 2
            else:
                index += 1
        return plan

    async def _attempt(
        self, http: httpx.AsyncClient, delivery: _Delivery, fault: Fault | None
    ) -> list[DeliveryAttempt]:
        kind = None if fault is None else fault.kind
        now_s = self._state.clock.now_s()
        timestamp_s = now_s - _STALE_BY_S if kind == "stale_timestamp" else now_s
        secrets = (_WRONG_SECRET,) if kind == "bad_signature" else self._secrets
        message = delivery.message
        headers = signature_headers(secrets, message.message_id, timestamp_s, message.body)
        headers["content-type"] = "application/json"
        delivery.attempts += 1
        made = []
        for _ in range(2 if kind == "duplicate_webhook" else 1):
            status_code, error = await self._post(http, message.body, headers)
            made.append(
                DeliveryAttempt(
                    message_id=message.message_id,
                    type=message.type,
                    at_s=now_s,
                    attempt=delivery.attempts,
                    status_code=status_code,
                    fault=kind,
                    error=error,
                )
            )
        is_success = any(a.status_code is not None and 200 <= a.status_code < 300 for a in made)
        self._settle(delivery, is_success=is_success, now_s=now_s)
        return made

    async def _post(
        self, http: httpx.AsyncClient, body: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str | None]:
        try:
            response = await http.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as error:
            return None, type(error).__name__
        return response.status_code, None

    def _settle(self, delivery: _Delivery, *, is_success: bool, now_s: float) -> None:
        if is_success:
            delivery.is_delivered = True
            self._failing_since_s = None
            return
        if self._failing_since_s is None:
            self._failing_since_s = now_s
        if now_s - self._failing_since_s >= DISABLE_AFTER_S:
            self.is_disabled = True
        if delivery.attempts > len(RETRY_DELAYS_S):
            delivery.is_exhausted = True
        else:
            delivery.next_at_s = now_s + RETRY_DELAYS_S[delivery.attempts - 1]
