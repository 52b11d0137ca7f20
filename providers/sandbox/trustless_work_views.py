"""JSON shapes of the simulated Trustless Work: escrow objects (providers.md 1.5) and errors.

Escrows are rendered through the shared ``WireEscrow`` Struct and then stripped of ``null``
fields, because TW leaves absent fields out (single-release milestones have no amount).
"""

from decimal import Decimal
from http import HTTPStatus
from typing import Any, Final

import msgspec

from providers.sandbox.trustless_work_escrows import EscrowFlags, EscrowRecord, MilestoneRecord
from providers.trustless_work.wire import (
    WIRE_ENCODER,
    WireEscrow,
    WireFlags,
    WireMilestone,
    WireTimestamp,
    WireTrustline,
    minor_to_decimal,
)

__all__ = ["TrustlessWorkError", "encode", "error_body", "escrow_json", "flags_json"]

_SYMBOL: Final = "USDC"
_DECIMALS: Final = 7


class TrustlessWorkError(Exception):
    """A refusal answered as a NestJS error body ``{statusCode, message, error}``."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def error_body(status_code: int, message: str | list[str]) -> dict[str, Any]:
    """NestJS's error shape; ``error`` is the HTTP reason phrase."""
    return {
        "statusCode": status_code,
        "message": message,
        "error": HTTPStatus(status_code).phrase,
    }


def encode(document: object) -> bytes:
    """JSON with Decimals as numbers (TW's amounts are JSON numbers)."""
    return WIRE_ENCODER.encode(document)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _flags(flags: EscrowFlags, approved: bool | None = None) -> WireFlags:
    return WireFlags(
        disputed=flags.disputed,
        released=flags.released,
        resolved=flags.resolved,
        approved=bool(approved),
    )


def flags_json(flags: EscrowFlags) -> dict[str, bool]:
    """``{disputed, released, resolved}``."""
    return {"disputed": flags.disputed, "released": flags.released, "resolved": flags.resolved}


def _milestone(milestone: MilestoneRecord, multi: bool) -> WireMilestone:
    if not multi:
        return WireMilestone(
            description=milestone.description,
            status=milestone.status,
            evidence=milestone.evidence,
            approved=milestone.approved,
        )
    assert milestone.amount is not None
    return WireMilestone(
        description=milestone.description,
        status=milestone.status,
        evidence=milestone.evidence,
        amount=minor_to_decimal(milestone.amount),
        receiver=milestone.receiver,
        flags=_flags(milestone.flags, milestone.approved),
    )


def escrow_json(escrow: EscrowRecord, balance: int, *, is_active: bool = True) -> dict[str, Any]:
    """The V1 escrow object; ``balance`` is the contract's USDC in stroops."""
    multi = escrow.escrow_type == "multi-release"
    wire = WireEscrow(
        contract_id=escrow.contract_id,
        signer=escrow.signer,
        engagement_id=escrow.engagement_id,
        title=escrow.title,
        description=escrow.description,
        roles=escrow.roles,
        amount=None if multi else minor_to_decimal(escrow.amount),
        platform_fee=Decimal(escrow.platform_fee_bps) / 100,
        balance=minor_to_decimal(balance),
        milestones=tuple(_milestone(m, multi) for m in escrow.milestones),
        flags=None if multi else _flags(escrow.flags),
        trustline=WireTrustline(address=escrow.trustline_address, symbol=_SYMBOL),
        receiver_memo=escrow.receiver_memo,
        is_active=is_active,
        user=escrow.signer,
        escrow_type=escrow.escrow_type,
        created_at=WireTimestamp(seconds=escrow.created_at_s),
        updated_at=WireTimestamp(seconds=escrow.updated_at_s),
    )
    document = msgspec.to_builtins(wire, builtin_types=(Decimal,))
    if not multi:
        # Single-release flags are {disputed, released, resolved}; "approved" is per milestone.
        document["flags"].pop("approved", None)
    result: dict[str, Any] = _without_nulls(document)
    return result
