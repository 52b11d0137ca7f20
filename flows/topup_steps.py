"""TOPUP_DELIVERY: pay a confirmed top-up's USDC from the treasury wallet to the user's wallet.

One step, ``deliver`` (resource ``topup``). Payload at start: ``{topup_id, user_id,
user_wallet_id (null when the user had no wallet yet), amount_minor}``; SUCCEEDED adds
``{tx_hash}``; FAILED ``last_error`` carries ``reason`` (the op code, e.g. ``op_no_trust``) and
``tx_hash`` when it failed on chain.

The treasury wallet is, for now, the platform account (``OperationDeps.platform()``): the same
key that sponsors activations and receives platform fees. A dedicated treasury key plugs in
here by changing :func:`_treasury` only.

Before anything is signed the step holds the amount in ``treasury:stellar`` (a pending
transfer, id derived from the operation), so the treasury's ledger ``available`` never promises
the same USDC twice. The payment goes out through :func:`flows.operation_submit.submit_tx`
(hash committed before the submit, settled by hash on resumption: at most one payment lands).
The hooks (:func:`topup_hooks`) post the hold when the operation succeeds and void it when it
fails, in the transaction that ends the operation, so the books follow the chain exactly.

Retried, not failed: the user's wallet not active yet, the treasury short in the ledger or on
chain (``op_underfunded``). Both need a human (a treasury top-up) but will then succeed; the
confirmed top-up must not be abandoned.
"""

import logging
from typing import Any, Final

import asyncpg
import msgspec
from stellar_sdk import Keypair

from flows.operation_submit import TxConfirmed, TxRejected, pending_submission, submit_tx
from flows.operations import (
    OperationHooks,
    Step,
    StepDone,
    StepFailed,
    StepOutcome,
    StepRetry,
    StepRun,
)
from flows.queries import topups as queries
from flows.queries import users, wallets
from flows.queries.operations import Operation
from flows.queries.wallets import Wallet
from flows.topup_ledger import hold_delivery, release_delivery, settle_delivery
from ledger import TransferResult
from providers.errors import ProviderRejected
from providers.stellar.keys import SignedTx, build_usdc_payment

__all__ = [
    "TOPUP_DELIVERY_STEPS",
    "TREASURY_RETRY_DELAY_S",
    "deliver",
    "delivery_payload",
    "topup_hooks",
]

_log = logging.getLogger(__name__)

# Seconds between attempts while the treasury is short or the user's wallet is not active:
# both wait for something outside the operation (an operator, the activation).
TREASURY_RETRY_DELAY_S: Final = 60.0


def delivery_payload(
    *, topup_id: str, user_id: str, user_wallet_id: str | None, amount_minor: int
) -> dict[str, Any]:
    """The start payload of a TOPUP_DELIVERY operation."""
    return {
        "topup_id": topup_id,
        "user_id": user_id,
        "user_wallet_id": user_wallet_id,
        "amount_minor": amount_minor,
    }


def _treasury(run: StepRun) -> Keypair:
    """The wallet that funds top-ups on chain: the platform account for now."""
    return run.deps.platform()


async def _user_wallet(run: StepRun) -> Wallet | None:
    """The payload's wallet, else the user's wallet opened since the top-up was confirmed."""
    marketplace_id, payload = run.claim.marketplace_id, run.claim.payload

    async def get(conn: asyncpg.Connection) -> Wallet | None:
        wallet_id = payload.get("user_wallet_id")
        if wallet_id is None:
            user = await users.get_user(conn, marketplace_id, payload["user_id"])
            if user is None or user.wallet is None:
                return None
            wallet_id = user.wallet.id
        return await wallets.get_wallet(conn, marketplace_id, wallet_id)

    return await run.read(get)


async def _hold(run: StepRun) -> TransferResult:
    claim = run.claim

    async def hold(conn: asyncpg.Connection) -> TransferResult:
        return await hold_delivery(
            conn,
            marketplace_id=claim.marketplace_id,
            operation_id=claim.id,
            topup_id=claim.payload["topup_id"],
            user_id=claim.payload["user_id"],
            amount_minor=claim.payload["amount_minor"],
        )

    return await run.write(hold)


