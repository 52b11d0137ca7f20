"""Steps of the two withdrawal operations: a USDC payment on chain and an Airtm payout.

WITHDRAWAL_PAYMENT (resource ``withdrawal``): one step, ``pay``. The user's wallet signs a USDC
payment to ``destination``; :func:`flows.operation_submit.submit_tx` commits the hash before the
submit and settles a resumed step by hash, so the payment lands at most once.

AIRTM_PAYOUT (resource ``withdrawal``): ``create_payout`` -> ``commit_payout`` ->
``await_payout``. Airtm's idempotency key is ``code`` = the withdrawal id (providers.md 4.2):
the payout is looked up by code before it is created, and a duplicate-code answer is resolved by
reading the code back, so there is never a second payout. A commit is asked for only while the
payout is CREATED, and a commit whose answer was lost is settled by reading the payout, so it
is never committed twice.

Payloads (amounts in stroops). WITHDRAWAL_PAYMENT starts with ``{withdrawal_id, wallet_id,
destination, amount_minor, memo}`` and adds ``tx_hash``; FAILED carries ``reason`` (the op
code, such as ``op_no_trust``) and ``tx_hash`` when it failed on chain. AIRTM_PAYOUT starts
with ``{withdrawal_id, email, amount_minor, commit, notes}`` and adds ``payout_id`` and
``payout_status`` (``CREATED`` when ``commit`` is false, else the final status, with
``failure_reason`` unless COMPLETED); an Airtm refusal ends it FAILED with Airtm's code.
"""

from typing import Any, Final

import asyncpg
import msgspec
from stellar_sdk import StrKey

from flows.operation_submit import TxConfirmed, TxRejected, pending_submission, submit_tx
from flows.operations import Step, StepDone, StepFailed, StepOutcome, StepRetry, StepRun
from flows.queries import wallets
from flows.queries.wallets import Wallet
from providers.airtm.port import FiatProvider, Payout, PayoutCreate, PayoutStatus
from providers.errors import ProviderRejected, ProviderUnavailable
from providers.stellar.keys import SignedTx, build_usdc_payment
from providers.stellar.wallet_keys import WalletKeyError, open_secret

__all__ = [
    "AIRTM_PAYOUT_STEPS",
    "PAYOUT_POLL_DELAY_S",
    "WITHDRAWAL_PAYMENT_STEPS",
    "await_payout",
    "commit_payout",
    "create_payout",
    "pay",
]

# Seconds between two reads of a committed payout (Airtm sends no webhook for most statuses).
PAYOUT_POLL_DELAY_S: Final = 5.0
# Stellar text memos carry at most 28 bytes.
_MEMO_MAX_BYTES: Final = 28
# Airtm error codes (providers.md 4.1).
_PAYOUT_CODE_EXISTS: Final = "415056"
_PAYOUT_NOT_FOUND: Final = "415005"
_FINAL_PAYOUT: Final = frozenset(
    {PayoutStatus.COMPLETED, PayoutStatus.FAILED, PayoutStatus.CANCELED}
)
# Statuses that are not final but will not move on by themselves (providers.md 4.4).
_NEEDS_ATTENTION: Final = frozenset(
    {PayoutStatus.ERROR, PayoutStatus.BRIDGE_FAILED, PayoutStatus.BRIDGE_MAX_RETRIES_REACHED}
)


# -- WITHDRAWAL_PAYMENT -------------------------------------------------------------------


def _invalid(reason: str) -> StepFailed:
    return StepFailed(error={"error": "InvalidWithdrawal", "reason": reason})


def _check_payment(payload: dict[str, Any]) -> StepFailed | None:
    """Refuse a payload no transaction can carry, before anything is signed."""
    if not StrKey.is_valid_ed25519_public_key(payload["destination"]):
        return _invalid("destination_invalid")
    amount = payload["amount_minor"]
    if not isinstance(amount, int) or amount <= 0:
        return _invalid("amount_invalid")
    memo = payload.get("memo")
    if memo is not None and len(memo.encode()) > _MEMO_MAX_BYTES:
        return _invalid("memo_too_long")
    return None


