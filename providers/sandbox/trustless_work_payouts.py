"""The Trustless Work actions that end an escrow: release, dispute, resolve and withdraw.

Release and resolution pay the fee math of providers.md 1.7 (``providers.trustless_work.fees``):
the Trustless Work fee to its fee address, the platform fee to ``platformAddress``, then each
recipient's net, in that order, as transfers out of the contract.
"""

from collections.abc import Sequence

from providers.sandbox.trustless_work_actions import Action, ActionContext, Ledger, to_minor
from providers.sandbox.trustless_work_envelopes import (
    Invocation,
    dispute_args,
    release_args,
    resolve_args,
)
from providers.sandbox.trustless_work_escrows import (
    ContractRuleError,
    check_dispute,
    check_release,
    check_resolve,
    check_withdraw,
    milestone_at,
)
from providers.trustless_work import bodies
from providers.trustless_work.fees import distribution_split, release_split
from providers.trustless_work.wire import WireDistribution

__all__ = ["dispute", "release", "resolve"]


def _index(text: str | None) -> int | None:
    return None if text is None else int(text)


def release(ctx: ActionContext, body: bodies.ReleaseBody) -> Action:
    """Pay the escrow (or one milestone) out: TW fee, platform fee, the receiver's net."""
    escrow = ctx.escrow(body.contract_id)
    multi = escrow.escrow_type == "multi-release"
    milestone = milestone_at(escrow, body.milestone_index) if multi else None
    cid, signer = escrow.contract_id, body.release_signer
    index = _index(body.milestone_index) if multi else None
    function = "release_milestone_funds" if multi else "release_funds"
    invocation = Invocation(cid, function, release_args(signer, ctx.tw_fee_address, index))

    def execute(ledger: Ledger) -> None:
        amount = check_release(escrow, signer, ledger.usdc_balance(cid), milestone)
        split = release_split(
            amount, platform_fee_bps=escrow.platform_fee_bps, trustless_work_fee_bps=ctx.tw_fee_bps
        )
        receiver = escrow.roles.receiver if milestone is None else milestone.receiver
        assert receiver is not None
        _pay(ledger, cid, ctx.tw_fee_address, split.trustless_work_minor)
        _pay(ledger, cid, escrow.roles.platform_address, split.platform_minor)
        _pay(ledger, cid, receiver, split.net_minor)
        flags = escrow.flags if milestone is None else milestone.flags

        def commit() -> None:
            flags.released = True
            ctx.touch(escrow)

        ledger.on_commit(commit)

    return Action("release", signer, cid, invocation, execute)


def _pay(ledger: Ledger, from_address: str, to_address: str, amount: int) -> None:
    # A zero fee (platformFee 0) moves nothing and records no balance change.
    if amount > 0:
        ledger.transfer(from_address, to_address, amount)


def dispute(ctx: ActionContext, body: bodies.DisputeBody) -> Action:
    """Open a dispute on the escrow (single) or a milestone (multi)."""
    escrow = ctx.escrow(body.contract_id)
    multi = escrow.escrow_type == "multi-release"
    milestone = milestone_at(escrow, body.milestone_index) if multi else None
    index = _index(body.milestone_index) if multi else None
    function = "dispute_milestone" if multi else "dispute_escrow"
    cid = escrow.contract_id
    invocation = Invocation(cid, function, dispute_args(body.signer, index))
    flags = escrow.flags if milestone is None else milestone.flags

    def execute(ledger: Ledger) -> None:
        check_dispute(escrow, body.signer, flags)

        def commit() -> None:
            flags.disputed = True
            ctx.touch(escrow)

        ledger.on_commit(commit)

    return Action("dispute", body.signer, cid, invocation, execute)


def _distributions(wires: Sequence[WireDistribution]) -> list[tuple[str, int]]:
    return [(d.address, to_minor(d.amount)) for d in wires]


def resolve(
    ctx: ActionContext, body: bodies.ResolveDisputeBody | bodies.WithdrawRemainingBody
) -> Action:
    """Resolve a dispute or withdraw what remains: pro-rata fees, then each recipient's net."""
    escrow = ctx.escrow(body.contract_id)
    withdraw = isinstance(body, bodies.WithdrawRemainingBody)
    multi = escrow.escrow_type == "multi-release"
    if withdraw and not multi:
        raise ContractRuleError("Only multi-release escrows can withdraw remaining funds")
    index_text = None if isinstance(body, bodies.WithdrawRemainingBody) else body.milestone_index
    milestone = milestone_at(escrow, index_text) if multi and not withdraw else None
    index = _index(index_text) if milestone is not None else None
    if withdraw:
        function = "withdraw_remaining_funds"
    else:
        function = "resolve_milestone_dispute" if multi else "resolve_dispute"
    distributions = _distributions(body.distributions)
    cid, signer = escrow.contract_id, body.dispute_resolver
    args = resolve_args(signer, ctx.tw_fee_address, distributions, index)
    invocation = Invocation(cid, function, args)

    def execute(ledger: Ledger) -> None:
        balance = ledger.usdc_balance(cid)
        if withdraw:
            check_withdraw(escrow, signer, distributions, balance)
        else:
            check_resolve(escrow, signer, distributions, balance, milestone)
        split = distribution_split(
            [amount for _, amount in distributions],
            platform_fee_bps=escrow.platform_fee_bps,
            trustless_work_fee_bps=ctx.tw_fee_bps,
        )
        _pay(ledger, cid, ctx.tw_fee_address, split.trustless_work_minor)
        _pay(ledger, cid, escrow.roles.platform_address, split.platform_minor)
        for (address, _), share in zip(distributions, split.recipients, strict=True):
            _pay(ledger, cid, address, share.net_minor)
        flags = escrow.flags if milestone is None else milestone.flags

        def commit() -> None:
            if not withdraw:
                flags.resolved, flags.disputed = True, False
            ctx.touch(escrow)

        ledger.on_commit(commit)

    return Action("withdraw" if withdraw else "resolve", signer, cid, invocation, execute)
