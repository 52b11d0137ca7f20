"""Withdrawals (api.md 3.8, 5.6): to a Stellar address (crypto) or an Airtm account.

Creation holds the amount and starts the payment: crypto reads the destination on Horizon
before the transaction (``create_withdrawal(destination_account=...)``), then waits for the
WITHDRAWAL_PAYMENT operation (201 final, 202 in flight); Airtm starts AIRTM_PAYOUT and answers
once the payout exists (``WITHDRAWAL_CREATED``) or, with ``commit``, once it is committed.
Refresh reads Airtm's payout or looks the payment up on Horizon; cancel cancels the payout at
Airtm first. ``api.withdrawals_payouts`` holds the provider side. Ids of another marketplace or
of the wrong prefix answer 404 ``WITHDRAWAL_NOT_FOUND``.
"""

from typing import Any, Final

import asyncpg
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody
from stellar_sdk import StrKey

from api.auth import CurrentCaller, requires
from api.database import read
from api.idempotency import Reply, run_mutation
from api.orders_support import choice_filter, status_filter, time_filter
from api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, page_of, page_request
from api.provider_errors import provider_call
from api.queries import withdrawals as api_queries
from api.runtime import get_runtime
from api.schemas import amount_minor
from api.schemas.withdrawals import (
    Withdrawal,
    WithdrawalCancel,
    WithdrawalCreate,
    withdrawal_out,
)
from api.settings import Settings
from api.user_rate_limits import check_user_rate
from api.withdrawals_payouts import (
    PAST_COMMIT,
    PAST_CREATE,
    airtm_reply,
    cancel_at_airtm,
    crypto_reply,
    refresh_withdrawal,
    withdrawal_location,
)
from common.errors import IdempotencyKeyReused, InvalidTransition
from common.ids import derived_id
from flows import withdrawals
from flows.queries import withdrawals as withdrawal_queries
from flows.queries.operations import OperationKind, get_running_operation
from flows.withdrawals import Withdrawal as WithdrawalRow
from flows.withdrawals import WithdrawalStarted
from ledger.db import run_in_transaction
from providers.stellar.port import AccountState
from statemachines import WithdrawalStatus

__all__ = [
    "WITHDRAWALS_ROUTES",
    "cancel_withdrawal",
    "commit_withdrawal",
    "create_withdrawal",
    "get_withdrawal",
    "list_withdrawals",
    "refresh_withdrawal_route",
]

_PATH: Final = "/withdrawals/{withdrawal_id:str}"
_STATUSES: Final = tuple(status.value for status in WithdrawalStatus)
_DESTINATION_TYPES: Final = ("crypto", "airtm_balance")


async def _destination_account(
    request: Request[Any, Any, Any], address: str | None
) -> AccountState | None:
    """Horizon's view of a crypto destination, read before the transaction (``None``: skip)."""
    if address is None or not StrKey.is_valid_ed25519_public_key(address):
        return None  # the domain answers required / invalid_address
    async with provider_call():
        account: AccountState = await get_runtime(request).network.get_account(address)
    return account


async def _started(conn: asyncpg.Connection, tenant: str, row: WithdrawalRow) -> WithdrawalStarted:
    """A withdrawal whose effect committed earlier, with its newest operation."""
    operation = await api_queries.latest_operation(conn, tenant, row.id)
    return WithdrawalStarted(withdrawal=row, operation=operation)


