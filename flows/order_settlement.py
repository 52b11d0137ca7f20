"""Booking what an escrow contract paid out: release, refund and dispute resolution.

The ledger posts exactly what the contract moved on chain (design.md 2): the operation's
``transfers`` list the USDC the settling transaction paid to each address. Each address maps to
an account (a party's wallet -> ``user:<usr>``, the platform address -> ``fees:platform``, the
Trustless Work fee address -> ``fees:trustless_work``); the transfers leave ``escrow:<ord>`` as
one linked chain, and together they must empty the escrow exactly.
"""

import logging
from typing import Any, Final, Literal

import asyncpg
import msgspec

from common.errors import InvariantViolation
from common.ids import derived_id
from common.money import format_amount
from common.times import format_time
from flows.events import emit
from flows.order_support import (
    ASSET,
    CURRENCY,
    emit_balance,
    emit_closed,
    emit_order,
    enter_closed,
    fire_order,
    operation_actor,
    party_wallets,
    post_transfers,
    transaction_time,
)
from flows.order_views import Payout
from flows.queries import escrows as escrow_queries
from flows.queries.escrows import EscrowRow
from flows.queries.operations import Operation
from flows.queries.orders import OrderRow
from flows.transitions import fire
from ledger.accounts import AccountSpec, escrow_account, open_account, system_account, user_account
from ledger.types import Transfer
from providers.trustless_work.fees import distribution_split
from statemachines import EscrowStatus, OrderStatus

__all__ = [
    "EscrowAddresses",
    "Settlement",
    "Share",
    "conclude_settlement",
    "payout_data",
    "settle_escrow",
]

_log = logging.getLogger(__name__)

Party = Literal["SELLER", "BUYER"]
# Ledger transfer codes (api.md 4, Transfer) per destination.
_PARTY_CODES: Final[dict[str, str]] = {"SELLER": "escrow_release", "BUYER": "escrow_refund"}
_SOURCES: Final[dict[str, str]] = {"SELLER": "release", "BUYER": "refund"}


class EscrowAddresses(msgspec.Struct, frozen=True, kw_only=True):
    """Where the contract pays fees: the platform address and Trustless Work's fee address."""

    platform: str
    trustless_work_fee: str


class Share(msgspec.Struct, frozen=True, kw_only=True):
    """A party's gross share of the escrow in a settlement."""

    party: Party
    user_id: str
    gross_minor: int


class Credit(msgspec.Struct, frozen=True, kw_only=True):
    """A party's ledger credit from a settlement (one ``balance.credited`` event)."""

    user_id: str
    amount_minor: int
    source: str
    transfer_id: str


class Settlement(msgspec.Struct, frozen=True, kw_only=True):
    """What a settlement posted: a payout per share and a credit per paid party."""

    payouts: list[Payout]
    credits: list[Credit]
    transaction_hash: str | None


def _paid_by_address(operation: Operation) -> dict[str, int]:
    """The operation's on-chain ``transfers``, summed per recipient address."""
    paid: dict[str, int] = {}
    for item in operation.payload.get("transfers") or []:
        amount = item.get("amount_minor")
        if type(amount) is not int or amount <= 0 or not isinstance(item.get("to"), str):
            raise InvariantViolation("a settlement transfer is malformed", transfer=item)
        paid[item["to"]] = paid.get(item["to"], 0) + amount
    return paid


def _payouts(
    escrow: EscrowRow,
    shares: list[Share],
    net_by_party: dict[Party, int],
    fees_paid: tuple[int, int],
    tx_hash: str | None,
) -> list[Payout]:
    """One payout per share: net as paid on chain, fees as the contract's formula shares them."""
    split = distribution_split(
        [share.gross_minor for share in shares],
        platform_fee_bps=escrow.platform_fee_bps,
        trustless_work_fee_bps=escrow.trustless_work_fee_bps,
    )
    if (split.platform_minor, split.trustless_work_minor) != fees_paid:
        # Book from the chain, but someone must look: the contract and the formula disagree.
        _log.warning(
            "escrow %s: fees paid %s differ from the formula %s",
            escrow.id,
            fees_paid,
            (split.platform_minor, split.trustless_work_minor),
        )
    payouts = []
    for share, formula in zip(shares, split.recipients, strict=True):
        # A single recipient bears all fees paid; several share them as the contract does.
        platform_fee, tw_fee = (
            fees_paid
            if len(shares) == 1
            else (formula.platform_minor, formula.trustless_work_minor)
        )
        payouts.append(
            Payout(
                party=share.party,
                user_id=share.user_id,
                gross_amount_minor=share.gross_minor,
                platform_fee_minor=platform_fee,
                trustless_work_fee_minor=tw_fee,
                net_amount_minor=net_by_party.get(share.party, 0),
                transaction_hash=tx_hash,
            )
        )
    return payouts


