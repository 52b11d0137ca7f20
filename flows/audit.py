"""The audit log (api.md 3.11, design.md 6): one redacted, hash-chained entry per state change.

Writing. :func:`record_audit` runs in the transaction of the change it describes: it redacts the
before/after summary (``flows.audit_redaction``), hashes the entry's canonical content and stages
it in ``audit_pending``. At COMMIT a deferred trigger in ``schema.sql`` appends it to the
marketplace's chain (position, time, ``prev_hash``, ``hash``) under the chain-head lock, so the
lock is held only while the transaction commits. A rolled-back change leaves no entry.
``flows.transitions.fire`` records every state-machine transition (:func:`transition_action`);
creations and other changes call :func:`record_audit` where they happen.

Request context. The API layer does not thread the request id, idempotency key, client address
and user agent through every flow: ``api.idempotency.run_mutation`` sets them with
:func:`audit_context` around the request's database work (a ``ContextVar``, so concurrent requests
never see each other's). Code outside a request (the operation runner's hooks, jobs, the CLI) runs
without one and records its actor explicitly (``SYSTEM``, ``PROVIDER``).

Hashes (``offerhub audit verify`` recomputes both):

* ``entry_hash`` = lowercase hex SHA-256 of ``msgspec.json.encode(entry, order="sorted")``, where
  ``entry`` is the JSON object with exactly the keys ``version`` (1), ``id``,
  ``marketplace_id``, ``actor_type``, ``actor_id``, ``action``, ``resource_type``,
  ``resource_id``, ``request_id`` and ``summary`` (the stored summary): keys sorted at every
  level, no whitespace, UTF-8;
* ``hash`` = lowercase hex SHA-256 of the UTF-8 text ``prev_hash \\n chain_index \\n occurred_at
  \\n entry_hash``, with ``occurred_at`` in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; the first
  entry's ``prev_hash`` is :data:`GENESIS_HASH`.
"""

import contextlib
import hashlib
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final, Literal

import asyncpg
import msgspec

from common.ids import new_id
from flows.audit_redaction import redact
from flows.queries import audit as queries
from flows.queries.audit import AuditFilters, AuditRow

__all__ = [
    "GENESIS_HASH",
    "AuditActorType",
    "AuditContext",
    "AuditFilters",
    "AuditRow",
    "ChainVerification",
    "audit_context",
    "chain_hash",
    "current_audit_context",
    "entry_hash",
    "record_audit",
    "transition_action",
    "verify_all_chains",
    "verify_chain",
]

AuditActorType = Literal["API_KEY", "MASTER_KEY", "PROVIDER", "SYSTEM"]
GENESIS_HASH: Final = "0" * 64
_ENTRY_VERSION: Final = 1


class AuditContext(msgspec.Struct, frozen=True, kw_only=True):
    """What the API layer knows about the request behind a change."""

    request_id: str | None = None
    idempotency_key: str | None = None
    ip: str | None = None
    user_agent: str | None = None


_CONTEXT: Final[ContextVar[AuditContext | None]] = ContextVar(
    "offerhub_audit_context", default=None
)


@contextlib.contextmanager
def audit_context(context: AuditContext) -> Iterator[None]:
    """Make ``context`` the request context of :func:`record_audit` calls inside the block."""
    token = _CONTEXT.set(context)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def current_audit_context() -> AuditContext | None:
    """The request context set by :func:`audit_context`, if any."""
    return _CONTEXT.get()


# Actions of api.md 3.11 for the transitions that have one; the rest are derived.
_ORDER_ACTIONS: Final = {
    "reserve": "FUNDS_RESERVED",
    "cancel": "ORDER_CANCELED",
    "start_escrow": "ORDER_ESCROW_CREATING",
    "escrow_deployed": "ORDER_ESCROW_FUNDING",
    "deploy_failed": "ORDER_ESCROW_DEPLOY_FAILED",
    "escrow_funded": "ORDER_ESCROW_FUNDED",
    "start_work": "ORDER_IN_PROGRESS",
    "request_release": "RELEASE_REQUESTED",
    "request_refund": "REFUND_REQUESTED",
    "open_dispute": "ORDER_DISPUTED",
    "confirm_release": "RELEASED",
    "confirm_refund": "REFUNDED",
    "resolve_full_release": "RELEASED",
    "resolve_full_refund": "REFUNDED",
    "resolve_split": "ORDER_CLOSED",
    "close": "ORDER_CLOSED",
}
_EVENT_ACTIONS: Final = {
    ("milestone", "complete"): "MILESTONE_COMPLETED",
    ("dispute", "assign"): "DISPUTE_ASSIGNED",
    ("dispute", "resolve"): "DISPUTE_RESOLVED",
}


