"""Steps of the escrow operations on Trustless Work (providers.md 1.9, design.md 5).

| kind            | steps (signer)                                                          |
|-----------------|-------------------------------------------------------------------------|
| ESCROW_CREATE   | deploy (platform), confirm_deploy (read back)                           |
| ESCROW_FUND     | fund (buyer)                                                            |
| RELEASE         | mark_milestones (seller), approve_milestones (buyer), release_funds     |
| REFUND          | dispute_escrow (buyer), resolve_dispute (platform, 100 % to the buyer)  |
| DISPUTE_RESOLVE | dispute_escrow (opening party), resolve_dispute (platform, the shares)  |

Each step first settles its in-flight transaction (hash lookup), then skips what the chain
already shows (a milestone already completed or approved, an escrow already disputed), so a
resumed step never sends an action twice. Payload fields are those of the operation payload
contract (see ``docs`` of each kind in :data:`ESCROW_STEPS`); steps add their results with
``payload_patch``. Amounts booked by the ledger come from the chain (:func:`payouts_of`).
"""

from types import MappingProxyType
from typing import Final

from flows.escrow_payout_steps import (
    approve_milestones,
    dispute_escrow,
    mark_milestones,
    release_funds,
    resolve_dispute,
)
from flows.escrow_tx import (
    SINGLE,
    escrow_deps,
    expect_invocation,
    not_visible,
    parties,
    pending_submission,
    read_escrow,
    rejected_step,
    run_escrow_tx,
    wallet_keypair,
)
from flows.operation_submit import TxConfirmed, TxOutcome, TxRejected
from flows.operations import Step, StepDone, StepFailed, StepOutcome, StepRun
from flows.queries.operations import OperationKind
from providers.trustless_work.contract_ids import deployed_contract_id
from providers.trustless_work.port import (
    DeploySingleReleaseRequest,
    EscrowRoles,
    FundRequest,
    UnsignedTransaction,
)

__all__ = ["ESCROW_STEPS", "confirm_deploy", "deploy", "fund"]


# -- ESCROW_CREATE ------------------------------------------------------------------------------


async def deploy(run: StepRun) -> StepOutcome:
    """Deploy the single-release escrow, signed by the platform; learn its contract id."""
    escrow, pinned = escrow_deps(run)
    payload = run.claim.payload
    platform = run.deps.platform()
    buyer, seller = await parties(run)
    roles = EscrowRoles(
        approver=buyer.public_key,
        service_provider=seller.public_key,
        platform_address=platform.public_key,
        release_signer=buyer.public_key,
        dispute_resolver=platform.public_key,
        receiver=seller.public_key,
    )
    request = DeploySingleReleaseRequest(
        signer=platform.public_key,
        engagement_id=payload["order_id"],
        title=payload["title"],
        description=payload.get("description") or payload["title"],
        roles=roles,
        amount_minor=payload["amount_minor"],
        platform_fee_bps=payload["platform_fee_bps"],
        milestone_descriptions=tuple(payload["milestones"]),
        trustline_address=run.deps.usdc_issuer,
    )
    others = {buyer.public_key, seller.public_key}
    if pinned.policy.token_contract_id is not None:
        others.add(pinned.policy.token_contract_id)
    expected = expect_invocation(
        platform,
        pinned.deployer_contract_id,
        "deploy",
        amounts_minor=(payload["amount_minor"], payload["platform_fee_bps"]),
        other_addresses=frozenset(others),
    )

    async def build() -> UnsignedTransaction:
        return await escrow.build_deploy_single_release(request)

    pending = await pending_submission(run)
    outcome = await run_escrow_tx(run, pending, platform, build, expected)
    if not isinstance(outcome, TxConfirmed):
        return rejected_step(outcome) if isinstance(outcome, TxRejected) else outcome
    contract_id = await _deployed_id(run, outcome)
    if contract_id is None:
        return StepFailed(error={"error": "ContractIdUnknown", "tx_hash": outcome.tx_hash})
    return StepDone(
        confirm_hash=outcome.tx_hash,
        payload_patch={"contract_id": contract_id, "deploy_tx_hash": outcome.tx_hash},
    )


