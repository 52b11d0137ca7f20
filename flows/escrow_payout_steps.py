"""Payout steps of RELEASE, REFUND and DISPUTE_RESOLVE (providers.md 1.9).

RELEASE: the seller marks each milestone completed, the buyer approves each, the buyer releases.
REFUND / DISPUTE_RESOLVE: the opening party flags the contract as disputed, then the platform
(dispute resolver) distributes the whole balance: all to the buyer, or the recorded shares.
Multi-transaction steps re-read the escrow between transactions and skip what the chain shows
done; the payout step records what the contract actually paid (:func:`payouts_of`).
"""

from collections.abc import Awaitable, Callable
from typing import Final

import msgspec
from stellar_sdk import Keypair

from flows.escrow_tx import (
    SINGLE,
    BuildRequest,
    confirm_now,
    confirmed_submission,
    escrow_deps,
    expect_invocation,
    not_visible,
    parties,
    payouts_of,
    pending_submission,
    read_escrow,
    rejected_step,
    run_escrow_tx,
    settle_pending,
    wallet_keypair,
)
from flows.operation_submit import TxConfirmed, TxOutcome, TxRejected
from flows.operations import StepDone, StepFailed, StepOutcome, StepRetry, StepRun
from flows.queries.operations import OperationKind
from providers.trustless_work.port import (
    ApproveMilestoneRequest,
    ChangeMilestoneStatusRequest,
    DisputeRequest,
    Distribution,
    Escrow,
    ReleaseRequest,
    ResolveDisputeRequest,
    UnsignedTransaction,
)
from providers.trustless_work.xdr_check import ExpectedInvocation

__all__ = [
    "approve_milestones",
    "dispute_escrow",
    "mark_milestones",
    "release_funds",
    "resolve_dispute",
]

COMPLETED: Final = "completed"
# A step sends at most this many transactions per run (milestones are at most 50).
_MAX_TXS_PER_RUN: Final = 60


class _Action(msgspec.Struct, frozen=True):
    """The next transaction a multi-transaction step needs."""

    signer: Keypair
    request: BuildRequest
    expected: ExpectedInvocation


NextAction = Callable[[Escrow], Awaitable[_Action | None]]


async def _each_needed(run: StepRun, next_action: NextAction) -> StepOutcome:
    """Send the actions ``next_action(escrow)`` asks for, one at a time, until none is left.

    ``next_action`` looks at the escrow as the chain shows it now; the in-flight transaction
    of a previous run is settled first, and never rebuilt once the chain needs nothing more.
    """
    contract_id = run.claim.payload["contract_id"]
    for _ in range(_MAX_TXS_PER_RUN):
        escrow = await read_escrow(run, contract_id)
        if escrow is None:
            return not_visible(contract_id)
        pending = await pending_submission(run)
        action = await next_action(escrow)
        if action is None:
            if pending is None:
                return StepDone()
            outcome = await settle_pending(run, pending)
        else:
            outcome = await run_escrow_tx(
                run, pending, action.signer, action.request, action.expected
            )
        if outcome is None or isinstance(outcome, TxConfirmed):
            if outcome is not None:
                await confirm_now(run, outcome.tx_hash)
            continue
        return rejected_step(outcome) if isinstance(outcome, TxRejected) else outcome
    return StepRetry(error={"error": "TooManyTransactions", "step": run.claim.step})


async def mark_milestones(run: StepRun) -> StepOutcome:
    """The seller marks every milestone completed (skipping those the chain shows done)."""
    provider, _ = escrow_deps(run)
    contract_id = run.claim.payload["contract_id"]
    _, seller = await parties(run)

    async def next_action(escrow: Escrow) -> _Action | None:
        todo = [i for i, m in enumerate(escrow.milestones) if m.status != COMPLETED]
        if not todo:
            return None
        request = ChangeMilestoneStatusRequest(
            escrow_type=SINGLE,
            contract_id=contract_id,
            milestone_index=todo[0],
            new_status=COMPLETED,
            service_provider=seller.public_key,
        )

        async def build() -> UnsignedTransaction:
            return await provider.build_change_milestone_status(request)

        return _Action(
            seller, build, expect_invocation(seller, contract_id, "change_milestone_status")
        )

    return await _each_needed(run, next_action)


async def approve_milestones(run: StepRun) -> StepOutcome:
    """The buyer approves every milestone not yet approved on chain."""
    provider, _ = escrow_deps(run)
    contract_id = run.claim.payload["contract_id"]
    buyer, _ = await parties(run)

    async def next_action(escrow: Escrow) -> _Action | None:
        todo = [i for i, m in enumerate(escrow.milestones) if not m.is_approved]
        if not todo:
            return None
        request = ApproveMilestoneRequest(
            escrow_type=SINGLE,
            contract_id=contract_id,
            milestone_index=todo[0],
            approver=buyer.public_key,
        )

        async def build() -> UnsignedTransaction:
            return await provider.build_approve_milestone(request)

        return _Action(buyer, build, expect_invocation(buyer, contract_id, "approve_milestone"))

    return await _each_needed(run, next_action)


async def _paid_out(run: StepRun, hash_field: str, outcome: TxOutcome) -> StepOutcome:
    """Done: record the payout transaction and what the contract paid in it."""
    if isinstance(outcome, TxRejected):
        return rejected_step(outcome)
    if not isinstance(outcome, TxConfirmed):
        return outcome
    contract_id = run.claim.payload["contract_id"]
    transfers = await payouts_of(run, outcome.tx_hash, contract_id)
    return StepDone(
        confirm_hash=outcome.tx_hash,
        payload_patch={hash_field: outcome.tx_hash, "transfers": transfers},
    )