# Where a paid address books: its account, the transfer code, and the party share if any.
_Destination = tuple[AccountSpec, str, Share | None]


async def _transfers(
    conn: asyncpg.Connection,
    order: OrderRow,
    operation: Operation,
    destinations: dict[str, _Destination],
    paid: dict[str, int],
    *,
    tx_hash: str | None,
) -> tuple[list[Transfer], list[Credit]]:
    """One transfer out of ``escrow:<ord>`` per paid address (ids derived: a rerun is a no-op)."""
    source = await open_account(conn, order.marketplace_id, ASSET, escrow_account(order.id))
    transfers: list[Transfer] = []
    credits: list[Credit] = []
    for address, (spec, code, share) in destinations.items():
        if address not in paid:
            continue
        account = await open_account(conn, order.marketplace_id, ASSET, spec)
        transfer_id = derived_id("trf_", order.marketplace_id, operation.id, address)
        transfers.append(
            Transfer(
                id=transfer_id,
                marketplace_id=order.marketplace_id,
                code=code,
                debit_account_id=source.id,
                credit_account_id=account.id,
                amount=paid[address],
                asset=ASSET,
                linked=True,
                order_id=order.id,
                user_id=None if share is None else share.user_id,
                external_ref=tx_hash,
            )
        )
        if share is not None:
            credits.append(
                Credit(
                    user_id=share.user_id,
                    amount_minor=paid[address],
                    source=_SOURCES[share.party],
                    transfer_id=transfer_id,
                )
            )
    return transfers, credits


async def settle_escrow(
    conn: asyncpg.Connection,
    *,
    order: OrderRow,
    escrow: EscrowRow,
    operation: Operation,
    addresses: EscrowAddresses,
    shares: list[Share],
    tx_hash: str | None,
) -> Settlement:
    """Post the contract's payout as one linked chain out of ``escrow:<ord>``.

    Raises:
        InvariantViolation: a transfer went to an address that is not a paid party or a fee
            address, the transfers do not add up to the escrowed amount, or the ledger
            refused the chain.
    """
    buyer_wallet, seller_wallet = await party_wallets(conn, order, require_active=False)
    wallet_of = {"BUYER": buyer_wallet.public_key, "SELLER": seller_wallet.public_key}
    destinations: dict[str, _Destination] = {
        wallet_of[s.party]: (user_account(s.user_id), _PARTY_CODES[s.party], s) for s in shares
    }
    destinations[addresses.platform] = (
        system_account("fees:platform"),
        "escrow_fee_platform",
        None,
    )
    destinations[addresses.trustless_work_fee] = (
        system_account("fees:trustless_work"),
        "escrow_fee_trustless_work",
        None,
    )
    paid = _paid_by_address(operation)
    unknown = sorted(set(paid) - set(destinations))
    if unknown or sum(paid.values()) != escrow.amount_minor:
        raise InvariantViolation(
            "the on-chain payout does not match the escrow",
            escrow_id=escrow.id,
            escrow_amount=escrow.amount_minor,
            paid=paid,
            unknown_addresses=unknown,
        )
    transfers, credits = await _transfers(
        conn, order, operation, destinations, paid, tx_hash=tx_hash
    )
    # The last transfer closes the linked chain.
    transfers[-1] = msgspec.structs.replace(transfers[-1], linked=False)
    await post_transfers(conn, transfers)
    net_by_party = {s.party: paid.get(wallet_of[s.party], 0) for s in shares}
    fees_paid = (paid.get(addresses.platform, 0), paid.get(addresses.trustless_work_fee, 0))
    payouts = _payouts(escrow, shares, net_by_party, fees_paid, tx_hash)
    return Settlement(payouts=payouts, credits=credits, transaction_hash=tx_hash)