@post("/withdrawals", guards=[requires("write")], status_code=201, tags=["withdrawals"])
async def create_withdrawal(
    request: Request[Any, Any, Any], caller: CurrentCaller, data: JSONBody[WithdrawalCreate]
) -> Response[Withdrawal]:
    """Hold the amount and pay it out: crypto 201 final / 202 in flight, Airtm 201."""
    runtime = get_runtime(request)
    crypto = data.destination_type == "crypto"
    if not crypto:
        runtime.fiat  # noqa: B018 - 503 PROVIDER_UNAVAILABLE before anything is written
    minor = amount_minor(data.amount)
    destination = await _destination_account(request, data.destination_ref) if crypto else None

    key = request.headers["idempotency-key"]
    withdrawal_id = derived_id("wd_", caller.tenant, "POST /withdrawals", key)
    settings: Settings = request.app.state.settings

    async def work(conn: asyncpg.Connection) -> WithdrawalStarted:
        existing = await withdrawal_queries.get_withdrawal(conn, caller.tenant, withdrawal_id)
        if existing is not None:
            # A takeover, or a retry after a 5xx released the key: the committed withdrawal.
            if existing.user_id != data.user_id or existing.amount_minor != minor:
                raise IdempotencyKeyReused(idempotency_key=key)
            return await _started(conn, caller.tenant, existing)
        await check_user_rate(
            conn,
            kind="withdrawals",
            marketplace_id=caller.tenant,
            user_id=data.user_id,
            per_minute=settings.withdrawals_per_user_per_min,
        )
        return await withdrawals.create_withdrawal(
            conn,
            runtime.registry,
            marketplace_id=caller.tenant,
            user_id=data.user_id,
            amount_minor=minor,
            destination_type=data.destination_type,
            destination_ref=data.destination_ref,
            memo=data.memo,
            commit=bool(data.commit) and not crypto,
            description=data.description,
            destination_account=destination,
            actor=caller.actor,
            withdrawal_id=withdrawal_id,
        )

    async def finish(started: WithdrawalStarted) -> Reply:
        row, operation = started.withdrawal, started.operation
        if operation is None:
            return Reply(withdrawal_out(row), 201, withdrawal_location(row.id))
        if row.destination_type == "crypto":
            return await crypto_reply(runtime, row, operation)
        past = PAST_COMMIT if row.committed else PAST_CREATE
        return await airtm_reply(
            runtime, row, operation, caller.actor, past_step=past, done_status=201
        )

    return await run_mutation(request, caller, work, finish=finish)


