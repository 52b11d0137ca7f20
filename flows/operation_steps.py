"""Step functions of durable operations and the registry ``kind -> ordered steps``.

WALLET_ACTIVATE: ``submit_activation`` (one platform-sponsored tx: create_account + USDC
trustline, through :func:`flows.operation_submit.submit_tx`), then ``confirm_wallet`` (the
chain shows both; the wallet row becomes active). Other kinds plug in by adding their steps to
:data:`STEP_REGISTRY`; a step returns done / retry / failed and never opens a transaction
across a provider call.
"""

from types import MappingProxyType
from typing import Any, Final

import asyncpg
import msgspec

from common.ids import new_id
from flows.operation_submit import (
    TxConfirmed,
    TxRejected,
    pending_submission,
    submit_tx,
)
from flows.operations import (
    Registry,
    Step,
    StepDone,
    StepFailed,
    StepOutcome,
    StepRetry,
    StepRun,
    start_operation,
)
from flows.queries import wallets
from flows.queries.operations import Operation, OperationKind
from flows.queries.wallets import Wallet
from providers.errors import ProviderRejected
from providers.stellar.keys import SignedTx, build_sponsored_activation
from providers.stellar.port import AccountState
from providers.stellar.wallet_keys import (
    MasterKeyring,
    WalletKeyError,
    generate_wallet_keys,
    open_secret,
)

__all__ = [
    "STEP_REGISTRY",
    "confirm_wallet",
    "open_wallet",
    "submit_activation",
]


def _rejection(rejected: TxRejected) -> StepFailed:
    return StepFailed(
        error={
            "error": "TransactionRejected",
            "reason": rejected.reason,
            "tx_hash": rejected.tx_hash,
            "result_codes": msgspec.to_builtins(rejected.codes),
        }
    )


async def _load_wallet(run: StepRun) -> Wallet:
    claim = run.claim

    async def get(conn: asyncpg.Connection) -> Wallet | None:
        return await wallets.get_wallet(conn, claim.marketplace_id, claim.resource_id)

    wallet = await run.read(get)
    assert wallet is not None, "a wallet operation outlived its wallet"
    return wallet


def _activated(account: AccountState) -> StepOutcome:
    """An account that already exists counts as activated once it trusts USDC (2.3)."""
    if account.has_usdc_trustline:
        return StepDone()
    # Created by someone else without a trustline: needs a user-signed change_trust step.
    return StepFailed(
        error={"error": "AccountExistsWithoutTrustline", "reason": "op_already_exists"}
    )


async def _build_activation(run: StepRun, wallet: Wallet) -> SignedTx:
    deps = run.deps
    platform = deps.platform()
    source = await deps.network.get_account(platform.public_key)
    if not source.exists:
        raise ProviderRejected(
            "the platform account does not exist", provider="stellar", reason="tx_no_source_account"
        )
    seed = open_secret(
        deps.keyring,
        wallet.sealed_secret,
        marketplace_id=wallet.marketplace_id,
        wallet_id=wallet.id,
        public_key=wallet.public_key,
    )
    return build_sponsored_activation(
        platform=platform,
        platform_sequence=source.sequence,
        user=seed.keypair(),
        usdc_issuer=deps.usdc_issuer,
        passphrase=deps.passphrase,
        now_s=await deps.chain_now_s(),
        fee_float=deps.fee_float,
        timeout_s=deps.tx_timeout_s,
    )


async def submit_activation(run: StepRun) -> StepOutcome:
    """WALLET_ACTIVATE step 1: one platform-sponsored tx creates the account + USDC trustline."""
    wallet = await _load_wallet(run)
    network = run.deps.network
    pending = await pending_submission(run)
    if pending is None:
        account = await network.get_account(wallet.public_key)
        if account.exists:
            return _activated(account)

    async def build() -> SignedTx:
        return await _build_activation(run, wallet)

    try:
        outcome = await submit_tx(run, pending, build)
    except WalletKeyError as error:
        # Never fall back to another key: the wallet cannot sign until its key is restored.
        return StepFailed(error={"error": "WalletKeyError", "reason": error.message})
    if isinstance(outcome, TxConfirmed):
        return StepDone(confirm_hash=outcome.tx_hash, payload_patch={"tx_hash": outcome.tx_hash})
    if isinstance(outcome, TxRejected):
        if "op_already_exists" in outcome.codes.operations:
            return _activated(await network.get_account(wallet.public_key))
        return _rejection(outcome)
    return outcome


async def confirm_wallet(run: StepRun) -> StepOutcome:
    """WALLET_ACTIVATE step 2: check the chain shows account + trustline, mark the wallet active."""
    wallet = await _load_wallet(run)
    account = await run.deps.network.get_account(wallet.public_key)
    if not (account.exists and account.has_usdc_trustline):
        # Horizon may lag the ledger by a moment: look again later.
        return StepRetry(error={"error": "WalletNotVisible", "public_key": wallet.public_key})

    async def activate(conn: asyncpg.Connection) -> None:
        await wallets.mark_wallet_active(conn, wallet.marketplace_id, wallet.id)

    return StepDone(effect=activate)


STEP_REGISTRY: Final[Registry] = MappingProxyType(
    {
        OperationKind.WALLET_ACTIVATE: (
            Step("submit_activation", submit_activation),
            Step("confirm_wallet", confirm_wallet),
        ),
    }
)


async def open_wallet(
    conn: asyncpg.Connection, keyring: MasterKeyring, *, marketplace_id: str, user_id: str
) -> tuple[Wallet, Operation]:
    """Create a user's wallet (new keypair, sealed seed) and start its activation.

    Runs in the caller's transaction; the worker activates the wallet afterwards.
    """
    wallet_id = new_id("wal_")
    keys = generate_wallet_keys(keyring, marketplace_id=marketplace_id, wallet_id=wallet_id)
    wallet = await wallets.insert_wallet(
        conn,
        marketplace_id=marketplace_id,
        wallet_id=wallet_id,
        user_id=user_id,
        public_key=keys.public_key,
        sealed_secret=keys.sealed.text,
        key_version=keys.sealed.key_version,
    )
    payload: dict[str, Any] = {"wallet_id": wallet_id}
    operation = await start_operation(
        conn,
        STEP_REGISTRY,
        marketplace_id=marketplace_id,
        kind=OperationKind.WALLET_ACTIVATE,
        resource_type="wallet",
        resource_id=wallet_id,
        payload=payload,
    )
    return wallet, operation