def payout_data(payout: Payout) -> dict[str, Any]:
    """A payout as event data (amounts as decimal strings)."""
    return {
        "party": payout.party,
        "user_id": payout.user_id,
        "gross_amount": format_amount(payout.gross_amount_minor),
        "platform_fee": format_amount(payout.platform_fee_minor),
        "trustless_work_fee": format_amount(payout.trustless_work_fee_minor),
        "net_amount": format_amount(payout.net_amount_minor),
        "transaction_hash": payout.transaction_hash,
    }


async def _emit_escrow_settled(conn: asyncpg.Connection, escrow: EscrowRow) -> None:
    released = escrow.status == EscrowStatus.RELEASED
    at = escrow.released_at if released else escrow.refunded_at
    assert at is not None
    await emit(
        conn,
        marketplace_id=escrow.marketplace_id,
        type="escrow.released" if released else "escrow.refunded",
        resource_type="escrow",
        resource_id=escrow.id,
        data={
            "escrow_id": escrow.id,
            "order_id": escrow.order_id,
            "payouts": [payout_data(p) for p in msgspec.convert(escrow.payouts, list[Payout])],
            "released_at" if released else "refunded_at": format_time(at),
        },
    )


async def _emit_order_settled(
    conn: asyncpg.Connection, order: OrderRow, settlement: Settlement
) -> None:
    """``order.released`` (seller's payout) or ``order.refunded`` (buyer's payout)."""
    released = order.status == OrderStatus.RELEASED
    party = "SELLER" if released else "BUYER"
    payout = next(p for p in settlement.payouts if p.party == party)
    at = await transaction_time(conn)
    await emit_order(
        conn,
        order,
        "order.released" if released else "order.refunded",
        {
            "seller_id" if released else "buyer_id": payout.user_id,
            "amount": format_amount(payout.gross_amount_minor),
            "net_amount": format_amount(payout.net_amount_minor),
            "platform_fee": format_amount(payout.platform_fee_minor),
            "trustless_work_fee": format_amount(payout.trustless_work_fee_minor),
            "currency": CURRENCY,
            "released_at" if released else "refunded_at": format_time(at),
            "transaction_hash": settlement.transaction_hash,
        },
    )


async def conclude_settlement(
    conn: asyncpg.Connection,
    *,
    order: OrderRow,
    escrow: EscrowRow,
    operation: Operation,
    settlement: Settlement,
    escrow_event: str,
    order_event: str,
) -> OrderRow:
    """Move escrow and order to their end after a settlement posted, with their events.

    Events in api.md order: ``escrow.released``/``escrow.refunded``, then ``order.released``/
    ``order.refunded`` unless ``order_event`` closes the order at once (a split), then one
    ``balance.credited`` per paid party, then ``order.closed``.
    """
    actor = operation_actor(operation)
    await fire(
        conn,
        "escrow",
        marketplace_id=escrow.marketplace_id,
        resource_id=escrow.id,
        current=escrow.status,
        event=escrow_event,
        actor=actor,
    )
    payouts = [msgspec.to_builtins(payout) for payout in settlement.payouts]
    settled = await escrow_queries.set_escrow_settled(
        conn, escrow.marketplace_id, escrow.id, payouts
    )
    await _emit_escrow_settled(conn, settled)
    if order_event == "resolve_split":
        closed = await enter_closed(conn, order, order_event, actor)
    else:
        order = await fire_order(conn, order, order_event, actor)
        await _emit_order_settled(conn, order, settlement)
        closed = await enter_closed(conn, order, "close", actor)
    for credit in settlement.credits:
        await emit_balance(
            conn,
            order.marketplace_id,
            credit.user_id,
            "balance.credited",
            {
                "amount": format_amount(credit.amount_minor),
                "currency": CURRENCY,
                "source": credit.source,
                "source_id": order.id,
                "transfer_id": credit.transfer_id,
                "transaction_hash": settlement.transaction_hash,
            },
        )
    await emit_closed(conn, closed)
    return closed
