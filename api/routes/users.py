"""Users, their wallets and balances (api.md 3.3, 3.4).

``POST /users`` is idempotent on ``external_user_id`` (201 new, 200 existing) and wakes the
operation runner so the new wallet activates in the background. Wallet balances and
transactions are live Horizon reads made outside any transaction. Ids of another marketplace,
and ids of the wrong prefix, answer 404 ``USER_NOT_FOUND``. The reference's raw balance routes
(``/balance/credit|debit|reserve|release|...``) are deliberately absent: 404 ``NOT_FOUND``.
"""

from datetime import datetime
from typing import Annotated, Any, Final

import asyncpg
import msgspec
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.auth import CurrentCaller, requires
from api.config import Config
from api.database import read
from api.errors import invalid
from api.idempotency import Reply, run_mutation
from api.orders_support import status_filter, time_filter
from api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, PageInfo, page_of, page_request
from api.paths import API_PREFIX, canonical_path
from api.provider_errors import provider_call
from api.queries.users import transfers_by_hash
from api.runtime import get_runtime
from api.schemas import amount_minor
from api.schemas.users import (
    AirtmLink,
    Balance,
    BalanceAdjustment,
    BalanceAdjustmentCreate,
    User,
    UserCreate,
    Wallet,
    WalletTransaction,
    adjustment_out,
    balance_out,
    user_out,
    wallet_out,
)
from api.users_airtm import checked_airtm_account
from api.users_wallet import decode_cursor, encode_cursor, live_balance, wallet_transactions
from common.errors import AppError, UserNotFound
from flows import users
from flows.balances import CURRENCY, adjust_balance, get_balance
from flows.queries import users as user_queries
from flows.queries.wallets import Wallet as WalletRow
from flows.users import DepositInstructions
from ledger import user_account

__all__ = ["USERS_ROUTES"]

_USER_PATH: Final = "/users/{user_id:str}"
_USER_TYPES: Final = ("BUYER", "SELLER", "BOTH")
_USER_STATUSES: Final = ("ACTIVE", "SUSPENDED", "PENDING_VERIFICATION")
_METADATA_MAX_BYTES: Final = 8 * 1024

TypeFilter = Annotated[
    str | None,
    QueryParameter(name="type", description="BUYER, SELLER, BOTH (any case), or a comma list."),
]


def _user_location(user_id: str) -> str:
    return f"{API_PREFIX}/users/{user_id}"


async def _wallet_row(
    request: Request[Any, Any, Any], marketplace_id: str, user_id: str
) -> WalletRow:
    """The user's wallet row (404 USER_NOT_FOUND / WALLET_NOT_FOUND), read in its own snapshot."""

    async def fetch(conn: asyncpg.Connection) -> WalletRow:
        return await users.get_user_wallet(conn, marketplace_id=marketplace_id, user_id=user_id)

    return await read(request, fetch)


@post("/users", guards=[requires("write")], status_code=201, tags=["users"])
async def create_user(
    request: Request[Any, Any, Any], caller: CurrentCaller, data: JSONBody[UserCreate]
) -> Response[User]:
    """Create a user with its wallet, or return the user this ``external_user_id`` names."""
    if data.metadata is not None and len(msgspec.json.encode(data.metadata)) > _METADATA_MAX_BYTES:
        raise invalid("metadata", "must be at most 8 KiB")
    runtime = get_runtime(request)  # the keyring seals the new wallet's seed

    async def work(conn: asyncpg.Connection) -> Reply:
        row, created = await users.create_user(
            conn,
            runtime.keyring,
            marketplace_id=caller.tenant,
            external_user_id=data.external_user_id,
            email=data.email,
            type=data.type or "BOTH",
            metadata=data.metadata,
            actor=caller.actor,
        )
        if not created:
            return Reply(user_out(row), status_code=200)
        return Reply(user_out(row), status_code=201, location=_user_location(row.id))

    response = await run_mutation(request, caller, work)
    # The wallet's activation operation committed with the user: start it now, do not wait.
    runtime.started()
    return response


