"""On-chain deposits: incoming USDC payments credited to users' balances (design.md 2).

Each incoming USDC ``payment`` or path payment to a user's wallet is posted once,

    external:stellar -> user:<usr>   amount   (code deposit, SINGLE, external_ref = tx hash)

with a transfer id derived from the Horizon operation id (:func:`deposit_transfer_id`), so a
replay (a crash before the cursor moved, a second monitor, reconciliation finding the same
payment) answers ``exists`` and never credits twice. The ``deposits`` row and the
``balance.credited`` event (source ``stellar_deposit``) go in the same transaction.

What is NOT a deposit (providers.md 2.5):

- other assets (XLM, or a ``USDC`` of another issuer), outgoing and failed payments,
  ``create_account`` and escrow movements (``invoke_host_function``);
- payments in a transaction one of our operations signed, when that operation's own flow
  already booked the receiving side: a top-up delivery (the user was credited when the payin
  was confirmed), escrow releases, refunds and splits (booked by the order flows), wallet
  activation. The hash is in ``operation_submissions`` before the transaction is sent, so the
  check cannot race the chain.

One exception, on purpose: a crypto withdrawal (WITHDRAWAL_PAYMENT) paid to another user's
wallet. The withdrawal books only the sender's side (``user:A -> clearing:withdrawals ->
external:stellar``); nothing credits the recipient, whose wallet nevertheless holds the USDC.
Crediting it here (``external:stellar -> user:B``) is its only booking, keeps each wallet equal
to its ledger account and nets ``external:stellar`` back to zero for the round trip.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Final, Literal

import asyncpg
import msgspec

from common.errors import InvariantViolation
from common.ids import derived_id
from common.money import format_amount
from flows.audit import record_audit
from flows.events import emit
from flows.queries import deposits as queries
from flows.queries.deposits import DepositRow, WalletScan
from ledger import (
    Transfer,
    TransferOutcome,
    TransferResult,
    balance,
    create_transfers,
    open_account,
    system_account,
    user_account,
)
from providers.stellar.port import PaymentPage, PaymentRecord

__all__ = [
    "ASSET",
    "CREDITED_OPERATION_TYPES",
    "DEPOSIT_CODE",
    "CreditedDeposit",
    "DepositSource",
    "PageOutcome",
    "credit_page",
    "credit_payments",
    "deposit_id",
    "deposit_transfer_id",
    "is_incoming_usdc",
]

# The ledger asset of user balances: USD, backed 1:1 by USDC on chain.
ASSET: Final = "USD"
DEPOSIT_CODE: Final = "deposit"
USDC_CODE: Final = "USDC"
CREDITED_OPERATION_TYPES: Final = frozenset(
    {"payment", "path_payment_strict_send", "path_payment_strict_receive"}
)
DepositSource = Literal["stellar_deposit", "stellar_deposit_reconciled"]
# Operations of ours whose payments into a user's wallet nothing else books (module docstring).
# Every other kind books its own payments; an unknown future kind is not credited either.
_CREDITED_OWN_KINDS: Final = frozenset({"WITHDRAWAL_PAYMENT"})
# ``exists``: credited before (a replay, another monitor, reconciliation); never again.
_ACCEPTED: Final = frozenset({TransferResult.OK, TransferResult.EXISTS})


class CreditedDeposit(msgspec.Struct, frozen=True, kw_only=True):
    """A payment credited by this call (not one credited before)."""

    deposit_id: str
    operation_id: str
    transfer_id: str
    tx_hash: str
    user_id: str
    amount: int


class PageOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`credit_page` did.

    ``stale``: another monitor moved the cursor since the page was read; nothing was written
    and ``cursor`` is the stored one, to read on from.
    """

    stale: bool
    cursor: str | None
    credited: tuple[CreditedDeposit, ...] = ()


def deposit_transfer_id(marketplace_id: str, operation_id: str) -> str:
    """The ledger transfer of the deposit of one Horizon operation (stable across replays)."""
    return derived_id("trf_", marketplace_id, "stellar_deposit", operation_id)


