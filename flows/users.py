"""Users and their wallets (api.md 3.3): create (idempotent), read, list, link Airtm.

A new user gets, in the transaction that creates it, its ledger account ``user:<usr>``, a
custodial Stellar wallet whose WALLET_ACTIVATE operation the worker runs afterwards, and the
``user.created`` and ``wallet.created`` events. Provider reads (Airtm lookup, Horizon balances)
happen in the API layer, outside the transaction.
"""

from datetime import datetime
from typing import Any, Final

import asyncpg
import msgspec

from common.errors import (
    AirtmUserAlreadyLinked,
    ConcurrentUpdate,
    UserNotFound,
    ValidationFailed,
    WalletNotFound,
)
from common.ids import new_id
from common.times import format_time
from flows.audit import record_audit
from flows.balances import CURRENCY
from flows.events import emit
from flows.operation_steps import open_wallet
from flows.queries import users as queries
from flows.queries import wallets
from flows.queries.users import UserPage, UserRecord, UserWallet
from flows.queries.wallets import Wallet
from flows.transitions import Actor
from ledger import open_account, user_account
from providers.stellar.wallet_keys import MasterKeyring

__all__ = [
    "USER_TYPES",
    "DepositAsset",
    "DepositInstructions",
    "UserPage",
    "UserRecord",
    "UserWallet",
    "create_user",
    "deposit_instructions",
    "get_user",
    "get_user_wallet",
    "link_airtm",
    "list_users",
    "normalize_user_type",
]

USER_TYPES: Final = ("BUYER", "SELLER", "BOTH")
# The on-chain asset that backs USD 1:1; deposits of any other asset are not credited.
DEPOSIT_ASSET_CODE: Final = "USDC"


class DepositAsset(msgspec.Struct, frozen=True, kw_only=True):
    """The asset to send: code and issuer."""

    code: str
    issuer: str


class DepositInstructions(msgspec.Struct, frozen=True, kw_only=True):
    """How to fund a user's balance on chain (api.md 3.3, ``DepositInstructions``)."""

    user_id: str
    provider: str
    method: str
    network: str
    address: str
    memo: str | None
    asset: DepositAsset
    instructions: str


def normalize_user_type(text: str) -> str:
    """``buyer`` -> ``BUYER``; anything but BUYER/SELLER/BOTH is a ValidationFailed."""
    upper = text.upper()
    if upper not in USER_TYPES:
        raise ValidationFailed(
            fields=[{"field": "type", "message": "must be BUYER, SELLER or BOTH"}]
        )
    return upper


async def create_user(
    conn: asyncpg.Connection,
    keyring: MasterKeyring,
    *,
    marketplace_id: str,
    external_user_id: str,
    email: str | None = None,
    type: str = "BOTH",
    metadata: dict[str, Any] | None = None,
    actor: Actor,
) -> tuple[UserRecord, bool]:
    """Create a user with its ledger account and wallet, or return the existing one.

    Idempotent on ``external_user_id`` within the marketplace: an existing user is returned
    unchanged with ``False`` (whatever the other fields say), a new one with ``True``. Safe
    under concurrency: a second transaction inserting the same external id waits for the first
    and then reads its row. ``actor`` is who asked: a new user is audited ``USER_CREATED``.

    Raises:
        ValidationFailed: ``type`` is not BUYER, SELLER or BOTH (any case).
        ConcurrentUpdate: the concurrent creator's row is not visible to this transaction
            (isolation above READ COMMITTED); ``run_in_transaction`` retries.
    """
    user_type = normalize_user_type(type)
    user = await queries.insert_user(
        conn,
        marketplace_id=marketplace_id,
        user_id=new_id("usr_"),
        external_user_id=external_user_id,
        email=email,
        type=user_type,
        metadata=metadata,
    )
    if user is None:
        existing = await queries.get_user_by_external_id(conn, marketplace_id, external_user_id)
        if existing is None:
            raise ConcurrentUpdate(resource_type="user", external_user_id=external_user_id)
        return existing, False
    await open_account(conn, marketplace_id, CURRENCY, user_account(user.id))
    wallet, _ = await open_wallet(conn, keyring, marketplace_id=marketplace_id, user_id=user.id)
    await _emit_created(conn, user, wallet)
    await record_audit(
        conn,
        marketplace_id=marketplace_id,
        actor_type=actor.type,
        actor_id=actor.id,
        action="USER_CREATED",
        resource_type="user",
        resource_id=user.id,
        after={
            "external_user_id": user.external_user_id,
            "email": user.email,
            "type": user.type,
            "status": user.status,
            "wallet_id": wallet.id,
            "public_key": wallet.public_key,
        },
        request_id=actor.request_id,
    )
    return msgspec.structs.replace(
        user, wallet=UserWallet(id=wallet.id, public_key=wallet.public_key)
    ), True


