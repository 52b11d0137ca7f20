"""The Stellar write pattern of durable-operation steps.

:func:`submit_tx` is the Stellar write pattern (providers.md 1.3 and 2.7) every on-chain step
uses: build + sign once, commit ``(hash, envelope, max_time)``, submit, and on any ambiguous
outcome look the hash up before deciding. A step that finds its submission PENDING (resumed
after a crash, a timeout or a 5xx) settles it by hash first:

    PENDING --found, successful----------------> CONFIRMED (with the step's advance)
    PENDING --found, failed / refused for good---> FAILED    (the step decides: fail or done)
    PENDING --refused: bad seq, fee--------------> FAILED    -> rebuild with a fresh sequence
    PENDING --not found, chain time > max_time---> EXPIRED   -> rebuild with a fresh sequence
    PENDING --not found, still in time-----------> re-POST the same envelope (same hash)
    PENDING --no answer--------------------------> stays PENDING; retry with backoff

A PENDING row is also the per-source-account lock: a second build from the same source waits.

Transactions built by Trustless Work go out through TW's send-transaction (:func:`via_escrow`)
instead of Horizon. TW's answers are less precise than Horizon's (providers.md 1.11), so a TW
refusal is always settled by a hash lookup: found -> its on-chain outcome; not found -> the
envelope never landed, and since a rebuild reuses the source's next sequence, at most one of
the two can ever land.
"""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

import asyncpg
import msgspec

from flows.operations import ChainClock, StepRetry, StepRun
from flows.queries import operation_submissions as submissions
from flows.queries.operation_submissions import Submission, SubmissionStatus
from providers.errors import ProviderRejected, ProviderResponseInvalid, ProviderUnavailable
from providers.stellar.keys import SignedTx
from providers.stellar.port import ResultCodes, TransactionFailed, WalletNetwork
from providers.trustless_work.port import SendResult, SignedTransaction

__all__ = [
    "Sender",
    "TxConfirmed",
    "TxOutcome",
    "TxRejected",
    "ledger_clock",
    "pending_submission",
    "submit_tx",
    "via_escrow",
    "via_horizon",
]

# Resubmit the same envelope later (providers.md 2.6 class "same").
_RETRY_SAME: Final = frozenset({"tx_internal_error", "tx_too_early"})
# Never landed and never will: build a new tx (class "rebuild").
_REBUILD: Final = frozenset({"tx_bad_seq", "tx_insufficient_fee"})
# Answers to a re-POST that do not prove the first POST never landed: core sees an applied
# tx's sequence as used and checks time bounds first, and Horizon may not have ingested it.
_AMBIGUOUS_ON_RESUBMIT: Final = frozenset({"tx_bad_seq", "tx_too_late", "tx_insufficient_fee"})
_ONE_PENDING_PER_SOURCE: Final = "operation_submissions_one_pending_per_source"


class TxConfirmed(msgspec.Struct, frozen=True, kw_only=True):
    """The step's transaction is on chain and successful (confirm it with the advance).

    ``reply`` is TW's send reply when this run got one (absent after a lookup).
    """

    tx_hash: str
    reply: SendResult | None = None


class TxRejected(msgspec.Struct, frozen=True, kw_only=True):
    """The step's transaction definitively did not take effect; its row is settled."""

    tx_hash: str
    codes: ResultCodes

    @property
    def reason(self) -> str:
        """The most specific code: the first failing operation's, else the transaction's."""
        failing = [code for code in self.codes.operations if code != "op_success"]
        return failing[0] if failing else self.codes.transaction


class _Rebuild(msgspec.Struct, frozen=True):
    """Internal: the old tx is settled dead; build a fresh one."""

    refused: TxRejected | None = None


