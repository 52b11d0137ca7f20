"""Durable operations (design.md 5): a worker claims due operations and runs their steps.

An operation of a kind runs an ordered list of :class:`Step` (the registry, see
``flows.operation_steps.STEP_REGISTRY``). The worker never holds a database transaction
across a provider call:

1. claim: ``FOR UPDATE SKIP LOCKED`` + a lease (``next_attempt_at`` pushed out), commit;
2. run the step: provider calls, each database touch in its own short transaction;
3. record the outcome in a new transaction, fenced on the claim ``(step_index, attempts)``:
   done -> effect + next step (claimed at once) or SUCCEEDED; retry -> backoff with jitter;
   failed -> FAILED with the provider's reason.

A worker that dies anywhere leaves the row RUNNING; once the lease passes another worker
claims it and the step resumes from what the database says (for Stellar steps: the committed
hash is looked up first, so nothing is submitted twice).
"""

import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, TypeVar, cast

import asyncpg
import msgspec
from stellar_sdk import Keypair

from common.errors import AppError, ConcurrentUpdate, Conflict
from common.ids import new_id
from flows.queries import operation_submissions as submissions
from flows.queries import operations as queries
from flows.queries.operation_submissions import SubmissionStatus
from flows.queries.operations import Operation, OperationKind
from ledger.db import run_in_transaction
from providers.airtm.port import FiatProvider
from providers.errors import ProviderError, ProviderRejected, ProviderUnavailable
from providers.stellar.port import WalletNetwork
from providers.stellar.wallet_keys import MasterKeyring, SecretSeed
from providers.trustless_work.port import EscrowProvider
from providers.trustless_work.xdr_check import XdrPolicy

__all__ = [
    "EscrowNetwork",
    "LeaseLost",
    "OperationDeps",
    "OperationHook",
    "OperationHooks",
    "OperationWorker",
    "Step",
    "StepDone",
    "StepFailed",
    "StepOutcome",
    "StepRetry",
    "StepRun",
    "WorkerSettings",
    "backoff_delay_s",
    "claim_due",
    "start_operation",
]

_log = logging.getLogger(__name__)
T = TypeVar("T")
Effect = Callable[[asyncpg.Connection], Awaitable[None]]
# Seconds of chain time ("now" for time bounds and for deciding a tx expired).
ChainClock = Callable[[], Awaitable[int]]
_LEASE_S: Final = 120.0