async def _payload_wallet(run: StepRun, wallet_id: str) -> Wallet | None:
    marketplace_id = run.claim.marketplace_id

    async def get(conn: asyncpg.Connection) -> Wallet | None:
        return await wallets.get_wallet(conn, marketplace_id, wallet_id)

    return await run.read(get)


async def _build_payment(run: StepRun, wallet: Wallet) -> SignedTx:
    """Sign a fresh payment on the wallet's current sequence (called once per build)."""
    deps, payload = run.deps, run.claim.payload
    source = await deps.network.get_account(wallet.public_key)
    if not source.exists:
        raise ProviderRejected(
            "the wallet account does not exist", provider="stellar", reason="tx_no_source_account"
        )
    seed = open_secret(
        deps.keyring,
        wallet.sealed_secret,
        marketplace_id=wallet.marketplace_id,
        wallet_id=wallet.id,
        public_key=wallet.public_key,
    )
    return build_usdc_payment(
        source=seed.keypair(),
        sequence=source.sequence,
        destination=payload["destination"],
        amount=payload["amount_minor"],
        usdc_issuer=deps.usdc_issuer,
        passphrase=deps.passphrase,
        now_s=await deps.chain_now_s(),
        memo=payload.get("memo"),
        timeout_s=deps.tx_timeout_s,
    )


async def _memo_missing(run: StepRun) -> bool:
    """SEP-29: a destination that requires a memo (an exchange) must get one."""
    payload = run.claim.payload
    if payload.get("memo") is not None:
        return False
    destination = await run.deps.network.get_account(payload["destination"])
    return destination.exists and destination.memo_required


async def pay(run: StepRun) -> StepOutcome:
    """WITHDRAWAL_PAYMENT: the wallet pays ``amount_minor`` USDC to ``destination``, once."""
    payload = run.claim.payload
    invalid = _check_payment(payload)
    if invalid is not None:
        return invalid
    wallet = await _payload_wallet(run, payload["wallet_id"])
    if wallet is None:
        return StepFailed(error={"error": "WalletNotFound", "reason": "wallet_not_found"})
    pending = await pending_submission(run)
    # Only before the first build: once a hash is committed, that tx is settled first.
    if pending is None and await _memo_missing(run):
        return _invalid("memo_required")

    async def build() -> SignedTx:
        return await _build_payment(run, wallet)

    try:
        outcome = await submit_tx(run, pending, build)
    except WalletKeyError as error:
        # Never fall back to another key: the wallet cannot sign until its key is restored.
        return StepFailed(error={"error": "WalletKeyError", "reason": error.message})
    if isinstance(outcome, TxConfirmed):
        return StepDone(confirm_hash=outcome.tx_hash, payload_patch={"tx_hash": outcome.tx_hash})
    if isinstance(outcome, TxRejected):
        return StepFailed(
            error={
                "error": "TransactionRejected",
                "reason": outcome.reason,
                "tx_hash": outcome.tx_hash,
                "result_codes": msgspec.to_builtins(outcome.codes),
            }
        )
    return outcome


# -- AIRTM_PAYOUT -------------------------------------------------------------------------


def _fiat(run: StepRun) -> FiatProvider:
    fiat = run.deps.fiat
    if fiat is None:
        raise RuntimeError("payout steps need OperationDeps.fiat")
    return fiat


def _status_text(payout: Payout) -> str:
    """The status as stored in the payload: our enum's text, else Airtm's raw text."""
    return payout.status.value if payout.status is not None else payout.raw_status


def _payout_request(payload: dict[str, Any]) -> PayoutCreate:
    """The create request of the payload (ValueError when Airtm could not carry it)."""
    return PayoutCreate(
        code=payload["withdrawal_id"],
        recipient_email=payload["email"],
        amount_minor=payload["amount_minor"],
        notes=payload.get("notes") or "",
    )