async def _deployed_id(run: StepRun, outcome: TxConfirmed) -> str | None:
    """TW's reply names the contract; after a lost reply, derive it from the signed envelope."""
    if outcome.reply is not None and outcome.reply.contract_id is not None:
        return outcome.reply.contract_id
    pending = await pending_submission(run)
    if pending is None or pending.tx_hash != outcome.tx_hash:
        return None
    return deployed_contract_id(pending.envelope_xdr, run.deps.passphrase)


async def confirm_deploy(run: StepRun) -> StepOutcome:
    """Read the deployed escrow back: it must be the one we asked for (order, amount, roles)."""
    payload = run.claim.payload
    contract_id = payload["contract_id"]
    escrow = await read_escrow(run, contract_id)
    if escrow is None:
        return not_visible(contract_id)
    buyer, seller = await parties(run)
    mismatches = [
        name
        for name, ok in (
            ("engagement_id", escrow.engagement_id == payload["order_id"]),
            ("amount", escrow.amount_minor == payload["amount_minor"]),
            ("approver", escrow.roles.approver == buyer.public_key),
            ("receiver", escrow.roles.receiver == seller.public_key),
        )
        if not ok
    ]
    if mismatches:
        # A derived id that points at someone else's contract: never fund it.
        error = {"error": "EscrowMismatch", "contract_id": contract_id, "fields": mismatches}
        return StepFailed(error=error)
    return StepDone()


# -- ESCROW_FUND --------------------------------------------------------------------------------


async def fund(run: StepRun) -> StepOutcome:
    """Move the order amount from the buyer's wallet into the contract."""
    escrow, _ = escrow_deps(run)
    payload = run.claim.payload
    contract_id, amount = payload["contract_id"], payload["amount_minor"]
    pending = await pending_submission(run)
    if pending is None:
        current = await read_escrow(run, contract_id)
        if current is None:
            return not_visible(contract_id)
        if current.balance_minor >= amount:
            return StepDone(payload_patch={"fund_tx_hash": None})
    buyer = await wallet_keypair(run, payload["buyer_wallet_id"])
    request = FundRequest(
        escrow_type=SINGLE, contract_id=contract_id, signer=buyer.public_key, amount_minor=amount
    )

    async def build() -> UnsignedTransaction:
        return await escrow.build_fund(request)

    expected = expect_invocation(buyer, contract_id, "fund_escrow", amounts_minor=(amount,))
    outcome = await run_escrow_tx(run, pending, buyer, build, expected)
    return _done(outcome, "fund_tx_hash")


def _done(outcome: TxOutcome, hash_field: str) -> StepOutcome:
    if isinstance(outcome, TxConfirmed):
        patch = {hash_field: outcome.tx_hash}
        return StepDone(confirm_hash=outcome.tx_hash, payload_patch=patch)
    if isinstance(outcome, TxRejected):
        return rejected_step(outcome)
    return outcome


# -- RELEASE ------------------------------------------------------------------------------------


DEPLOY_STEPS: Final = (Step("deploy", deploy), Step("confirm_deploy", confirm_deploy))
FUND_STEPS: Final = (Step("fund", fund),)
RELEASE_STEPS: Final = (
    Step("mark_milestones", mark_milestones),
    Step("approve_milestones", approve_milestones),
    Step("release_funds", release_funds),
)
REFUND_STEPS: Final = (
    Step("dispute_escrow", dispute_escrow),
    Step("resolve_dispute", resolve_dispute),
)

ESCROW_STEPS: Final = MappingProxyType(
    {
        OperationKind.ESCROW_CREATE: DEPLOY_STEPS,
        OperationKind.ESCROW_FUND: FUND_STEPS,
        OperationKind.RELEASE: RELEASE_STEPS,
        OperationKind.REFUND: REFUND_STEPS,
        OperationKind.DISPUTE_RESOLVE: REFUND_STEPS,
    }
)
"""The escrow kinds' steps; merged into the worker's registry."""