class LeaseLost(Conflict):
    """Another worker claimed the operation since our claim; our step result is dropped."""


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Claim lease and retry timing.

    ``lease_s`` must exceed a step's worst case (Horizon submit 35 s + lookups).
    """

    lease_s: float = _LEASE_S
    backoff_base_s: float = 1.0
    backoff_max_s: float = 300.0
    # Pause when another tx from the same source account is in flight.
    source_busy_delay_s: float = 2.0
    # Chain seconds past max_time before a missing hash counts as dead (one ledger and more).
    expiry_grace_s: int = 10
    # Fresh builds per step run after definitive rejections (bad seq, expired, fee).
    max_rebuilds: int = 3


class EscrowNetwork(msgspec.Struct, frozen=True, kw_only=True):
    """Pinned facts of the Trustless Work deployment (providers.md 1.10, 1.11), from config."""

    deployer_contract_id: str
    trustless_work_fee_address: str
    policy: XdrPolicy


class OperationDeps(msgspec.Struct, frozen=True, kw_only=True):
    """What steps need from the outside world. Secrets stay sealed until a step signs."""

    network: WalletNetwork
    # Escrow and fiat providers: only the operation kinds that use them need them.
    escrow: EscrowProvider | None = None
    escrow_network: EscrowNetwork | None = None
    fiat: FiatProvider | None = None
    keyring: MasterKeyring
    # The platform (funding/sponsor) account's seed: the source of activations.
    platform_seed: SecretSeed
    chain_now_s: ChainClock
    passphrase: str
    usdc_issuer: str
    fee_float: int = 10_000_000
    tx_timeout_s: int = 60

    def platform(self) -> Keypair:
        """The platform keypair, built just before signing."""
        return self.platform_seed.keypair()


class StepDone(msgspec.Struct, frozen=True, kw_only=True):
    """The step finished: ``effect`` and ``confirm_hash`` commit with the move to the next step."""

    effect: Effect | None = None
    # The step's submission to mark CONFIRMED in the same transaction as the advance.
    confirm_hash: str | None = None
    confirm_codes: dict[str, Any] | None = None
    payload_patch: dict[str, Any] = msgspec.field(default_factory=dict)


class StepRetry(msgspec.Struct, frozen=True, kw_only=True):
    """Try the step again later (transient failure, outcome not known yet)."""

    error: dict[str, Any]
    delay_s: float | None = None


class StepFailed(msgspec.Struct, frozen=True, kw_only=True):
    """The step was refused for good: the operation ends FAILED with ``error``."""

    error: dict[str, Any]


StepOutcome = StepDone | StepRetry | StepFailed

# Runs in the transaction that ends an operation (SUCCEEDED or FAILED), with the ended row.
OperationHook = Callable[[asyncpg.Connection, Operation], Awaitable[None]]


class OperationHooks(msgspec.Struct, frozen=True, kw_only=True):
    """What a kind's owner does when an operation of that kind ends, atomically with the end.

    The flows that start operations (orders, withdrawals) post their ledger transfers, move
    their state machines and write their events here, so status and money never disagree.
    """

    on_succeeded: OperationHook | None = None
    on_failed: OperationHook | None = None


class StepRun:
    """One run of one step of a claimed operation: its claim, dependencies and DB access."""

    def __init__(
        self, pool: asyncpg.Pool, deps: OperationDeps, claim: Operation, settings: WorkerSettings
    ) -> None:
        self.pool = pool
        self.deps = deps
        self.claim = claim
        self.settings = settings

    async def read(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run a read outside any transaction (single statements see committed data)."""
        async with self.pool.acquire() as proxy:
            # The pool's proxy forwards every Connection method; queries take Connection.
            return await work(cast(asyncpg.Connection, proxy))

    async def write(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``work`` in a short transaction, only if our claim still holds.

        Raises:
            LeaseLost: another worker claimed the operation since.
        """

        async def fenced(conn: asyncpg.Connection) -> T:
            if await queries.lock_claimed(conn, self.claim) is None:
                raise LeaseLost(operation_id=self.claim.id)
            return await work(conn)

        return await run_in_transaction(self.pool, fenced)


class Step(msgspec.Struct, frozen=True):
    """A named step function; the registry maps each kind to its ordered steps."""

    name: str
    run: Callable[[StepRun], Awaitable[StepOutcome]]


Registry = Mapping[OperationKind, Sequence[Step]]


def backoff_delay_s(
    attempts: int, settings: WorkerSettings, retry_after_s: float | None = None
) -> float:
    """Exponential backoff with equal jitter (never 0), at least the provider's Retry-After."""
    cap = min(settings.backoff_max_s, settings.backoff_base_s * 2.0 ** max(attempts - 1, 0))
    # Jitter spreads out workers that failed together; the half floor keeps delays growing.
    delay = cap / 2 + random.uniform(0, cap / 2)  # noqa: S311
    return max(delay, retry_after_s or 0.0)


def error_document(error: BaseException) -> dict[str, Any]:
    """A JSON-safe description of a step failure (codes and reasons, never secrets)."""
    document: dict[str, Any] = {"error": type(error).__name__, "message": str(error)}
    if isinstance(error, ProviderError):
        document.update(provider=error.provider, reason=error.reason, status=error.status_code)
    if isinstance(error, AppError):
        document["code"] = error.code
    return document


async def start_operation(
    conn: asyncpg.Connection,
    registry: Registry,
    *,
    marketplace_id: str,
    kind: OperationKind,
    resource_type: str,
    resource_id: str,
    payload: dict[str, Any],
) -> Operation:
    """Start an operation (due at once), or return the one already running on the resource.

    Raises:
        ConcurrentUpdate: the running one ended meanwhile; ``run_in_transaction`` retries.
    """
    inserted = await queries.insert_operation(
        conn,
        marketplace_id=marketplace_id,
        operation_id=new_id("op_"),
        kind=kind,
        resource_type=resource_type,
        resource_id=resource_id,
        payload=payload,
        step=registry[kind][0].name,
    )
    if inserted is not None:
        return inserted
    running = await queries.get_running_operation(
        conn, marketplace_id, kind, resource_type, resource_id
    )
    if running is None:
        # It ended between our insert and this read: run the whole block again.
        raise ConcurrentUpdate(operation_kind=kind.value, resource_id=resource_id)
    return running


async def claim_due(
    conn: asyncpg.Connection, limit: int, *, lease_s: float = _LEASE_S
) -> list[Operation]:
    """Claim up to ``limit`` due operations; the caller commits before running them."""
    return await queries.claim_due(conn, limit, lease_s)


class OperationWorker:
    """Claims due operations and runs their steps; any number may run side by side."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        deps: OperationDeps,
        registry: Registry,
        settings: WorkerSettings | None = None,
        hooks: Mapping[OperationKind, OperationHooks] | None = None,
    ) -> None:
        self._pool = pool
        self._deps = deps
        self._registry = registry
        self._settings = settings or WorkerSettings()
        self._hooks = hooks or {}

    async def run_once(self, limit: int = 10) -> int:
        """Claim and run up to ``limit`` due operations, one claim at a time.

        Claiming one by one starts each lease when its work starts, so a slow operation
        never eats the lease of the ones queued behind it. Returns how many were claimed.
        """

        async def claim(conn: asyncpg.Connection) -> list[Operation]:
            return await claim_due(conn, 1, lease_s=self._settings.lease_s)

        for count in range(limit):
            claimed = await run_in_transaction(self._pool, claim)
            if not claimed:
                return count
            await self.run_operation(claimed[0])
        return limit

    async def run_operation(self, claim: Operation) -> Operation | None:
        """Run steps of a claimed operation until it ends, waits, or the lease is lost."""
        current: Operation | None = claim
        while current is not None:
            outcome = await self._run_step(current)
            if outcome is None:
                return None
            try:
                recorded = await self._record_outcome(current, outcome)
            except LeaseLost:
                _log.warning("operation %s: lease lost, result dropped", current.id)
                return None
            except Exception as error:
                await self._park(current, error)
                return None
            if not isinstance(outcome, StepDone) or recorded.status != "RUNNING":
                return recorded
            current = recorded
        return None

    async def _park(self, claim: Operation, error: Exception) -> None:
        """Recording a step's result raised (an end hook's posting or transition refused).

        That transaction rolled back, step result included. Instead of re-running the step at
        every lease expiry, record the error and back off like any retry: the operation stays
        RUNNING and visible (``last_error``, the stuck-operations alert), and when it runs again
        the step settles by lookup before the hook is retried.
        """
        _log.exception("operation %s: recording %s raised; parked", claim.id, claim.step)
        parked = StepRetry(error={**error_document(error), "phase": "record"})
        try:
            await self._record_outcome(claim, parked)
        except LeaseLost:
            _log.warning("operation %s: lease lost while parking", claim.id)

    async def _run_step(self, claim: Operation) -> StepOutcome | None:
        steps = self._registry.get(claim.kind, ())
        if claim.step_index >= len(steps) or steps[claim.step_index].name != claim.step:
            return StepFailed(error={"error": "UnknownStep", "step": claim.step})
        run = StepRun(self._pool, self._deps, claim, self._settings)
        try:
            return await steps[claim.step_index].run(run)
        except LeaseLost:
            _log.warning("operation %s: lease lost during %s", claim.id, claim.step)
            return None
        except ProviderUnavailable as error:
            return StepRetry(error=error_document(error), delay_s=error.retry_after_s)
        except ProviderRejected as error:
            return StepFailed(error=error_document(error))
        except Exception as error:
            # A bug or an invalid provider answer: keep the operation, retry later, alert.
            _log.exception("operation %s: step %s raised", claim.id, claim.step)
            return StepRetry(error=error_document(error))

    async def _record_outcome(self, claim: Operation, outcome: StepOutcome) -> Operation:
        async def record(conn: asyncpg.Connection) -> Operation:
            return await self._record(conn, claim, outcome)

        return await run_in_transaction(self._pool, record)

    async def _record(
        self, conn: asyncpg.Connection, claim: Operation, outcome: StepOutcome
    ) -> Operation:
        if isinstance(outcome, StepDone):
            recorded = await self._advance(conn, claim, outcome)
        elif isinstance(outcome, StepRetry):
            delay_s = backoff_delay_s(claim.attempts, self._settings, outcome.delay_s)
            recorded = await queries.schedule_retry(
                conn, claim, delay_s=delay_s, error=outcome.error
            )
        else:
            _log.warning("operation %s failed at %s: %s", claim.id, claim.step, outcome.error)
            recorded = await queries.fail_operation(conn, claim, error=outcome.error)
        if recorded is None:
            raise LeaseLost(operation_id=claim.id)
        await self._run_hook(conn, recorded)
        return recorded

    async def _run_hook(self, conn: asyncpg.Connection, ended: Operation) -> None:
        """Call the kind's hook when the operation just ended, in the same transaction."""
        hooks = self._hooks.get(ended.kind)
        if hooks is None or ended.status == "RUNNING":
            return
        hook = hooks.on_succeeded if ended.status == "SUCCEEDED" else hooks.on_failed
        if hook is not None:
            await hook(conn, ended)

    async def _advance(
        self, conn: asyncpg.Connection, claim: Operation, outcome: StepDone
    ) -> Operation | None:
        if await queries.lock_claimed(conn, claim) is None:
            return None
        if outcome.confirm_hash is not None:
            await submissions.settle_submission(
                conn,
                outcome.confirm_hash,
                SubmissionStatus.CONFIRMED,
                outcome.confirm_codes,
            )
        if outcome.effect is not None:
            await outcome.effect(conn)
        steps = self._registry[claim.kind]
        following = claim.step_index + 1
        return await queries.advance_step(
            conn,
            claim,
            next_step=steps[following].name if following < len(steps) else None,
            payload_patch=outcome.payload_patch,
            lease_s=self._settings.lease_s,
        )
