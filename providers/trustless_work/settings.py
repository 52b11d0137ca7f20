"""Trustless Work client settings: host, timeouts and a path per action and escrow type.

The multi-release routes differ between TW's SDK and parts of its docs (providers.md 1.11), so
every path is configuration; the defaults are the V1 routes of providers.md 1.4.
"""

import msgspec

__all__ = [
    "MULTI_RELEASE_PATHS",
    "SINGLE_RELEASE_PATHS",
    "EscrowPaths",
    "HelperPaths",
    "TrustlessWorkSettings",
]


class EscrowPaths(msgspec.Struct, frozen=True, kw_only=True):
    """The build route of each action for one escrow type."""

    deploy: str
    fund: str
    change_milestone_status: str
    approve_milestone: str
    release: str
    dispute: str
    resolve_dispute: str
    withdraw_remaining: str | None = None


SINGLE_RELEASE_PATHS = EscrowPaths(
    deploy="/deployer/single-release",
    fund="/escrow/single-release/fund-escrow",
    change_milestone_status="/escrow/single-release/change-milestone-status",
    approve_milestone="/escrow/single-release/approve-milestone",
    release="/escrow/single-release/release-funds",
    dispute="/escrow/single-release/dispute-escrow",
    resolve_dispute="/escrow/single-release/resolve-dispute",
)

MULTI_RELEASE_PATHS = EscrowPaths(
    deploy="/deployer/multi-release",
    fund="/escrow/multi-release/fund-escrow",
    change_milestone_status="/escrow/multi-release/change-milestone-status",
    approve_milestone="/escrow/multi-release/approve-milestone",
    release="/escrow/multi-release/release-milestone-funds",
    dispute="/escrow/multi-release/dispute-milestone",
    resolve_dispute="/escrow/multi-release/resolve-milestone-dispute",
    withdraw_remaining="/escrow/multi-release/withdraw-remaining-funds",
)


class HelperPaths(msgspec.Struct, frozen=True, kw_only=True):
    """Routes shared by both escrow types."""

    send_transaction: str = "/helper/send-transaction"
    get_escrows: str = "/helper/get-escrow-by-contract-ids"
    get_balances: str = "/helper/get-multiple-escrow-balance"
    update_from_tx_hash: str = "/indexer/update-from-txHash"


class TrustlessWorkSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where and how to call TW. The API key is passed to the client separately.

    ``send_timeout_s`` is longer than ``timeout_s`` because TW waits for the ledger to close
    before answering send-transaction.
    """

    base_url: str
    single_release: EscrowPaths = SINGLE_RELEASE_PATHS
    multi_release: EscrowPaths = MULTI_RELEASE_PATHS
    helpers: HelperPaths = msgspec.field(default_factory=HelperPaths)
    timeout_s: float = 30.0
    send_timeout_s: float = 60.0
    # TW accepts at most 20 addresses per balance read.
    balance_batch_max: int = 20