@get("/users", guards=[requires("read")], tags=["users"])
async def list_users(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    *,
    external_user_id: FromQuery[str | None] = None,
    user_type: TypeFilter = None,
    status: FromQuery[str | None] = None,
    created_after: FromQuery[str | None] = None,
    created_before: FromQuery[str | None] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[User]:
    """List users, newest first; filters combine with AND."""
    types = status_filter("type", None if user_type is None else user_type.upper(), _USER_TYPES)
    statuses = status_filter("status", status, _USER_STATUSES)
    after = time_filter("created_after", created_after)
    before = time_filter("created_before", created_before)
    filters = {
        "external_user_id": external_user_id,
        "type": types,
        "status": statuses,
        "created_after": after,
        "created_before": before,
    }
    position = page_request(
        request, limit=limit, cursor=cursor, filters=msgspec.to_builtins(filters)
    )

    async def fetch(conn: asyncpg.Connection) -> Page[User]:
        page = await users.list_users(
            conn,
            marketplace_id=caller.tenant,
            external_user_id=external_user_id,
            types=types,
            statuses=statuses,
            created_after=after,
            created_before=before,
            after=position.after,
            limit=position.fetch_limit,
        )
        return page_of(position, page.users, user_out)

    return await read(request, fetch)


@get(_USER_PATH, guards=[requires("read")], tags=["users"])
async def get_user(
    request: Request[Any, Any, Any], caller: CurrentCaller, user_id: FromPath[str]
) -> User:
    """One user."""

    async def fetch(conn: asyncpg.Connection) -> User:
        return user_out(await users.get_user(conn, marketplace_id=caller.tenant, user_id=user_id))

    return await read(request, fetch)


@post(f"{_USER_PATH}/airtm/link", guards=[requires("write")], status_code=200, tags=["users"])
async def link_airtm(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    user_id: FromPath[str],
    data: JSONBody[AirtmLink],
) -> Response[User]:
    """Link the Airtm account of ``email`` (active and verified) to the user."""
    runtime = get_runtime(request)

    async def exists(conn: asyncpg.Connection) -> bool:
        return await user_queries.get_user(conn, caller.tenant, user_id) is not None

    # The lookup is a provider call: before, and outside, the linking transaction. An unknown
    # user is not looked up; the work below answers USER_NOT_FOUND (stored, api.md 1.8).
    outcome = (
        await checked_airtm_account(runtime.fiat, data.email)
        if await read(request, exists)
        else None
    )

    async def work(conn: asyncpg.Connection) -> User:
        if outcome is None:
            raise UserNotFound(field="user_id")
        if isinstance(outcome, AppError):
            await users.get_user(conn, marketplace_id=caller.tenant, user_id=user_id)
            raise outcome
        row, _ = await users.link_airtm(
            conn,
            marketplace_id=caller.tenant,
            user_id=user_id,
            airtm_user_id=outcome.id,
            airtm_email=outcome.email,
            actor=caller.actor,
        )
        return user_out(row)

    return await run_mutation(request, caller, work)


@get(f"{_USER_PATH}/wallet", guards=[requires("read")], tags=["wallets"])
async def get_wallet(
    request: Request[Any, Any, Any], caller: CurrentCaller, user_id: FromPath[str]
) -> Wallet:
    """The user's wallet with its live balance (``null`` and ``balance_error`` if unknown)."""
    row = await _wallet_row(request, caller.tenant, user_id)
    try:
        network = get_runtime(request).network
    except AppError as error:
        return wallet_out(row, None, f"{error.code}: {error.message}")
    balance, balance_error = await live_balance(network, row.public_key)
    return wallet_out(row, balance, balance_error)


@get(f"{_USER_PATH}/wallet/deposit", guards=[requires("read")], tags=["wallets"])
async def get_deposit_instructions(
    request: Request[Any, Any, Any], caller: CurrentCaller, user_id: FromPath[str]
) -> DepositInstructions:
    """Where and what to send to fund the user's balance on chain."""
    row = await _wallet_row(request, caller.tenant, user_id)
    config: Config = request.app.state.config
    return users.deposit_instructions(
        user_id=user_id,
        address=row.public_key,
        network=config.network,
        usdc_issuer=config.asset.issuer,
    )


@get(f"{_USER_PATH}/wallet/transactions", guards=[requires("read")], tags=["wallets"])
async def list_wallet_transactions(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    user_id: FromPath[str],
    *,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[WalletTransaction]:
    """The wallet's on-chain movements, newest first, live from Horizon."""
    binding = canonical_path(request)
    after_token = decode_cursor(binding, cursor)
    row = await _wallet_row(request, caller.tenant, user_id)
    network = get_runtime(request).network
    async with provider_call():
        page = await wallet_transactions(
            network, row.public_key, limit=limit, after_token=after_token
        )
    hashes = sorted({item.transaction_hash for item in page.items})

    async def booked(conn: asyncpg.Connection) -> dict[str, str]:
        code = user_account(user_id).code
        return await transfers_by_hash(
            conn, caller.tenant, asset=CURRENCY, account_code=code, hashes=hashes
        )

    transfers = await read(request, booked) if hashes else {}
    items = [
        msgspec.structs.replace(item, transfer_id=transfers.get(item.transaction_hash))
        for item in page.items
    ]
    next_cursor = encode_cursor(binding, page.next_token) if page.next_token else None
    return Page(data=items, pagination=PageInfo(has_more=page.has_more, next_cursor=next_cursor))


@get(f"{_USER_PATH}/balance", guards=[requires("read")], tags=["balances"])
async def get_user_balance(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    user_id: FromPath[str],
    *,
    as_of: FromQuery[str | None] = None,
) -> Balance:
    """The user's balance from the ledger, now or as it was at ``as_of``."""
    moment: datetime | None = time_filter("as_of", as_of)

    async def fetch(conn: asyncpg.Connection) -> Balance:
        view = await get_balance(conn, marketplace_id=caller.tenant, user_id=user_id, as_of=moment)
        return balance_out(view)

    return await read(request, fetch)


@post(
    f"{_USER_PATH}/balance/adjustments",
    guards=[requires("admin")],
    status_code=201,
    tags=["balances"],
)
async def create_balance_adjustment(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    user_id: FromPath[str],
    data: JSONBody[BalanceAdjustmentCreate],
) -> Response[BalanceAdjustment]:
    """Post an audited CREDIT or DEBIT between the user and a counter account."""

    async def work(conn: asyncpg.Connection) -> BalanceAdjustment:
        record = await adjust_balance(
            conn,
            marketplace_id=caller.tenant,
            user_id=user_id,
            direction=data.direction,
            amount=amount_minor(data.amount),
            reason=data.reason,
            reference=data.reference,
            counter_account=data.counter_account or "fees:platform",
            actor=caller.actor,
        )
        return adjustment_out(record)

    return await run_mutation(
        request,
        caller,
        work,
        status_code=201,
        location=lambda adjustment: f"{_user_location(adjustment.user_id)}/balance",
    )


USERS_ROUTES: Final[tuple[HTTPRouteHandler, ...]] = (
    create_user,
    list_users,
    get_user,
    link_airtm,
    get_wallet,
    get_deposit_instructions,
    list_wallet_transactions,
    get_user_balance,
    create_balance_adjustment,
)
