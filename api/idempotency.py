"""Idempotent mutations (api.md 1.8): one helper, :func:`run_mutation`, for every POST handler.

1. The request claims its ``Idempotency-Key`` (per marketplace; the master key has its own
   namespace) with an IN_FLIGHT record holding a 60 s lease, committed on its own (without
   waiting for its WAL flush: see ``_Database.claim``). Finding a
   record instead: another fingerprint is 409 ``IDEMPOTENCY_KEY_REUSED``; a stored reply is
   replayed with ``Idempotency-Replayed: true``; a live lease is 409
   ``IDEMPOTENCY_KEY_IN_PROGRESS`` (``Retry-After: 1``); an expired lease is taken over.
2. ``work(conn)`` runs in one transaction (``ledger.db.run_in_transaction``) that first locks
   the record (proving the lease is still ours) and, after ``work`` returns, stores the encoded
   reply in the same record: the effect and the reply commit together or not at all.
3. A 404/409/422 raised by ``work`` is stored (in a fresh transaction, since the effect rolled
   back) and replayed later; anything else (400, 5xx, unexpected) releases the record.

Long-running actions pass ``finish``: the work transaction then only marks the effect as
committed, ``finish(result)`` runs outside any transaction (waiting for a durable operation)
and its :class:`Reply` is stored afterwards. If that request dies meanwhile, a retry after the
lease runs ``recover(conn)`` (default: ``work`` again), which must answer from current state.

Under group commit (``Settings.group_commit_max`` > 0) each of those transactions is a member of
a group shared with the marketplace's concurrent requests (``ledger.group_commit``): same
atomicity per request, one COMMIT per group.
"""

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Final, NamedTuple, TypeVar

import asyncpg
import msgspec
from litestar import Request, Response

from api.auth import Caller
from api.database import connection
from api.errors import JSON_MEDIA_TYPE, error_reply, is_stored_error
from api.metrics import IDEMPOTENCY_CONFLICTS, IDEMPOTENCY_REPLAYS
from api.paths import canonical_path
from api.queries import idempotency as records
from api.settings import Settings
from common.errors import AppError, IdempotencyKeyInProgress, IdempotencyKeyReused
from flows.audit import AuditContext, audit_context
from ledger.db import run_in_transaction
from ledger.group_commit import GroupCommitter

__all__ = ["Reply", "purge_expired", "purge_periodically", "run_audited", "run_mutation"]

logger = logging.getLogger("offerhub.api.idempotency")

T = TypeVar("T")
A = TypeVar("A")
R = TypeVar("R")
_CLAIM_ATTEMPTS: Final = 3
_PURGE_BATCH: Final = 1000


class Reply(msgspec.Struct, frozen=True):
    """A success answer chosen by the handler: body (a Struct), status and ``Location``."""

    body: Any
    status_code: int = 200
    location: str | None = None


class _Encoded(NamedTuple):
    status_code: int
    body: bytes
    location: str | None
    stored_body: bytes  # what a replay returns: the body, unless a secret was redacted


class _Claim(NamedTuple):
    namespace: str
    key: str
    token: str


Location = Callable[[Any], str] | str | None


def _encode(
    result: Any, status_code: int, location: Location, redact: Callable[[Any], Any] | None
) -> _Encoded:
    if isinstance(result, Reply):
        body, status_code, where = result.body, result.status_code, result.location
    else:
        body, where = result, location(result) if callable(location) else location
    encoded = msgspec.json.encode(body)
    stored = msgspec.json.encode(redact(body)) if redact is not None else encoded
    return _Encoded(status_code, encoded, where, stored)


def _response(encoded: _Encoded, *, replayed: bool = False) -> Response[Any]:
    headers = {"Location": encoded.location} if encoded.location else {}
    if replayed:
        headers["Idempotency-Replayed"] = "true"
    return Response(
        encoded.body, status_code=encoded.status_code, headers=headers, media_type=JSON_MEDIA_TYPE
    )


async def _fingerprint(request: Request[Any, Any, Any]) -> str:
    """Method + canonical path + SHA-256 of the canonical body (sorted keys, no whitespace)."""
    body = await request.body()
    value = msgspec.json.decode(body) if body else {}
    body_sha = hashlib.sha256(msgspec.json.encode(value, order="sorted")).hexdigest()
    text = f"{request.method}\n{canonical_path(request)}\n{body_sha}"
    return hashlib.sha256(text.encode()).hexdigest()