async def _build_payment(run: StepRun, destination: str) -> SignedTx:
    """Sign a fresh payment on the treasury's current sequence (called once per build)."""
    deps = run.deps
    treasury = _treasury(run)
    source = await deps.network.get_account(treasury.public_key)
    if not source.exists:
        raise ProviderRejected(
            "the treasury account does not exist", provider="stellar", reason="tx_no_source_account"
        )
    return build_usdc_payment(
        source=treasury,
        sequence=source.sequence,
        destination=destination,
        amount=run.claim.payload["amount_minor"],
        usdc_issuer=deps.usdc_issuer,
        passphrase=deps.passphrase,
        now_s=await deps.chain_now_s(),
        timeout_s=deps.tx_timeout_s,
    )


def _short(reason: str, **details: Any) -> StepRetry:
    """The treasury cannot cover the delivery: wait for an operator, loudly."""
    error = {"error": "TreasuryInsufficientFunds", "reason": reason, "needs_attention": True}
    return StepRetry(error=error | details, delay_s=TREASURY_RETRY_DELAY_S)


async def deliver(run: StepRun) -> StepOutcome:
    """TOPUP_DELIVERY: the treasury pays ``amount_minor`` USDC to the user's wallet, once."""
    amount = run.claim.payload["amount_minor"]
    if not isinstance(amount, int) or amount <= 0:
        return StepFailed(error={"error": "InvalidDelivery", "reason": "amount_invalid"})
    wallet = await _user_wallet(run)
    if wallet is None or not wallet.is_active:
        # POST /users activates the wallet in the background: wait for it.
        return StepRetry(
            error={"error": "WalletNotReady", "reason": "wallet_not_active"},
            delay_s=TREASURY_RETRY_DELAY_S,
        )
    pending = await pending_submission(run)
    # The hold precedes the first build; a committed hash means it is already in place.
    if pending is None and await _hold(run) is TransferResult.EXCEEDS_CREDITS:
        return _short("treasury_ledger_insufficient")

    async def build() -> SignedTx:
        return await _build_payment(run, wallet.public_key)

    outcome = await submit_tx(run, pending, build)
    if isinstance(outcome, TxConfirmed):
        return StepDone(confirm_hash=outcome.tx_hash, payload_patch={"tx_hash": outcome.tx_hash})
    if isinstance(outcome, TxRejected):
        if outcome.reason == "op_underfunded":
            # The ledger said the treasury had it and the chain disagrees: a reconciliation
            # break. The failed tx is settled; the next attempt builds a fresh one.
            return _short("op_underfunded", tx_hash=outcome.tx_hash)
        return StepFailed(
            error={
                "error": "TransactionRejected",
                "reason": outcome.reason,
                "tx_hash": outcome.tx_hash,
                "result_codes": msgspec.to_builtins(outcome.codes),
            }
        )
    return outcome


TOPUP_DELIVERY_STEPS: Final[tuple[Step, ...]] = (Step("deliver", deliver),)


async def _on_succeeded(conn: asyncpg.Connection, ended: Operation) -> None:
    """The payment is on chain: post the hold and record the delivery on the top-up."""
    payload = ended.payload
    tx_hash = payload["tx_hash"]
    await settle_delivery(
        conn,
        marketplace_id=ended.marketplace_id,
        operation_id=ended.id,
        user_id=payload["user_id"],
        tx_hash=tx_hash,
    )
    await queries.mark_delivered(conn, ended.marketplace_id, payload["topup_id"], tx_hash)


async def _on_failed(conn: asyncpg.Connection, ended: Operation) -> None:
    """No payment landed: release the hold. The top-up stays credited and undelivered."""
    payload = ended.payload
    await release_delivery(
        conn,
        marketplace_id=ended.marketplace_id,
        operation_id=ended.id,
        user_id=payload["user_id"],
    )
    # Visible in clearing:topups and undelivered_total_minor; restart_topup_delivery resumes.
    _log.error("top-up %s: delivery %s failed: %s", payload["topup_id"], ended.id, ended.last_error)


def topup_hooks() -> OperationHooks:
    """The TOPUP_DELIVERY hooks: keep ``treasury:stellar`` and ``clearing:topups`` on the chain."""
    return OperationHooks(on_succeeded=_on_succeeded, on_failed=_on_failed)