class SendRefused(Exception):
    """The submission channel refused the envelope without a Horizon result code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Submits a committed envelope; returns TW's reply when there is one. Raises TransactionFailed
# (Horizon result codes), SendRefused, or ProviderUnavailable / ProviderResponseInvalid.
Sender = Callable[[StepRun, Submission], Awaitable[SendResult | None]]


async def via_horizon(run: StepRun, submission: Submission) -> SendResult | None:
    """Submit straight to Horizon (our own payments and activations)."""
    try:
        await run.deps.network.submit_transaction(
            submission.envelope_xdr, tx_hash=submission.tx_hash
        )
    except TransactionFailed:
        raise
    except ProviderRejected as rejected:
        # transaction_malformed and the like: refused before any ledger.
        raise TransactionFailed(
            str(rejected),
            result_codes=ResultCodes(transaction=rejected.reason or "tx_rejected"),
            result_xdr=None,
            status_code=rejected.status_code or 400,
        ) from rejected
    return None


async def via_escrow(run: StepRun, submission: Submission) -> SendResult | None:
    """Submit through Trustless Work's send-transaction (escrow steps)."""
    escrow = run.deps.escrow
    if escrow is None:
        raise RuntimeError("escrow steps need OperationDeps.escrow")
    signed = SignedTransaction(tx_hash=submission.tx_hash, signed_xdr=submission.envelope_xdr)
    try:
        return await escrow.send_transaction(signed)
    except ProviderRejected as rejected:
        raise SendRefused(rejected.reason or "send_refused") from rejected


TxOutcome = TxConfirmed | TxRejected | StepRetry


def ledger_clock(network: WalletNetwork) -> ChainClock:
    """Chain time from the latest closed ledger: a tx whose max_time is before it is dead."""

    async def now_s() -> int:
        closed_at = (await network.latest_ledger()).closed_at
        return int(datetime.fromisoformat(closed_at).astimezone(UTC).timestamp())

    return now_s


async def _settle(
    run: StepRun, submission: Submission, status: SubmissionStatus, codes: ResultCodes | None
) -> None:
    document = msgspec.to_builtins(codes) if codes is not None else None

    async def settle(conn: asyncpg.Connection) -> None:
        await submissions.settle_submission(conn, submission.tx_hash, status, document)

    await run.write(settle)


async def _persist(run: StepRun, signed: SignedTx) -> Submission | None:
    """Commit the signed tx before it is submitted; ``None`` while the source is busy."""

    async def insert(conn: asyncpg.Connection) -> Submission:
        return await submissions.insert_submission(
            conn,
            run.claim,
            tx_hash=signed.hash,
            envelope_xdr=signed.envelope_xdr,
            max_time_s=signed.max_time,
            source_account=signed.source,
            sequence=signed.sequence,
        )

    try:
        return await run.write(insert)
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name == _ONE_PENDING_PER_SOURCE:
            return None
        raise


async def _refused(
    run: StepRun, submission: Submission, codes: ResultCodes, *, resubmitted: bool
) -> TxOutcome | _Rebuild:
    """Horizon refused or failed the tx: decide by its result code (providers.md 2.6)."""
    code = codes.transaction
    if code in _RETRY_SAME:
        return StepRetry(error={"error": "TransactionDeferred", "reason": code})
    if resubmitted and code in _AMBIGUOUS_ON_RESUBMIT:
        settled = await _dead_or_landed(run, submission)
        return settled or StepRetry(error={"error": "TransactionUnsettled", "reason": code})
    if code == "tx_too_late":
        await _settle(run, submission, SubmissionStatus.EXPIRED, codes)
        return _Rebuild()
    await _settle(run, submission, SubmissionStatus.FAILED, codes)
    if code in _REBUILD:
        return _Rebuild()
    return TxRejected(tx_hash=submission.tx_hash, codes=codes)


async def _look_up(run: StepRun, submission: Submission) -> TxOutcome | None:
    """The hash on chain: its outcome, or ``None`` when Horizon does not know it."""
    info = await run.deps.network.get_transaction(submission.tx_hash)
    if not info.found:
        return None
    if info.successful:
        return TxConfirmed(tx_hash=submission.tx_hash)
    codes = info.result_codes or ResultCodes(transaction="tx_failed")
    await _settle(run, submission, SubmissionStatus.FAILED, codes)
    return TxRejected(tx_hash=submission.tx_hash, codes=codes)