class _Database(NamedTuple):
    """Where a request's transactions run: alone on the pool, or grouped per marketplace."""

    pool: asyncpg.Pool
    committer: GroupCommitter | None
    namespace: str

    async def transact(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``work`` in a transaction; shared with the namespace's others under group commit."""
        if self.committer is None:
            return await run_in_transaction(self.pool, work)
        return await self.committer.run(self.namespace, work)

    async def claim(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``work`` alone, committed without waiting for its WAL flush.

        A claim promises the client nothing: if it is lost in a crash, the retry claims again.
        It cannot be lost while an effect that follows it survives, since the effect's
        synchronous commit flushes all earlier WAL. So the claim needs no flush of its own, and
        it does not queue behind the group of the marketplace (a duplicate of a request whose
        effect is running is told 409 at once, as without group commit).
        """

        async def unflushed(conn: asyncpg.Connection) -> T:
            await conn.execute("SET LOCAL synchronous_commit = off")
            return await work(conn)

        return await run_in_transaction(self.pool, unflushed)


async def _begin(
    database: _Database, settings: Settings, key: str, fingerprint: str
) -> _Claim | Response[Any]:
    """Claim the key, or answer from its record (replay, or one of the two 409s)."""
    namespace = database.namespace

    async def claim_or_answer(conn: asyncpg.Connection) -> _Claim | Response[Any]:
        for _ in range(_CLAIM_ATTEMPTS):
            claim = _Claim(namespace, key, secrets.token_hex(16))
            if await records.insert_claim(
                conn,
                namespace=namespace,
                key=key,
                fingerprint=fingerprint,
                claim=claim.token,
                lease_s=settings.idempotency_lease_s,
                retention_hours=settings.idempotency_retention_hours,
            ):
                return claim
            record = await records.get_record(conn, namespace, key)
            if record is None:
                continue  # released or purged between the two statements: claim again
            if record.fingerprint != fingerprint:
                raise IdempotencyKeyReused(idempotency_key=key)
            if record.status == "DONE":
                assert record.response_status is not None
                assert record.response_body is not None
                body = record.response_body
                stored = _Encoded(record.response_status, body, record.response_location, body)
                return _response(stored, replayed=True)
            if (
                record.lease_expired
                and await records.take_over(
                    conn, namespace, key, claim.token, settings.idempotency_lease_s
                )
                is not None
            ):
                return claim
            raise IdempotencyKeyInProgress(idempotency_key=key)
        raise IdempotencyKeyInProgress(idempotency_key=key)

    return await database.claim(claim_or_answer)


async def _store(database: _Database, claim: _Claim, encoded: _Encoded) -> None:
    async def store(conn: asyncpg.Connection) -> None:
        await records.complete(
            conn,
            namespace=claim.namespace,
            key=claim.key,
            claim=claim.token,
            status_code=encoded.status_code,
            body=encoded.stored_body,
            location=encoded.location,
        )

    await database.transact(store)


async def _release(pool: asyncpg.Pool, claim: _Claim) -> None:
    try:
        async with connection(pool) as conn:
            await records.release(conn, claim.namespace, claim.key, claim.token)
    except (OSError, asyncpg.PostgresError):
        # The lease still expires: a retry after it runs the request again.
        logger.warning("could not release idempotency key %r", claim.key, exc_info=True)


async def _execute(
    database: _Database,
    claim: _Claim,
    *,
    work: Callable[[asyncpg.Connection], Awaitable[T]],
    recover: Callable[[asyncpg.Connection], Awaitable[T]] | None,
    finish: Callable[[T], Awaitable[Reply]] | None,
    encode: Callable[[Any], _Encoded],
) -> _Encoded:
    async def transaction(conn: asyncpg.Connection) -> tuple[T, _Encoded | None]:
        committed = await records.lock_claim(conn, claim.namespace, claim.key, claim.token)
        if committed is None:  # our lease ran out and another request took the key over
            raise IdempotencyKeyInProgress(idempotency_key=claim.key)
        result = await (recover if committed and recover is not None else work)(conn)
        if finish is not None:
            await records.mark_effect_committed(conn, claim.namespace, claim.key, claim.token)
            return result, None
        encoded = encode(result)
        stored = await records.complete(
            conn,
            namespace=claim.namespace,
            key=claim.key,
            claim=claim.token,
            status_code=encoded.status_code,
            body=encoded.stored_body,
            location=encoded.location,
        )
        assert stored, "the record is locked by this transaction"
        return result, encoded

    result, encoded = await database.transact(transaction)
    if encoded is None:
        assert finish is not None
        encoded = encode(await finish(result))
        await _store(database, claim, encoded)
    return encoded


def _in_audit_context(
    call: Callable[[A], Awaitable[R]], context: AuditContext
) -> Callable[[A], Awaitable[R]]:
    """``call`` with the request's audit context set (``flows.audit``), only while it runs."""

    async def contextual(argument: A) -> R:
        with audit_context(context):
            return await call(argument)

    return contextual


def _audit_context_of(request: Request[Any, Any, Any], caller: Caller) -> AuditContext:
    return AuditContext(
        request_id=caller.request_id,
        idempotency_key=request.headers.get("idempotency-key"),
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


async def run_audited(
    request: Request[Any, Any, Any],
    caller: Caller,
    work: Callable[[asyncpg.Connection], Awaitable[T]],
) -> T:
    """Run ``work(conn)`` in one transaction with the request's audit context, for a mutation
    that is not idempotent by key and answers without a body (a DELETE answering 204).
    """
    pool: asyncpg.Pool = request.app.state.pool
    return await run_in_transaction(
        pool, _in_audit_context(work, _audit_context_of(request, caller))
    )


async def run_mutation(
    request: Request[Any, Any, Any],
    caller: Caller,
    work: Callable[[asyncpg.Connection], Awaitable[T]],
    *,
    status_code: int = 200,
    location: Callable[[T], str] | str | None = None,
    finish: Callable[[T], Awaitable[Reply]] | None = None,
    recover: Callable[[asyncpg.Connection], Awaitable[T]] | None = None,
    redact: Callable[[Any], Any] | None = None,
) -> Response[Any]:
    """Run ``work(conn)`` exactly once per ``Idempotency-Key`` and answer with its result.

    Args:
        request: The POST (or DELETE, which ignores idempotency) being handled.
        caller: Its caller; the marketplace (or master) namespace of the key.
        work: The database effect, run in one transaction; returns a response Struct, or a
            :class:`Reply` to choose the status and ``Location`` per result. Raise AppErrors.
        status_code: Status of a Struct result (201 for creations).
        location: ``Location`` of a Struct result: a string, or a function of the result.
        finish: For long-running actions: awaited outside the transaction with ``work``'s
            result; its Reply is the answer.
        recover: Run instead of ``work`` when taking over a request that died after its effect
            committed but before its reply was stored.
        redact: Maps the answer's body to what is stored for replays, when it carries a secret
            shown only once (a created API key, a webhook secret).

    Returns:
        The JSON answer (a replay carries ``Idempotency-Replayed: true``).
    """
    pool: asyncpg.Pool = request.app.state.pool
    # Audit entries written by the work carry the request id, key, address and user agent.
    context = _audit_context_of(request, caller)
    work = _in_audit_context(work, context)
    recover = None if recover is None else _in_audit_context(recover, context)
    finish = None if finish is None else _in_audit_context(finish, context)

    def encode(result: Any) -> _Encoded:
        return _encode(result, status_code, location, redact)

    if request.method != "POST":
        return _response(encode(await run_in_transaction(pool, work)))
    settings: Settings = request.app.state.settings
    key = request.headers["idempotency-key"]
    database = _Database(pool, request.app.state.group_commit, caller.namespace)
    try:
        begun = await _begin(database, settings, key, await _fingerprint(request))
    except (IdempotencyKeyReused, IdempotencyKeyInProgress) as error:
        reason = "reused" if isinstance(error, IdempotencyKeyReused) else "in_progress"
        IDEMPOTENCY_CONFLICTS.labels(reason).inc()
        raise
    if isinstance(begun, Response):
        IDEMPOTENCY_REPLAYS.inc()
        return begun
    try:
        return _response(
            await _execute(
                database, begun, work=work, recover=recover, finish=finish, encode=encode
            )
        )
    except AppError as error:
        if is_stored_error(error) and not isinstance(
            error, IdempotencyKeyInProgress | IdempotencyKeyReused
        ):
            reply = error_reply(error)
            stored = _Encoded(reply.status_code, reply.body, None, reply.body)
            await _store(database, begun, stored)
        else:
            await _release(pool, begun)
        raise
    except Exception:
        await _release(pool, begun)
        raise


async def purge_expired(conn: asyncpg.Connection) -> int:
    """Delete every idempotency record past its retention; returns how many were deleted."""
    total = 0
    while True:
        deleted = await records.purge_expired_batch(conn, _PURGE_BATCH)
        total += deleted
        if deleted < _PURGE_BATCH:
            return total


async def purge_periodically(pool: asyncpg.Pool, interval_s: float) -> None:
    """Background task of the app's lifespan: purge expired records every ``interval_s``."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            async with connection(pool) as conn:
                deleted = await purge_expired(conn)
            if deleted:
                logger.info("purged %d expired idempotency records", deleted)
        except (OSError, asyncpg.PostgresError):
            logger.warning("idempotency purge failed; retrying next interval", exc_info=True)