def deposit_id(marketplace_id: str, operation_id: str) -> str:
    """The ``deposits`` row id of one Horizon operation."""
    return derived_id("dep_", marketplace_id, "stellar_deposit", operation_id)


def is_incoming_usdc(record: PaymentRecord, *, address: str, usdc_issuer: str) -> bool:
    """Whether ``record`` brings USDC of ``usdc_issuer`` into ``address`` from elsewhere.

    A successful payment or path payment whose destination is the wallet, in USDC of the
    configured issuer (a look-alike code from another issuer is worth nothing to us), with a
    positive amount. A wallet paying itself moves nothing.
    """
    return (
        record.type in CREDITED_OPERATION_TYPES
        and record.transaction_successful
        and record.to_address == address
        and record.from_address != address
        and record.asset_type == "credit_alphanum4"
        and record.asset_code == USDC_CODE
        and record.asset_issuer == usdc_issuer
        and record.amount is not None
        and record.amount > 0
    )


def _transfer(wallet: WalletScan, record: PaymentRecord, accounts: tuple[str, str]) -> Transfer:
    external, user = accounts
    assert record.amount is not None
    return Transfer(
        id=deposit_transfer_id(wallet.marketplace_id, record.id),
        marketplace_id=wallet.marketplace_id,
        code=DEPOSIT_CODE,
        debit_account_id=external,
        credit_account_id=user,
        amount=record.amount,
        asset=ASSET,
        user_id=wallet.user_id,
        external_ref=record.transaction_hash,
        # Deterministic, so a replay of the same payment is `exists`, not a field mismatch.
        description=f"stellar {record.type} {record.id}",
    )


def _row(wallet: WalletScan, record: PaymentRecord, source: DepositSource) -> DepositRow:
    assert record.amount is not None
    assert record.asset_issuer is not None
    return DepositRow(
        marketplace_id=wallet.marketplace_id,
        id=deposit_id(wallet.marketplace_id, record.id),
        user_id=wallet.user_id,
        wallet_id=wallet.wallet_id,
        operation_id=record.id,
        operation_type=record.type,
        tx_hash=record.transaction_hash,
        from_address=record.from_address,
        amount_minor=record.amount,
        asset_code=USDC_CODE,
        asset_issuer=record.asset_issuer,
        transfer_id=deposit_transfer_id(wallet.marketplace_id, record.id),
        paging_token=record.paging_token,
        source=source,
        occurred_at=datetime.fromisoformat(record.created_at),
    )


def _new_credits(
    records: Sequence[PaymentRecord], outcomes: Sequence[TransferOutcome]
) -> list[PaymentRecord]:
    """The records this batch credited; ``exists`` ones were credited before."""
    refused = {o.id: o.result.value for o in outcomes if o.result not in _ACCEPTED}
    if refused:
        # Accounts are open and external:stellar is unbounded: a refusal means the same
        # operation was booked with other fields (amount, user), which must never happen.
        raise InvariantViolation("the ledger refused a deposit", results=refused)
    return [r for r, o in zip(records, outcomes, strict=True) if o.result is TransferResult.OK]


async def _emit_credited(
    conn: asyncpg.Connection,
    wallet: WalletScan,
    credited: Sequence[PaymentRecord],
    source: DepositSource,
    user_account_id: str,
) -> None:
    """One ``balance.credited`` per new deposit, each with the balance right after it."""
    after = await balance(conn, wallet.marketplace_id, user_account_id)
    # The account is locked by create_transfers until commit: walking back from the final
    # balance gives the balance after each credit of this batch, in order.
    available = after.available - sum(r.amount or 0 for r in credited)
    for record in credited:
        assert record.amount is not None
        available += record.amount
        await emit(
            conn,
            marketplace_id=wallet.marketplace_id,
            type="balance.credited",
            resource_type="balance",
            resource_id=wallet.user_id,
            data={
                "user_id": wallet.user_id,
                "amount": format_amount(record.amount),
                "currency": ASSET,
                "source": source,
                "source_id": record.id,
                "transfer_id": deposit_transfer_id(wallet.marketplace_id, record.id),
                "transaction_hash": record.transaction_hash,
                "available": format_amount(available),
                "reserved": format_amount(after.reserved),
            },
        )
        await record_audit(
            conn,
            marketplace_id=wallet.marketplace_id,
            actor_type="SYSTEM",
            actor_id="deposit_monitor",
            action="DEPOSIT_CREDITED",
            resource_type="balance",
            resource_id=wallet.user_id,
            after={
                "amount": format_amount(record.amount),
                "source": source,
                "operation_id": record.id,
                "transaction_hash": record.transaction_hash,
                "available": format_amount(available),
            },
        )


