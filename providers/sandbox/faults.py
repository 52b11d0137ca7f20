"""Fault rules shared by the sandbox services (Horizon, Trustless Work, Airtm).

A rule says "for the next N calls of <service> <method> <path prefix>, do <fault>". Services ask
``FaultRules.match(service, method, path)`` once per call; the first live rule that matches
fires and loses one count. Webhook senders use the method ``"WEBHOOK"`` and the event type as
the path, so ``("airtm", "WEBHOOK", "payin.")`` targets payin events.

Fault texts follow the control API (providers.md 5.7): ``latency_ms:<n>``, ``hang``,
``status:<code>`` or ``status:<code>:<retry_after_s>``, and bare names such as
``applied_response_lost``, ``fail_before_apply``, ``duplicate_webhook``, ``reorder_webhooks``,
``bad_signature``, ``stale_timestamp``, ``tampered_xdr``.
"""

import itertools
from typing import Final

import msgspec

__all__ = ["ANY_METHOD", "Fault", "FaultRule", "FaultRules", "parse_fault"]

ANY_METHOD: Final = "*"
_PARAMETERLESS: Final = frozenset(
    {
        "hang",
        "applied_response_lost",
        "fail_before_apply",
        "tampered_xdr",
        "duplicate_webhook",
        "reorder_webhooks",
        "bad_signature",
        "stale_timestamp",
    }
)


class Fault(msgspec.Struct, frozen=True, kw_only=True):
    """What to do to one call; the fields that do not apply to ``kind`` stay at their zero."""

    kind: str
    latency_ms: int = 0
    status_code: int = 0
    retry_after_s: int | None = None


class FaultRule(msgspec.Struct, kw_only=True):
    """A fault armed for the next ``remaining`` matching calls."""

    rule_id: str
    service: str
    method: str
    route_prefix: str
    fault: Fault
    remaining: int


def parse_fault(text: str) -> Fault:
    """Parse a fault as written in the control API, for example ``"status:429:2"``.

    Raises:
        ValueError: The text names no known fault or carries a bad number.
    """
    name, _, argument = text.partition(":")
    if name in _PARAMETERLESS and not argument:
        return Fault(kind=name)
    if name == "latency_ms" and argument.isdigit():
        return Fault(kind=name, latency_ms=int(argument))
    if name == "status":
        code, _, retry_after = argument.partition(":")
        if (
            code.isdigit()
            and 400 <= int(code) <= 599
            and (not retry_after or retry_after.isdigit())
        ):
            return Fault(
                kind=name,
                status_code=int(code),
                retry_after_s=int(retry_after) if retry_after else None,
            )
    raise ValueError(f"unknown fault {text!r}")


class FaultRules:
    """The armed rules of all services, consumed in the order they were added."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(
        self, service: str, method: str, route_prefix: str, fault: Fault | str, count: int = 1
    ) -> str:
        """Arm a fault for the next ``count`` matching calls and return the rule id.

        ``method`` is compared case-insensitively; ``"*"`` matches any method.
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        parsed = parse_fault(fault) if isinstance(fault, str) else fault
        rule_id = f"flt_{next(self._ids)}"
        self._rules.append(
            FaultRule(
                rule_id=rule_id,
                service=service,
                method=method.upper(),
                route_prefix=route_prefix,
                fault=parsed,
                remaining=count,
            )
        )
        return rule_id

    def match(self, service: str, method: str, path: str) -> Fault | None:
        """Return the fault for this call, consuming one count of the first matching rule."""
        method = method.upper()
        for rule in self._rules:
            if (
                rule.service == service
                and rule.method in {ANY_METHOD, method}
                and path.startswith(rule.route_prefix)
            ):
                rule.remaining -= 1
                if rule.remaining == 0:
                    self._rules.remove(rule)
                return rule.fault
        return None

    def remove(self, rule_id: str) -> None:
        """Disarm one rule (no error if it already fired out)."""
        self._rules = [rule for rule in self._rules if rule.rule_id != rule_id]

    def clear(self) -> None:
        """Disarm every rule."""
        self._rules.clear()

    def pending(self) -> tuple[FaultRule, ...]:
        """Return the armed rules, for assertions and the control API."""
        return tuple(self._rules)