def transition_action(resource_type: str, event: str, to_status: str) -> str:
    """The audit action of a transition: ``(order, reserve)`` -> ``FUNDS_RESERVED``.

    Escrows are named by the status reached (``ESCROW_FUNDED``), top-ups and withdrawals by
    ``TOPUP_STATUS_CHANGED`` / ``WITHDRAWAL_STATUS_CHANGED`` (before/after say which), and
    anything unmapped by ``<RESOURCE>_<EVENT>``.
    """
    if resource_type == "order" and event in _ORDER_ACTIONS:
        return _ORDER_ACTIONS[event]
    if resource_type == "escrow":
        return f"ESCROW_{to_status}"
    if resource_type in ("topup", "withdrawal"):
        return f"{resource_type.upper()}_STATUS_CHANGED"
    return _EVENT_ACTIONS.get((resource_type, event), f"{resource_type}_{event}".upper())


def entry_hash(
    *,
    entry_id: str,
    marketplace_id: str,
    actor_type: str,
    actor_id: str | None,
    action: str,
    resource_type: str,
    resource_id: str,
    request_id: str | None,
    summary: dict[str, Any],
) -> str:
    """SHA-256 (hex) of the canonical encoding of an entry (module docstring)."""
    canonical = msgspec.json.encode(
        {
            "version": _ENTRY_VERSION,
            "id": entry_id,
            "marketplace_id": marketplace_id,
            "actor_type": actor_type,
            "actor_id": actor_id,
            "action": action,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "request_id": request_id,
            "summary": summary,
        },
        order="sorted",
    )
    return hashlib.sha256(canonical).hexdigest()


def chain_hash(prev_hash: str, chain_index: int, occurred_at: datetime, digest: str) -> str:
    """The chained ``hash`` of an entry; the commit trigger computes the same in SQL."""
    stamp = occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    text = f"{prev_hash}\n{chain_index}\n{stamp}\n{digest}"
    return hashlib.sha256(text.encode()).hexdigest()


def _summary(before: Any, after: Any, context: AuditContext | None) -> dict[str, Any]:
    summary: dict[str, Any] = {"before": redact(before), "after": redact(after)}
    if context is not None:
        extras = {
            "idempotency_key": context.idempotency_key,
            "ip": context.ip,
            "user_agent": context.user_agent,
        }
        summary |= {name: redact(value) for name, value in extras.items() if value is not None}
    return summary


async def record_audit(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    actor_type: AuditActorType,
    actor_id: str | None,
    action: str,
    resource_type: str,
    resource_id: str,
    before: Any = None,
    after: Any = None,
    request_id: str | None = None,
) -> None:
    """Record one state change in the marketplace's audit chain, in the caller's transaction.

    Args:
        conn: The connection of the change's transaction (the entry commits with it).
        marketplace_id: Whose chain.
        actor_type: ``API_KEY``, ``MASTER_KEY``, ``PROVIDER`` or ``SYSTEM``.
        actor_id: The key id, the provider's name, or ``None``.
        action: UPPER_SNAKE, e.g. ``ORDER_CREATED`` (api.md 3.11).
        resource_type: lower_snake, e.g. ``order``.
        resource_id: The changed resource.
        before: State before the change (any JSON-like value); redacted.
        after: State after the change; redacted.
        request_id: The correlation id; defaults to the request context's.
    """
    context = _CONTEXT.get()
    if request_id is None and context is not None:
        request_id = context.request_id
    summary = _summary(before, after, context)
    entry_id = new_id("aud_")
    digest = entry_hash(
        entry_id=entry_id,
        marketplace_id=marketplace_id,
        actor_type=actor_type,
        actor_id=actor_id,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        request_id=request_id,
        summary=summary,
    )
    await queries.insert_pending(
        conn,
        marketplace_id=marketplace_id,
        entry_id=entry_id,
        actor_type=actor_type,
        actor_id=actor_id,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        request_id=request_id,
        summary_json=msgspec.json.encode(summary).decode(),
        entry_hash=digest,
    )