async def _emit_created(conn: asyncpg.Connection, user: UserRecord, wallet: Wallet) -> None:
    """``user.created`` then ``wallet.created`` (api.md 6.2)."""
    await emit(
        conn,
        marketplace_id=user.marketplace_id,
        type="user.created",
        resource_type="user",
        resource_id=user.id,
        data={
            "user_id": user.id,
            "external_user_id": user.external_user_id,
            "email": user.email,
            "type": user.type,
            "status": user.status,
        },
    )
    await emit(
        conn,
        marketplace_id=user.marketplace_id,
        type="wallet.created",
        resource_type="wallet",
        resource_id=wallet.id,
        data={
            "user_id": user.id,
            "wallet_id": wallet.id,
            "public_key": wallet.public_key,
            "provider": "STELLAR",
            "funded": wallet.funded,
            "trustline_ready": wallet.trustline_ready,
        },
    )


async def get_user(
    conn: asyncpg.Connection, *, marketplace_id: str, user_id: str, field: str = "user_id"
) -> UserRecord:
    """The user with its wallet.

    Raises:
        UserNotFound: with ``details.field`` = ``field`` (``user_id``, ``buyer_id``, ...).
    """
    user = await queries.get_user(conn, marketplace_id, user_id)
    if user is None:
        raise UserNotFound(field=field)
    return user


async def list_users(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    external_user_id: str | None = None,
    types: list[str] | None = None,
    statuses: list[str] | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 20,
) -> UserPage:
    """A page of users, newest first; filters combine with AND (api.md 1.4).

    ``types`` are normalised (any case); ``after`` is the ``(created_at, id)`` keyset of the
    previous page's last user, which the API layer encodes in its opaque cursor.
    """
    return await queries.list_users(
        conn,
        marketplace_id,
        external_user_id=external_user_id,
        types=None if types is None else [normalize_user_type(t) for t in types],
        statuses=statuses,
        created_after=created_after,
        created_before=created_before,
        after=after,
        limit=limit,
    )


async def link_airtm(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    user_id: str,
    airtm_user_id: str,
    airtm_email: str,
    actor: Actor,
) -> tuple[UserRecord, bool]:
    """Store the user's Airtm account (already looked up and checked by the caller).

    Returns ``(user, changed)``: linking the account already linked is a no-op (``False``,
    no event); otherwise the link is stored and ``user.airtm_linked`` emitted.

    Raises:
        UserNotFound: unknown user (``field="user_id"``).
        AirtmUserAlreadyLinked: the user is linked to a different Airtm account.
    """
    user = await queries.lock_user(conn, marketplace_id, user_id)
    if user is None:
        raise UserNotFound(field="user_id")
    if user.airtm_user_id == airtm_user_id:
        return user, False
    if user.airtm_user_id is not None:
        raise AirtmUserAlreadyLinked(user_id=user_id)
    await queries.set_airtm_link(
        conn,
        marketplace_id=marketplace_id,
        user_id=user_id,
        airtm_user_id=airtm_user_id,
        airtm_email=airtm_email,
    )
    linked = await queries.get_user(conn, marketplace_id, user_id)
    assert linked is not None
    assert linked.airtm_linked_at is not None
    await record_audit(
        conn,
        marketplace_id=marketplace_id,
        actor_type=actor.type,
        actor_id=actor.id,
        action="AIRTM_LINKED",
        resource_type="user",
        resource_id=user_id,
        before={"airtm_user_id": None},
        after={"airtm_user_id": airtm_user_id, "airtm_email": airtm_email},
        request_id=actor.request_id,
    )
    await emit(
        conn,
        marketplace_id=marketplace_id,
        type="user.airtm_linked",
        resource_type="user",
        resource_id=user_id,
        data={
            "user_id": user_id,
            "airtm_user_id": airtm_user_id,
            "linked_at": format_time(linked.airtm_linked_at),
        },
    )
    return linked, True


async def get_user_wallet(conn: asyncpg.Connection, *, marketplace_id: str, user_id: str) -> Wallet:
    """The user's wallet row (the API layer adds the live on-chain balance).

    Raises:
        UserNotFound: unknown user (``field="user_id"``).
        WalletNotFound: the user has no wallet.
    """
    if await queries.get_user(conn, marketplace_id, user_id) is None:
        raise UserNotFound(field="user_id")
    wallet = await wallets.get_wallet_by_user(conn, marketplace_id, user_id)
    if wallet is None:
        raise WalletNotFound(user_id=user_id)
    return wallet


def deposit_instructions(
    *, user_id: str, address: str, network: str, usdc_issuer: str
) -> DepositInstructions:
    """How to deposit to a user's wallet: USDC of ``usdc_issuer`` to ``address``, no memo.

    Pure: the caller passes the network name and issuer from its settings (``/config``).
    """
    return DepositInstructions(
        user_id=user_id,
        provider="crypto",
        method="stellar_address",
        network=network,
        address=address,
        memo=None,
        asset=DepositAsset(code=DEPOSIT_ASSET_CODE, issuer=usdc_issuer),
        instructions=(
            f"Send {DEPOSIT_ASSET_CODE} issued by {usdc_issuer} on the Stellar {network} network "
            f"to {address}. No memo is needed. Each payment is credited to the available "
            "balance once; other assets are not credited."
        ),
    )
