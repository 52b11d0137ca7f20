"""The event catalog of api.md 6.2, and the ``types``/``resources`` filters built on it.

SSE streams and webhook endpoints subscribe with the same patterns: an exact type
(``order.escrow_funded``), a prefix wildcard (``order.*``) or ``*``. A pattern that names no
catalog type is refused, so a typo never silently subscribes to nothing.
"""

import re
from collections.abc import Iterable
from typing import Final

import msgspec

__all__ = [
    "EVENT_TYPES",
    "RESOURCE_TYPES",
    "EventFilter",
    "FilterError",
    "parse_resources",
    "parse_types",
]

EVENT_TYPES: Final[frozenset[str]] = frozenset(
    {
        "user.created",
        "user.airtm_linked",
        "wallet.created",
        "balance.credited",
        "balance.debited",
        "balance.reserved",
        "balance.released",
        "topup.created",
        "topup.confirmation_required",
        "topup.processing",
        "topup.succeeded",
        "topup.failed",
        "topup.canceled",
        "order.created",
        "order.funds_reserved",
        "order.escrow_creating",
        "order.escrow_funding",
        "order.escrow_funded",
        "order.in_progress",
        "order.release_requested",
        "order.refund_requested",
        "order.released",
        "order.refunded",
        "order.disputed",
        "order.canceled",
        "order.closed",
        "order.operation_failed",
        "escrow.created",
        "escrow.funding_started",
        "escrow.funded",
        "escrow.milestone_completed",
        "escrow.released",
        "escrow.refunded",
        "dispute.opened",
        "dispute.under_review",
        "dispute.resolved",
        "withdrawal.created",
        "withdrawal.committed",
        "withdrawal.pending",
        "withdrawal.pending_user_action",
        "withdrawal.completed",
        "withdrawal.failed",
        "withdrawal.canceled",
        "reconciliation.completed",
        "reconciliation.drift_detected",
    }
)
"""Every event type of api.md 6.2."""

RESOURCE_TYPES: Final[frozenset[str]] = frozenset(
    {
        "user",
        "wallet",
        "balance",
        "order",
        "escrow",
        "dispute",
        "topup",
        "withdrawal",
        "reconciliation_run",
    }
)
"""The ``resource_type`` values of the envelope (api.md 6.1)."""

_TYPE_PREFIXES: Final = frozenset(name.split(".", 1)[0] for name in EVENT_TYPES)
# A resource id as api.md 1.5 draws them: a lowercase prefix, "_", 32 alphanumerics.
_RESOURCE_ID: Final = re.compile(r"^[a-z]+_[0-9A-Za-z]{32}$")
# Sizes keep one query's arrays small; a subscriber needing more listens to "*" and filters.
_MAX_ITEMS: Final = 100


class FilterError(ValueError):
    """A filter item is not acceptable; the message says which and why."""


class EventFilter(msgspec.Struct, frozen=True, kw_only=True):
    """What a subscriber wants: types (exact or prefixes) and resources (types or ids).

    ``None`` means "no restriction"; an empty tuple never occurs (parsing refuses it).
    """

    exact_types: tuple[str, ...] | None = None
    type_prefixes: tuple[str, ...] | None = None
    resource_types: tuple[str, ...] | None = None
    resource_ids: tuple[str, ...] | None = None

    @property
    def is_type_filtered(self) -> bool:
        """Whether only some types pass."""
        return self.exact_types is not None or self.type_prefixes is not None

    @property
    def is_resource_filtered(self) -> bool:
        """Whether only some resources pass."""
        return self.resource_types is not None or self.resource_ids is not None

    def matches(self, event_type: str, resource_type: str, resource_id: str) -> bool:
        """Whether one event passes; the SQL of ``flows.event_stream`` applies the same rule."""
        type_ok = not self.is_type_filtered or (
            event_type in (self.exact_types or ())
            or any(event_type.startswith(prefix) for prefix in self.type_prefixes or ())
        )
        resource_ok = not self.is_resource_filtered or (
            resource_type in (self.resource_types or ()) or resource_id in (self.resource_ids or ())
        )
        return type_ok and resource_ok


def _items(raw: str) -> list[str]:
    items = [item.strip() for item in raw.split(",")]
    if any(not item for item in items):
        raise FilterError("must be a comma list without empty items")
    if len(items) > _MAX_ITEMS:
        raise FilterError(f"at most {_MAX_ITEMS} items")
    return items


def _sorted_or_none(values: Iterable[str]) -> tuple[str, ...] | None:
    ordered = tuple(sorted(set(values)))
    return ordered or None


def parse_types(raw: str | None) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """Parse a ``types`` list into (exact types, prefixes); ``(None, None)`` means every type.

    Raises:
        FilterError: an item is neither ``*``, a catalog type, nor ``<prefix>.*`` of one.
    """
    if raw is None:
        return None, None
    exact: list[str] = []
    prefixes: list[str] = []
    for item in _items(raw):
        if item == "*":
            return None, None
        if item.endswith(".*") and item[:-2] in _TYPE_PREFIXES:
            prefixes.append(item[:-1])  # "order.*" matches types starting with "order."
        elif item in EVENT_TYPES:
            exact.append(item)
        else:
            raise FilterError(f"unknown event type {item!r}")
    return _sorted_or_none(exact), _sorted_or_none(prefixes)


def parse_resources(raw: str | None) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """Parse a ``resources`` list into (resource types, resource ids); None means all.

    Raises:
        FilterError: an item is neither a resource type nor a resource id.
    """
    if raw is None:
        return None, None
    kinds: list[str] = []
    ids: list[str] = []
    for item in _items(raw):
        if item in RESOURCE_TYPES:
            kinds.append(item)
        elif _RESOURCE_ID.match(item):
            ids.append(item)
        else:
            raise FilterError(f"unknown resource type or malformed id {item!r}")
    return _sorted_or_none(kinds), _sorted_or_none(ids)
