"""Audit log wire types (api.md 3.11, 4): AuditEntry and the chain verification answer."""

from typing import Any

from api.schemas.common import ResponseStruct, format_time
from flows.audit import AuditRow, ChainVerification

__all__ = [
    "AuditActor",
    "AuditEntry",
    "AuditError",
    "AuditVerification",
    "audit_entry_out",
    "verification_out",
]


class AuditActor(ResponseStruct, frozen=True):
    """Who made the change: ``API_KEY`` (and its id), ``MASTER_KEY``, ``PROVIDER``, ``SYSTEM``."""

    type: str
    id: str | None


class AuditError(ResponseStruct, frozen=True):
    """The error of a failed change (entries are written for committed changes, so rare)."""

    code: str
    message: str


class AuditEntry(ResponseStruct, frozen=True):
    """One entry of a marketplace's audit chain; ``before``/``after`` are redacted summaries."""

    id: str
    chain_index: int
    occurred_at: str
    marketplace_id: str
    action: str
    actor: AuditActor
    resource_type: str
    resource_id: str
    before: Any
    after: Any
    result: str
    error: AuditError | None
    request_id: str | None
    idempotency_key: str | None
    ip: str | None
    user_agent: str | None
    prev_hash: str
    hash: str


class AuditVerification(ResponseStruct, frozen=True):
    """``GET /audit/logs/verify``: whether the chain recomputes, and where it first breaks."""

    valid: bool
    entries_checked: int
    first_invalid_id: str | None
    head_hash: str | None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _error(value: Any) -> AuditError | None:
    if not isinstance(value, dict):
        return None
    return AuditError(code=str(value.get("code", "")), message=str(value.get("message", "")))


def audit_entry_out(row: AuditRow) -> AuditEntry:
    """The wire form of an audit entry (its summary spread into the AuditEntry fields)."""
    summary = row.summary
    error = _error(summary.get("error"))
    return AuditEntry(
        id=row.id,
        chain_index=row.chain_index,
        occurred_at=format_time(row.occurred_at),
        marketplace_id=row.marketplace_id,
        action=row.action,
        actor=AuditActor(type=row.actor_type, id=row.actor_id),
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        before=summary.get("before"),
        after=summary.get("after"),
        result="FAILURE" if error is not None else "SUCCESS",
        error=error,
        request_id=row.request_id,
        idempotency_key=_text(summary.get("idempotency_key")),
        ip=_text(summary.get("ip")),
        user_agent=_text(summary.get("user_agent")),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def verification_out(result: ChainVerification) -> AuditVerification:
    """The wire form of a chain verification."""
    return AuditVerification(
        valid=result.valid,
        entries_checked=result.entries_checked,
        first_invalid_id=result.first_invalid_id,
        head_hash=result.head_hash,
    )