class ChainVerification(msgspec.Struct, frozen=True, kw_only=True):
    """The answer of ``GET /audit/logs/verify`` and ``offerhub audit verify``."""

    valid: bool
    entries_checked: int
    first_invalid_id: str | None
    head_hash: str | None


_BATCH: Final = 1000


def _recomputed(row: queries.AuditRow) -> str:
    digest = entry_hash(
        entry_id=row.id,
        marketplace_id=row.marketplace_id,
        actor_type=row.actor_type,
        actor_id=row.actor_id,
        action=row.action,
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        request_id=row.request_id,
        summary=row.summary,
    )
    return chain_hash(row.prev_hash, row.chain_index, row.occurred_at, digest)


async def _expected_prev(
    conn: asyncpg.Connection, row: queries.AuditRow, last: queries.AuditRow | None
) -> tuple[int, str | None]:
    """Position and hash the entry before ``row`` must have (``None``: it is missing)."""
    if last is not None:
        return last.chain_index + 1, last.hash
    if row.chain_index == 1:
        return 1, GENESIS_HASH
    # A range that starts mid-chain links to the entry just before it (trusted, not checked).
    return row.chain_index, await queries.hash_at(conn, row.marketplace_id, row.chain_index - 1)


def _tail_error(
    head: queries.ChainHead | None, last: queries.AuditRow | None, occurred_from: datetime | None
) -> str | None:
    """The id to blame when the chain's end disagrees with its head (entries cut off the end)."""
    if head is None or head.last_index == 0:
        return None if last is None else last.id
    if last is None:
        after_range = head.last_occurred_at is not None and (
            occurred_from is None or head.last_occurred_at >= occurred_from
        )
        return head.last_id if after_range else None
    if last.chain_index < head.last_index:
        return head.last_id
    if last.chain_index > head.last_index or last.hash != head.last_hash:
        return last.id
    return None


async def verify_chain(
    conn: asyncpg.Connection,
    marketplace_id: str,
    from_: datetime | None = None,
    to: datetime | None = None,
) -> ChainVerification:
    """Recompute the marketplace's chain over entries with ``occurred_at`` in ``[from_, to)``.

    Every entry must sit at the next position, link to its predecessor's stored hash and carry
    the hash recomputed from its content. Without ``to`` the last entry must also be the chain
    head (so entries cut off the end are found). An altered entry is reported as
    ``first_invalid_id``; a deleted one by the entry after it (or by the head's id at the end).

    Returns:
        ``valid``, ``entries_checked``, ``first_invalid_id`` and ``head_hash`` (the hash of the
        last entry checked; ``None`` when there was none).
    """
    checked = 0
    last: queries.AuditRow | None = None
    while True:
        rows = await queries.chain_batch(
            conn,
            marketplace_id,
            after_index=0 if last is None else last.chain_index,
            occurred_from=from_,
            occurred_to=to,
            limit=_BATCH,
        )
        for row in rows:
            checked += 1
            position, prev_hash = await _expected_prev(conn, row, last)
            if (
                row.chain_index != position
                or row.prev_hash != prev_hash
                or row.hash != _recomputed(row)
            ):
                return ChainVerification(
                    valid=False, entries_checked=checked, first_invalid_id=row.id, head_hash=None
                )
            last = row
        if len(rows) < _BATCH:
            break
    head_hash = None if last is None else last.hash
    if to is None:
        blamed = _tail_error(await queries.chain_head(conn, marketplace_id), last, from_)
        if blamed is not None:
            return ChainVerification(
                valid=False, entries_checked=checked, first_invalid_id=blamed, head_hash=head_hash
            )
    return ChainVerification(
        valid=True, entries_checked=checked, first_invalid_id=None, head_hash=head_hash
    )


async def verify_all_chains(conn: asyncpg.Connection) -> dict[str, ChainVerification]:
    """:func:`verify_chain` of every marketplace that has audit entries, by marketplace id."""
    return {
        marketplace_id: await verify_chain(conn, marketplace_id)
        for marketplace_id in await queries.marketplaces_with_chains(conn)
    }
