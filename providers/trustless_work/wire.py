"""Trustless Work V1 JSON shapes (providers.md 1.4, 1.5, 1.8), shared by client and sandbox.

Amounts on the wire are JSON numbers in human units (``12.3456789``). They are held as
``Decimal`` here and become integer stroops only through ``decimal_to_minor`` and
``minor_to_decimal``, so no float ever touches money.
"""

from decimal import Decimal, InvalidOperation
from typing import Final

import msgspec

from common.money import AMOUNT_MINOR_MAX, SCALE

__all__ = [
    "WIRE_ENCODER",
    "BuildReply",
    "ErrorBody",
    "IndexerReply",
    "SendReply",
    "WireBalance",
    "WireDeployMilestone",
    "WireDistribution",
    "WireEscrow",
    "WireFlags",
    "WireMilestone",
    "WireRoles",
    "WireTimestamp",
    "WireTrustline",
    "decimal_to_minor",
    "minor_to_decimal",
]

# TW reads JSON numbers; a Decimal encoded as a string would be refused or mis-scaled.
WIRE_ENCODER: Final = msgspec.json.Encoder(decimal_format="number")
_QUANTUM: Final = Decimal(1).scaleb(-SCALE)


def minor_to_decimal(amount_minor: int) -> Decimal:
    """Turn integer stroops into the exact human-unit Decimal for TW (``10`` -> ``0.000001``)."""
    if type(amount_minor) is not int or amount_minor < 0:
        raise ValueError(f"amount must be a non-negative int of stroops, got {amount_minor!r}")
    return Decimal(amount_minor).scaleb(-SCALE)


def decimal_to_minor(amount: Decimal) -> int:
    """Turn a human-unit Decimal read from TW into integer stroops.

    TW's numbers are JavaScript floats, so a value such as ``0.30000000000000004`` is
    quantized to 7 decimals (half-even) before the exact conversion.

    Raises:
        ValueError: The value is not finite, is negative, or exceeds the int64 stroop range.
    """
    if not amount.is_finite():
        raise ValueError(f"amount {amount!r} is not a finite number")
    try:
        quantized = amount.quantize(_QUANTUM)
    except InvalidOperation as error:
        raise ValueError(f"amount {amount!r} is not a representable number") from error
    if quantized < 0:
        raise ValueError(f"amount {amount} is negative")
    minor = int(quantized.scaleb(SCALE))
    if minor > AMOUNT_MINOR_MAX:
        raise ValueError(f"amount {amount} exceeds the int64 stroop range")
    return minor


class _Camel(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Base of the wire Structs: TW's JSON uses camelCase keys.

    Structs that also appear inside request bodies set ``omit_defaults`` so that unset
    optional fields are left out rather than sent as ``null``; replies keep every field, as TW's do.
    """


class WireRoles(_Camel, frozen=True, omit_defaults=True):
    """``roles``; ``receiver`` is single-release only."""

    approver: str
    service_provider: str
    platform_address: str
    release_signer: str
    dispute_resolver: str
    receiver: str | None = None


class WireTrustline(_Camel, frozen=True, omit_defaults=True):
    """``trustline``; older reads carry ``name``/``decimals`` instead of ``symbol``."""

    address: str
    symbol: str | None = None
    name: str | None = None
    decimals: int | None = None


class WireDeployMilestone(_Camel, frozen=True, omit_defaults=True):
    """A milestone in a deploy body (multi-release adds ``amount`` and ``receiver``)."""

    description: str
    amount: Decimal | None = None
    receiver: str | None = None


class WireDistribution(_Camel, frozen=True, omit_defaults=True):
    """One ``distributions`` entry of a resolve or withdraw body."""

    address: str
    amount: Decimal


class WireFlags(_Camel, frozen=True):
    """Escrow flags, or a multi-release milestone's flags (which add ``approved``)."""

    disputed: bool = False
    released: bool = False
    resolved: bool = False
    approved: bool = False


class WireMilestone(_Camel, frozen=True):
    """A milestone as read (single-release: no amount/receiver/flags)."""

    description: str = ""
    status: str = ""
    evidence: str = ""
    approved: bool = False
    amount: Decimal | None = None
    receiver: str | None = None
    flags: WireFlags | None = None


class WireTimestamp(msgspec.Struct, frozen=True, kw_only=True):
    """A Firestore-style timestamp ``{_seconds, _nanoseconds}``."""

    seconds: int = msgspec.field(name="_seconds")
    nanoseconds: int = msgspec.field(default=0, name="_nanoseconds")


class WireEscrow(_Camel, frozen=True):
    """The V1 escrow object (providers.md 1.5); unknown fields are ignored."""

    roles: WireRoles
    contract_id: str = ""
    signer: str | None = None
    engagement_id: str = ""
    title: str = ""
    description: str = ""
    amount: Decimal | None = None
    platform_fee: Decimal = Decimal(0)
    balance: Decimal = Decimal(0)
    milestones: tuple[WireMilestone, ...] = ()
    flags: WireFlags | None = None
    trustline: WireTrustline | None = None
    receiver_memo: int | None = None
    is_active: bool | None = None
    user: str | None = None
    escrow_type: str | None = msgspec.field(default=None, name="type")
    created_at: WireTimestamp | None = None
    updated_at: WireTimestamp | None = None


class WireBalance(_Camel, frozen=True):
    """One entry of ``get-multiple-escrow-balance``."""

    address: str
    balance: Decimal


class BuildReply(_Camel, frozen=True):
    """The answer of every build endpoint; ``status`` may be missing."""

    unsigned_transaction: str
    status: str | None = None


class SendReply(_Camel, frozen=True):
    """The answer of ``/helper/send-transaction``; a deploy adds ``contractId`` and ``escrow``."""

    status: str | None = None
    message: str | None = None
    contract_id: str | None = None
    escrow: WireEscrow | None = None


class IndexerReply(_Camel, frozen=True):
    """The answer of ``/indexer/update-from-txHash``."""

    status: str | None = None
    message: str | None = None


class ErrorBody(_Camel, frozen=True):
    """A NestJS error body; ``message`` is one string or a list of validation messages."""

    message: str | list[str] | None = None
    status_code: int | None = None
    error: str | None = None