def _matches(payout: Payout, request: PayoutCreate) -> bool:
    return (
        payout.code == request.code
        and payout.gross_amount_minor == request.amount_minor
        and payout.airtm_user_email.casefold() == request.recipient_email.casefold()
    )


async def _by_code(fiat: FiatProvider, code: str) -> Payout | None:
    """The payout stored under ``code``, or ``None`` when Airtm has none."""
    try:
        return await fiat.get_payout_by_code(code)
    except ProviderRejected as error:
        if error.status_code == 404 or error.reason == _PAYOUT_NOT_FOUND:
            return None
        raise


async def create_payout(run: StepRun) -> StepOutcome:
    """AIRTM_PAYOUT step 1: adopt the payout stored under the code, else create it uncommitted."""
    fiat = _fiat(run)
    try:
        request = _payout_request(run.claim.payload)
    except ValueError as error:
        return StepFailed(
            error={"error": "InvalidPayout", "reason": "invalid_request", "message": str(error)}
        )
    payout = await _by_code(fiat, request.code)
    if payout is None:
        try:
            payout = await fiat.create_payout(request, commit=False)
        except ProviderRejected as rejected:
            if rejected.reason != _PAYOUT_CODE_EXISTS:
                raise  # a business refusal (415016 balance, 4150xx recipient): FAILED
            payout = await _by_code(fiat, request.code)
            if payout is None:
                # Airtm says the code exists but cannot show it yet: read again later.
                return StepRetry(error={"error": "PayoutCodeUnresolved", "code": request.code})
    if not _matches(payout, request):
        return StepFailed(
            error={
                "error": "PayoutCodeConflict",
                "reason": _PAYOUT_CODE_EXISTS,
                "payout_id": payout.id,
            }
        )
    return StepDone(payload_patch={"payout_id": payout.id, "payout_status": _status_text(payout)})


async def commit_payout(run: StepRun) -> StepOutcome:
    """AIRTM_PAYOUT step 2: commit a CREATED payout when the payload asks for it."""
    payload = run.claim.payload
    if not payload["commit"] or payload.get("payout_status") != PayoutStatus.CREATED.value:
        return StepDone()
    fiat = _fiat(run)
    payout_id = payload["payout_id"]
    try:
        # A repeated commit (the last run died after it) is answered "already processed"
        # (415027), which the port settles by reading the payout.
        payout = await fiat.commit_payout(payout_id)
    except ProviderUnavailable:
        # The commit may have been applied with only its answer lost: the payout tells.
        payout = await fiat.get_payout(payout_id)
        if payout.status is PayoutStatus.CREATED:
            raise
    return StepDone(payload_patch={"payout_status": _status_text(payout)})


async def await_payout(run: StepRun) -> StepOutcome:
    """AIRTM_PAYOUT step 3: poll a committed payout until Airtm gives a final status."""
    payload = run.claim.payload
    if not payload["commit"]:
        return StepDone()
    payout = await _fiat(run).get_payout(payload["payout_id"])
    status = _status_text(payout)
    if payout.status in _FINAL_PAYOUT:
        patch: dict[str, Any] = {"payout_status": status}
        if payout.status is not PayoutStatus.COMPLETED:
            patch["failure_reason"] = payout.reason_code or payout.reason_description or status
        return StepDone(payload_patch=patch)
    error: dict[str, Any] = {"error": "PayoutPending", "status": status}
    if payout.status is None or payout.status in _NEEDS_ATTENTION:
        # Never final by itself (providers.md 4.4): keep polling, but say it needs a human.
        error["needs_attention"] = True
    return StepRetry(error=error, delay_s=PAYOUT_POLL_DELAY_S)


WITHDRAWAL_PAYMENT_STEPS: Final[tuple[Step, ...]] = (Step("pay", pay),)
AIRTM_PAYOUT_STEPS: Final[tuple[Step, ...]] = (
    Step("create_payout", create_payout),
    Step("commit_payout", commit_payout),
    Step("await_payout", await_payout),
)
