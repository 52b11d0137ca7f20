"""One Trustless Work transaction of an escrow step: build at TW, verify, sign, submit once.

Every escrow action is the same dance (providers.md 1.3 and 1.10): ask TW for an unsigned
envelope, check it is exactly the invocation we expect (never sign blindly), sign it with the
role's key, commit its hash, and send it through TW's send-transaction with
:func:`flows.operation_submit.submit_tx` (an ambiguous answer is settled by a Horizon lookup).

Steps that need several transactions (one per milestone) call :func:`run_escrow_tx` in a
loop and re-read the escrow from the chain between calls, so a resumed step skips what the
chain already shows.
"""

from collections.abc import Awaitable, Callable
from typing import Any, Final

import asyncpg
import msgspec
from stellar_sdk import Keypair, TransactionEnvelope

from flows.operation_submit import (
    TxOutcome,
    TxRejected,
    pending_submission,
    submit_tx,
    via_escrow,
)
from flows.operations import EscrowNetwork, StepFailed, StepRetry, StepRun
from flows.queries import operation_submissions as submissions
from flows.queries import wallets
from flows.queries.operation_submissions import Submission, SubmissionStatus
from providers.errors import ProviderRejected
from providers.stellar.keys import SignedTx
from providers.stellar.wallet_keys import open_secret
from providers.trustless_work.port import Escrow, EscrowProvider, UnsignedTransaction
from providers.trustless_work.xdr_check import ExpectedInvocation, verify_unsigned_xdr

__all__ = [
    "SINGLE",
    "BuildRequest",
    "confirm_now",
    "confirmed_submission",
    "escrow_deps",
    "expect_invocation",
    "not_visible",
    "parties",
    "payouts_of",
    "pending_submission",
    "read_escrow",
    "rejected_step",
    "run_escrow_tx",
    "settle_pending",
    "wallet_keypair",
]

SINGLE: Final = "single-release"

# Asks TW for the unsigned envelope of one action (safe to repeat: builds change nothing).
BuildRequest = Callable[[], Awaitable[UnsignedTransaction]]


def escrow_deps(run: StepRun) -> tuple[EscrowProvider, EscrowNetwork]:
    """The escrow provider and the pinned TW facts; escrow steps cannot run without them."""
    deps = run.deps
    if deps.escrow is None or deps.escrow_network is None:
        raise RuntimeError("escrow steps need OperationDeps.escrow and escrow_network")
    return deps.escrow, deps.escrow_network


async def wallet_keypair(run: StepRun, wallet_id: str) -> Keypair:
    """The keypair of a user's wallet, unsealed just before signing."""
    claim = run.claim

    async def get(conn: asyncpg.Connection) -> wallets.Wallet | None:
        return await wallets.get_wallet(conn, claim.marketplace_id, wallet_id)

    wallet = await run.read(get)
    if wallet is None:
        raise ProviderRejected(
            f"wallet {wallet_id} does not exist", provider="orchestrator", reason="wallet_missing"
        )
    seed = open_secret(
        run.deps.keyring,
        wallet.sealed_secret,
        marketplace_id=wallet.marketplace_id,
        wallet_id=wallet.id,
        public_key=wallet.public_key,
    )
    return seed.keypair()


async def read_escrow(run: StepRun, contract_id: str) -> Escrow | None:
    """The escrow as the chain shows it now (TW read validated on chain), or ``None``."""
    escrow, _ = escrow_deps(run)
    found = await escrow.get_escrows([contract_id], validate_on_chain=True)
    return found[0] if found else None


async def _signed(
    run: StepRun, signer: Keypair, unsigned: UnsignedTransaction, expected: ExpectedInvocation
) -> SignedTx:
    """Verify the envelope against ``expected`` (with the live sequence), then sign it."""
    _, pinned = escrow_deps(run)
    deps = run.deps
    sequence = (await deps.network.get_account(signer.public_key)).sequence
    checked = msgspec.structs.replace(expected, account_sequence=sequence)
    verified = verify_unsigned_xdr(
        unsigned.unsigned_xdr, checked, pinned.policy, now_s=await deps.chain_now_s()
    )
    envelope = TransactionEnvelope.from_xdr(unsigned.unsigned_xdr, deps.passphrase)
    envelope.sign(signer)
    return SignedTx(
        hash=verified.tx_hash,
        envelope_xdr=envelope.to_xdr(),
        source=signer.public_key,
        sequence=verified.sequence,
        max_time=verified.max_time,
    )