async def _post(
    run: StepRun, submission: Submission, send: Sender, *, resubmitted: bool
) -> TxOutcome | _Rebuild:
    """Submit the committed envelope; an ambiguous answer is settled by a hash lookup.

    ``resubmitted``: the envelope may have been sent before (a resumed step).
    """
    try:
        reply = await send(run, submission)
    except TransactionFailed as failed:
        return await _refused(run, submission, failed.result_codes, resubmitted=resubmitted)
    except SendRefused as refused:
        return await _refused_by_provider(run, submission, refused.reason)
    except (ProviderUnavailable, ProviderResponseInvalid) as unknown:
        if isinstance(unknown, ProviderUnavailable) and unknown.reason == "connection":
            raise  # never left this host: nothing can have landed
        landed = await _look_up(run, submission)
        if landed is None:
            raise  # not (yet) on chain: keep it PENDING and try the same envelope again
        return landed
    return TxConfirmed(tx_hash=submission.tx_hash, reply=reply)


async def _refused_by_provider(
    run: StepRun, submission: Submission, reason: str
) -> TxOutcome | _Rebuild:
    """TW refused the envelope: its on-chain outcome if it landed, else rebuild it."""
    landed = await _look_up(run, submission)
    if landed is not None:
        return landed
    codes = ResultCodes(transaction=reason)
    await _settle(run, submission, SubmissionStatus.FAILED, codes)
    return _Rebuild(refused=TxRejected(tx_hash=submission.tx_hash, codes=codes))


async def _dead_or_landed(run: StepRun, submission: Submission) -> TxOutcome | _Rebuild | None:
    """Settle by hash: landed, or dead once unknown past max_time; ``None``: still in time.

    Only "not found after max_time (+ grace)" proves a tx dead (providers.md 2.7).
    """
    landed = await _look_up(run, submission)
    if landed is not None:
        return landed
    chain_now_s = await run.deps.chain_now_s()
    if chain_now_s > submission.max_time.timestamp() + run.settings.expiry_grace_s:
        # Past max_time the network refuses it (tx_too_late): it can never land.
        await _settle(run, submission, SubmissionStatus.EXPIRED, None)
        return _Rebuild()
    return None


async def _resume(run: StepRun, submission: Submission, send: Sender) -> TxOutcome | _Rebuild:
    """Settle a PENDING submission found on resumption: look the hash up before anything."""
    settled = await _dead_or_landed(run, submission)
    if settled is not None:
        return settled
    # Still in time and unknown: the same envelope again (same hash; Horizon dedupes by hash).
    return await _post(run, submission, send, resubmitted=True)


async def pending_submission(run: StepRun) -> Submission | None:
    """The claimed step's in-flight transaction, if a previous run committed one."""

    async def get(conn: asyncpg.Connection) -> Submission | None:
        return await submissions.get_pending_submission(conn, run.claim)

    return await run.read(get)


async def submit_tx(
    run: StepRun,
    pending: Submission | None,
    build: Callable[[], Awaitable[SignedTx]],
    send: Sender = via_horizon,
) -> TxOutcome:
    """Get the step's transaction on chain exactly once (see the module docstring).

    Args:
        pending: The step's PENDING submission (from :func:`pending_submission`), if any.
        build: Loads what it needs (sequence, clock), then builds and signs a fresh tx.
        send: The channel: Horizon (default) or Trustless Work (:func:`via_escrow`).

    Raises:
        ProviderUnavailable: the outcome is still unknown; the PENDING row stays for later.
    """
    last_refusal: TxRejected | None = None
    for _ in range(run.settings.max_rebuilds + 1):
        if pending is None:
            pending = await _persist(run, await build())
            if pending is None:
                return StepRetry(
                    error={"error": "SourceAccountBusy"}, delay_s=run.settings.source_busy_delay_s
                )
            answer = await _post(run, pending, send, resubmitted=False)
        else:
            answer = await _resume(run, pending, send)
        if not isinstance(answer, _Rebuild):
            return answer
        last_refusal = answer.refused or last_refusal
        pending = None
    if last_refusal is not None:
        # The provider refused every fresh envelope: that is its answer, not a glitch.
        return last_refusal
    return StepRetry(error={"error": "TooManyRebuilds", "step": run.claim.step})
