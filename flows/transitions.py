"""Bind a lifecycle machine to a row (design.md 3): check the event, compare-and-set, record it.

:func:`fire` runs inside the caller's transaction, after the caller has locked the row
(``SELECT ... FOR UPDATE``). It asks the strict machine whether the event is allowed from the
stored status, writes the new status with ``WHERE status = <old>`` and appends a
``state_transitions`` row and its audit entry (``flows.audit``). The caller posts the event's
ledger transfers and writes its outbox events in the same transaction, so status and money never
disagree.
"""

from enum import Enum
from typing import Final, Literal, LiteralString

import asyncpg
import msgspec

from common.errors import ConcurrentUpdate, InvalidTransition
from flows.audit import record_audit, transition_action
from statemachines import (
    DisputeMachine,
    EscrowMachine,
    MilestoneMachine,
    OrderMachine,
    TopUpMachine,
    TransitionNotAllowed,
    WithdrawalMachine,
    allowed_source_states,
)
from statemachines.base import StrictMachine

__all__ = ["SYSTEM", "Actor", "ActorType", "ResourceType", "fire", "next_status"]

ActorType = Literal["API_KEY", "MASTER_KEY", "PROVIDER", "SYSTEM"]
ResourceType = Literal["order", "escrow", "milestone", "dispute", "topup", "withdrawal"]


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """Who caused a change: an API key, the master key, a provider or the system (a job)."""

    type: ActorType
    id: str | None = None
    request_id: str | None = None


SYSTEM: Final = Actor(type="SYSTEM")

_SET: Final = " SET status = $4, updated_at = now() "
_WHERE: Final = "WHERE marketplace_id = $1 AND id = $2 AND status = $3"

# The compare-and-set and the machine per resource type (table names never come from input).
_BINDINGS: Final[dict[str, tuple[LiteralString, type[StrictMachine]]]] = {
    "order": ("UPDATE orders" + _SET + _WHERE, OrderMachine),
    "escrow": ("UPDATE escrows" + _SET + _WHERE, EscrowMachine),
    "milestone": ("UPDATE milestones" + _SET + _WHERE, MilestoneMachine),
    "dispute": ("UPDATE disputes" + _SET + _WHERE, DisputeMachine),
    "topup": ("UPDATE topups" + _SET + _WHERE, TopUpMachine),
    "withdrawal": ("UPDATE withdrawals" + _SET + _WHERE, WithdrawalMachine),
}

INSERT_TRANSITION: Final[LiteralString] = """
INSERT INTO state_transitions (
    marketplace_id, resource_type, resource_id, from_status, to_status, event,
    actor_type, actor_id, request_id
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""


class _Row:
    """The model the machine reads and writes (only its status)."""

    def __init__(self, status: str) -> None:
        self.status: str | Enum = status


def next_status(resource_type: ResourceType, current: str, event: str, resource_id: str) -> str:
    """The status ``event`` leads to from ``current``, or ``InvalidTransition`` (409).

    Raises:
        InvalidTransition: with ``resource_type, resource_id, current_state, allowed_states``.
    """
    _, machine = _BINDINGS[resource_type]
    row = _Row(current)
    try:
        machine(model=row, state_field="status").send(event)
    except TransitionNotAllowed:
        raise InvalidTransition(
            f"cannot {event.replace('_', ' ')} a {resource_type} in {current}",
            resource_type=resource_type,
            resource_id=resource_id,
            current_state=current,
            allowed_states=allowed_source_states(machine, event),
        ) from None
    status = row.status
    return str(status.value) if isinstance(status, Enum) else status


async def fire(
    conn: asyncpg.Connection,
    resource_type: ResourceType,
    *,
    marketplace_id: str,
    resource_id: str,
    current: str,
    event: str,
    actor: Actor,
) -> str:
    """Apply ``event`` to the locked row whose stored status is ``current``; returns the new one.

    Raises:
        InvalidTransition: the machine does not allow ``event`` from ``current``.
        ConcurrentUpdate: the stored status is no longer ``current`` (the caller did not lock
            the row, or read it outside the transaction); ``run_in_transaction`` retries.
    """
    update, _ = _BINDINGS[resource_type]
    new = next_status(resource_type, current, event, resource_id)
    result = await conn.execute(update, marketplace_id, resource_id, current, new)
    if result != "UPDATE 1":
        raise ConcurrentUpdate(resource_type=resource_type, resource_id=resource_id)
    await conn.execute(
        INSERT_TRANSITION,
        marketplace_id,
        resource_type,
        resource_id,
        current,
        new,
        event,
        actor.type,
        actor.id,
        actor.request_id,
    )
    await record_audit(
        conn,
        marketplace_id=marketplace_id,
        actor_type=actor.type,
        actor_id=actor.id,
        action=transition_action(resource_type, event, new),
        resource_type=resource_type,
        resource_id=resource_id,
        before={"status": current},
        after={"status": new, "event": event},
        request_id=actor.request_id,
    )
    return new