async def credit_payments(
    conn: asyncpg.Connection,
    wallet: WalletScan,
    records: Sequence[PaymentRecord],
    *,
    usdc_issuer: str,
    source: DepositSource = "stellar_deposit",
) -> tuple[CreditedDeposit, ...]:
    """Credit the incoming USDC payments among ``records`` to the wallet's user, once each.

    Runs in the caller's transaction: posts the transfers in one batch, records the deposits
    and emits ``balance.credited`` for each payment not credited before. Records that are not
    deposits (see the module docstring) are skipped; so are payments already credited.

    Raises:
        InvariantViolation: an operation was booked before with different fields.
        TransferRaced: a concurrent transaction credited one of them first (retry the block).
    """
    incoming = [
        r
        for r in records
        if is_incoming_usdc(r, address=wallet.public_key, usdc_issuer=usdc_issuer)
    ]
    owned = await queries.owned_transactions(conn, sorted({r.transaction_hash for r in incoming}))
    payments = [
        r
        for r in incoming
        if r.transaction_hash not in owned or owned[r.transaction_hash] in _CREDITED_OWN_KINDS
    ]
    if not payments:
        return ()
    external = await open_account(
        conn, wallet.marketplace_id, ASSET, system_account("external:stellar")
    )
    user = await open_account(conn, wallet.marketplace_id, ASSET, user_account(wallet.user_id))
    transfers = [_transfer(wallet, r, (external.id, user.id)) for r in payments]
    credited = _new_credits(payments, await create_transfers(conn, transfers))
    if not credited:
        return ()
    await queries.insert_deposits(conn, [_row(wallet, r, source) for r in credited])
    await _emit_credited(conn, wallet, credited, source, user.id)
    return tuple(
        CreditedDeposit(
            deposit_id=deposit_id(wallet.marketplace_id, r.id),
            operation_id=r.id,
            transfer_id=deposit_transfer_id(wallet.marketplace_id, r.id),
            tx_hash=r.transaction_hash,
            user_id=wallet.user_id,
            amount=r.amount or 0,
        )
        for r in credited
    )


async def credit_page(
    conn: asyncpg.Connection,
    wallet: WalletScan,
    page: PaymentPage,
    *,
    read_from: str | None,
    usdc_issuer: str,
) -> PageOutcome:
    """Credit one page of the wallet's payments and advance its cursor, atomically.

    ``read_from`` is the cursor the page was read after. The cursor row is locked first and
    compared with it (compare-and-set): if another monitor moved it meanwhile, nothing is
    written and the outcome is ``stale``. Otherwise the deposits are credited
    (:func:`credit_payments`) and the cursor set to the page's last paging token, in the
    caller's transaction: a crash anywhere before the commit leaves the page to be read again.
    """
    await queries.ensure_cursor(conn, wallet.marketplace_id, wallet.wallet_id)
    stored = await queries.lock_cursor(conn, wallet.marketplace_id, wallet.wallet_id)
    if stored != read_from:
        return PageOutcome(stale=True, cursor=stored)
    credited = await credit_payments(conn, wallet, page.records, usdc_issuer=usdc_issuer)
    if page.next_cursor != stored:
        await queries.set_cursor(conn, wallet.marketplace_id, wallet.wallet_id, page.next_cursor)
    return PageOutcome(stale=False, cursor=page.next_cursor, credited=credited)