async def run_escrow_tx(
    run: StepRun,
    pending: Submission | None,
    signer: Keypair,
    request: BuildRequest,
    expected: ExpectedInvocation,
) -> TxOutcome:
    """Get one TW action on chain exactly once (resuming ``pending`` first, if given)."""

    async def build() -> SignedTx:
        return await _signed(run, signer, await request(), expected)

    return await submit_tx(run, pending, build, send=via_escrow)


class _NothingToSend(Exception):
    """Raised by the build of :func:`settle_pending`: the chain needs no new transaction."""


async def settle_pending(run: StepRun, pending: Submission) -> TxOutcome | None:
    """Settle an in-flight transaction whose effect the chain already shows, or that died.

    Returns its outcome when it landed (or failed on chain); ``None`` when it is provably
    dead, in which case nothing is rebuilt: the caller already knows no action is needed.
    """

    async def nothing() -> SignedTx:
        raise _NothingToSend

    try:
        return await submit_tx(run, pending, nothing, send=via_escrow)
    except _NothingToSend:
        return None


async def confirm_now(run: StepRun, tx_hash: str) -> None:
    """Mark a confirmed submission of a multi-transaction step at once (before the next one)."""

    async def settle(conn: asyncpg.Connection) -> None:
        await submissions.settle_submission(conn, tx_hash, SubmissionStatus.CONFIRMED, None)

    await run.write(settle)


async def confirmed_submission(run: StepRun) -> Submission | None:
    """The step's latest CONFIRMED submission: what a finished step left behind."""
    claim = run.claim

    async def get(conn: asyncpg.Connection) -> Submission | None:
        return await submissions.get_confirmed_submission(conn, claim)

    return await run.read(get)


async def payouts_of(run: StepRun, tx_hash: str, contract_id: str) -> list[dict[str, Any]]:
    """USDC the contract paid out in ``tx_hash``, per recipient (from Horizon, not the formula).

    The ledger books exactly these amounts (providers.md 1.7), so reconciliation is exact.
    """
    info = await run.deps.network.get_transaction(tx_hash, with_balance_changes=True)
    issuer = run.deps.usdc_issuer
    paid: dict[str, int] = {}
    for change in info.asset_balance_changes:
        usdc = change.asset_code == "USDC" and change.asset_issuer == issuer
        if usdc and change.from_address == contract_id:
            paid[change.to_address] = paid.get(change.to_address, 0) + change.amount
    return [{"to": address, "amount_minor": amount} for address, amount in paid.items()]


def rejected_step(outcome: TxRejected) -> StepFailed:
    return StepFailed(
        error={
            "error": "TransactionRejected",
            "reason": outcome.reason,
            "tx_hash": outcome.tx_hash,
            "result_codes": msgspec.to_builtins(outcome.codes),
        }
    )


def not_visible(contract_id: str) -> StepRetry:
    # TW's indexer may lag a fresh transaction: read again later.
    return StepRetry(error={"error": "EscrowNotVisible", "contract_id": contract_id})


async def parties(run: StepRun) -> tuple[Keypair, Keypair]:
    payload = run.claim.payload
    buyer = await wallet_keypair(run, payload["buyer_wallet_id"])
    seller = await wallet_keypair(run, payload["seller_wallet_id"])
    return buyer, seller


def expect_invocation(
    source: Keypair, contract_id: str, function: str, **more: Any
) -> ExpectedInvocation:
    return ExpectedInvocation(
        source_address=source.public_key,
        contract_id=contract_id,
        function_names=frozenset({function}),
        **more,
    )