@get("/withdrawals", guards=[requires("read")], tags=["withdrawals"])
async def list_withdrawals(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    *,
    user_id: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    destination_type: FromQuery[str | None] = None,
    created_after: FromQuery[str | None] = None,
    created_before: FromQuery[str | None] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[Withdrawal]:
    """List withdrawals, newest first; filters combine with AND."""
    statuses = status_filter("status", status, _STATUSES)
    kind = choice_filter("destination_type", destination_type, _DESTINATION_TYPES)
    after = time_filter("created_after", created_after)
    before = time_filter("created_before", created_before)
    filters = {
        "user_id": user_id,
        "status": statuses,
        "destination_type": kind,
        "created_after": None if after is None else after.isoformat(),
        "created_before": None if before is None else before.isoformat(),
    }
    position = page_request(request, limit=limit, cursor=cursor, filters=filters)

    async def fetch(conn: asyncpg.Connection) -> Page[Withdrawal]:
        page = await withdrawal_queries.list_withdrawals(
            conn,
            caller.tenant,
            user_id=user_id,
            statuses=statuses,
            destination_type=kind,
            created_after=after,
            created_before=before,
            after=position.after,
            limit=position.fetch_limit,
        )
        return page_of(position, page.withdrawals, withdrawal_out)

    return await read(request, fetch)


@get(_PATH, guards=[requires("read")], tags=["withdrawals"])
async def get_withdrawal(
    request: Request[Any, Any, Any], caller: CurrentCaller, withdrawal_id: FromPath[str]
) -> Withdrawal:
    """One withdrawal."""

    async def fetch(conn: asyncpg.Connection) -> Withdrawal:
        row = await withdrawals.get_withdrawal(
            conn, marketplace_id=caller.tenant, withdrawal_id=withdrawal_id
        )
        return withdrawal_out(row)

    return await read(request, fetch)


@post(f"{_PATH}/commit", guards=[requires("write")], status_code=200, tags=["withdrawals"])
async def commit_withdrawal(
    request: Request[Any, Any, Any], caller: CurrentCaller, withdrawal_id: FromPath[str]
) -> Response[Withdrawal]:
    """Commit an Airtm withdrawal in ``WITHDRAWAL_CREATED``: the payout is sent."""
    runtime = get_runtime(request)
    runtime.fiat  # noqa: B018 - 503 before the key is claimed

    async def work(conn: asyncpg.Connection) -> WithdrawalStarted:
        return await withdrawals.commit_withdrawal(
            conn,
            runtime.registry,
            marketplace_id=caller.tenant,
            withdrawal_id=withdrawal_id,
            actor=caller.actor,
        )

    async def recover(conn: asyncpg.Connection) -> WithdrawalStarted:
        row = await withdrawals.get_withdrawal(
            conn, marketplace_id=caller.tenant, withdrawal_id=withdrawal_id
        )
        return await _started(conn, caller.tenant, row)

    async def finish(started: WithdrawalStarted) -> Reply:
        row, operation = started.withdrawal, started.operation
        if operation is None:
            return Reply(withdrawal_out(row))
        return await airtm_reply(
            runtime, row, operation, caller.actor, past_step=PAST_COMMIT, done_status=200
        )

    return await run_mutation(request, caller, work, finish=finish)


@post(f"{_PATH}/refresh", guards=[requires("write")], status_code=200, tags=["withdrawals"])
async def refresh_withdrawal_route(
    request: Request[Any, Any, Any], caller: CurrentCaller, withdrawal_id: FromPath[str]
) -> Response[Withdrawal]:
    """Read the payout at Airtm, or the payment on Horizon, and apply what it says."""
    runtime = get_runtime(request)

    async def work(conn: asyncpg.Connection) -> WithdrawalRow:
        return await withdrawals.get_withdrawal(
            conn, marketplace_id=caller.tenant, withdrawal_id=withdrawal_id
        )

    async def finish(row: WithdrawalRow) -> Reply:
        return Reply(withdrawal_out(await refresh_withdrawal(runtime, row, caller.actor)))

    return await run_mutation(request, caller, work, finish=finish)


def _cancel_refused(row: WithdrawalRow, allowed: list[str], why: str) -> InvalidTransition:
    return InvalidTransition(
        why,
        resource_type="withdrawal",
        resource_id=row.id,
        current_state=row.status,
        allowed_states=allowed,
    )


async def _check_cancelable(conn: asyncpg.Connection, row: WithdrawalRow) -> None:
    """409 ``INVALID_STATE`` unless the withdrawal may be canceled now (api.md 5.6)."""
    allowed = [WithdrawalStatus.WITHDRAWAL_CREATED.value]
    if row.destination_type == "airtm_balance":
        allowed.append(WithdrawalStatus.WITHDRAWAL_PENDING_USER_ACTION.value)
    if row.status not in allowed:
        raise _cancel_refused(row, allowed, f"a withdrawal in {row.status} cannot be canceled")
    if row.destination_type == "airtm_balance" and row.status == allowed[0]:
        running = await get_running_operation(
            conn, row.marketplace_id, OperationKind.AIRTM_PAYOUT, "withdrawal", row.id
        )
        if running is not None:
            # Cancelling now would race the payout's creation at Airtm.
            raise _cancel_refused(row, [], "the Airtm payout is still being created")


@post(f"{_PATH}/cancel", guards=[requires("write")], status_code=200, tags=["withdrawals"])
async def cancel_withdrawal(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    withdrawal_id: FromPath[str],
    data: JSONBody[WithdrawalCancel | None] = None,
) -> Response[Withdrawal]:
    """Cancel the payout at Airtm (if any), then the withdrawal: its hold is released."""
    runtime = get_runtime(request)
    reason = data.reason if data is not None else None

    async def work(conn: asyncpg.Connection) -> WithdrawalRow:
        row = await withdrawals.get_withdrawal(
            conn, marketplace_id=caller.tenant, withdrawal_id=withdrawal_id
        )
        await _check_cancelable(conn, row)
        return row

    async def finish(row: WithdrawalRow) -> Reply:
        if row.destination_type == "airtm_balance":
            await cancel_at_airtm(runtime, row, caller.actor)

        async def cancel(conn: asyncpg.Connection) -> WithdrawalRow:
            return await withdrawals.cancel_withdrawal(
                conn,
                marketplace_id=caller.tenant,
                withdrawal_id=row.id,
                reason=reason,
                actor=caller.actor,
            )

        return Reply(withdrawal_out(await run_in_transaction(runtime.pool, cancel)))

    return await run_mutation(request, caller, work, finish=finish)


WITHDRAWALS_ROUTES: Final[tuple[HTTPRouteHandler, ...]] = (
    create_withdrawal,
    list_withdrawals,
    get_withdrawal,
    commit_withdrawal,
    refresh_withdrawal_route,
    cancel_withdrawal,
)
