"""Trustless Work escrow: the port, the real HTTP client, fee math and unsigned-XDR verification.

The core depends on ``port``; ``client``, ``fees`` and ``xdr_check`` are the adapter's parts.
"""

from providers.trustless_work.client import TrustlessWorkClient
from providers.trustless_work.fees import (
    DistributionSplit,
    FeeSplit,
    distribution_split,
    release_split,
)
from providers.trustless_work.port import OUTCOME_UNKNOWN, Escrow, EscrowProvider, EscrowStatus
from providers.trustless_work.settings import TrustlessWorkSettings
from providers.trustless_work.xdr_check import (
    ExpectedInvocation,
    VerifiedEnvelope,
    XdrPolicy,
    verify_unsigned_xdr,
)

__all__ = [
    "OUTCOME_UNKNOWN",
    "DistributionSplit",
    "Escrow",
    "EscrowProvider",
    "EscrowStatus",
    "ExpectedInvocation",
    "FeeSplit",
    "TrustlessWorkClient",
    "TrustlessWorkSettings",
    "VerifiedEnvelope",
    "XdrPolicy",
    "distribution_split",
    "release_split",
    "verify_unsigned_xdr",
]