async def _already_paid(run: StepRun, hash_field: str) -> StepOutcome:
    """The chain shows the payout done with nothing in flight: find our confirmed tx."""
    confirmed = await confirmed_submission(run)
    if confirmed is None:
        # Paid by a transaction we did not send: book nothing, let an operator look.
        error = {"error": "PaidOutElsewhere", "contract_id": run.claim.payload["contract_id"]}
        return StepFailed(error=error)
    contract_id = run.claim.payload["contract_id"]
    transfers = await payouts_of(run, confirmed.tx_hash, contract_id)
    return StepDone(payload_patch={hash_field: confirmed.tx_hash, "transfers": transfers})


async def release_funds(run: StepRun) -> StepOutcome:
    """The buyer (release signer) releases: seller net, platform fee, Trustless Work fee."""
    provider, pinned = escrow_deps(run)
    contract_id = run.claim.payload["contract_id"]
    pending = await pending_submission(run)
    if pending is None:
        escrow = await read_escrow(run, contract_id)
        if escrow is None:
            return not_visible(contract_id)
        if escrow.is_released:
            return await _already_paid(run, "release_tx_hash")
    buyer, _ = await parties(run)
    request = ReleaseRequest(contract_id=contract_id, release_signer=buyer.public_key)

    async def build() -> UnsignedTransaction:
        return await provider.build_release(request)

    expected = expect_invocation(
        buyer,
        contract_id,
        "release_funds",
        trustless_work_address=pinned.trustless_work_fee_address,
    )
    outcome = await run_escrow_tx(run, pending, buyer, build, expected)
    return await _paid_out(run, "release_tx_hash", outcome)


# -- REFUND and DISPUTE_RESOLVE -----------------------------------------------------------------


async def _opener(run: StepRun) -> Keypair:
    payload = run.claim.payload
    return await wallet_keypair(run, payload.get("opener_wallet_id") or payload["buyer_wallet_id"])


async def dispute_escrow(run: StepRun) -> StepOutcome:
    """The opening party (the buyer for a refund) flags the contract as disputed."""
    provider, _ = escrow_deps(run)
    contract_id = run.claim.payload["contract_id"]
    opener = await _opener(run)

    async def next_action(escrow: Escrow) -> _Action | None:
        if escrow.is_disputed or escrow.is_resolved or escrow.is_released:
            return None
        request = DisputeRequest(
            escrow_type=SINGLE, contract_id=contract_id, signer=opener.public_key
        )

        async def build() -> UnsignedTransaction:
            return await provider.build_dispute(request)

        return _Action(opener, build, expect_invocation(opener, contract_id, "dispute_escrow"))

    return await _each_needed(run, next_action)


async def _distributions(run: StepRun, balance: int) -> tuple[Distribution, ...] | StepFailed:
    """Who gets what: all to the buyer (REFUND) or the recorded shares (DISPUTE_RESOLVE)."""
    payload = run.claim.payload
    if run.claim.kind is OperationKind.REFUND:
        buyer = await wallet_keypair(run, payload["buyer_wallet_id"])
        return (Distribution(address=buyer.public_key, amount_minor=balance),)
    buyer, seller = await parties(run)
    shares = (
        (seller.public_key, int(payload["release_amount_minor"])),
        (buyer.public_key, int(payload["refund_amount_minor"])),
    )
    if sum(amount for _, amount in shares) != balance:
        # The contract requires the exact balance; a different balance needs a person.
        error = {"error": "BalanceMismatch", "balance": balance, "shares": [a for _, a in shares]}
        return StepFailed(error=error)
    return tuple(Distribution(address=a, amount_minor=n) for a, n in shares if n > 0)


async def resolve_dispute(run: StepRun) -> StepOutcome:
    """The platform (dispute resolver) distributes the contract's whole balance."""
    provider, pinned = escrow_deps(run)
    contract_id = run.claim.payload["contract_id"]
    pending = await pending_submission(run)
    distributions: tuple[Distribution, ...] = ()
    if pending is None:
        escrow = await read_escrow(run, contract_id)
        if escrow is None:
            return not_visible(contract_id)
        if escrow.is_resolved:
            return await _already_paid(run, "resolve_tx_hash")
        shares = await _distributions(run, escrow.balance_minor)
        if isinstance(shares, StepFailed):
            return shares
        distributions = shares
    platform = run.deps.platform()

    async def build() -> UnsignedTransaction:
        # Resuming a pending tx leaves no shares: the request (which needs at least one) is
        # only built for a fresh envelope, after a fresh balance read.
        if not distributions:
            raise _Stale(contract_id)
        request = ResolveDisputeRequest(
            escrow_type=SINGLE,
            contract_id=contract_id,
            dispute_resolver=platform.public_key,
            distributions=distributions,
        )
        return await provider.build_resolve_dispute(request)

    expected = expect_invocation(
        platform,
        contract_id,
        "resolve_dispute",
        distributions_minor=tuple((d.address, d.amount_minor) for d in distributions),
        trustless_work_address=pinned.trustless_work_fee_address,
    )
    try:
        outcome = await run_escrow_tx(run, pending, platform, build, expected)
    except _Stale:
        # The in-flight tx died; shares must be recomputed from a fresh balance read.
        return StepRetry(error={"error": "Rebuild", "contract_id": contract_id}, delay_s=0.0)
    return await _paid_out(run, "resolve_tx_hash", outcome)


class _Stale(Exception):
    """Resolve shares were computed for an envelope that died; read the balance again."""
