"""Random ledger histories for the report tests, and an oracle that recomputes every account's
counters from the transfers alone (not from the counters or the entries the reports read).
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from hypothesis import strategies as st

from common.ids import new_id
from common.money import UNIT_MINOR
from ledger import (
    Side,
    Transfer,
    TransferPhase,
    TransferResult,
    create_transfers,
    escrow_account,
    open_account,
    system_account,
    user_account,
)
from tests.db.conftest import ASSET, create_marketplace

# (kind, debit index, credit index, amount, which earlier pending to resolve)
operations = st.lists(
    st.tuples(
        st.sampled_from(["single", "single", "pending", "post", "void"]),
        st.integers(0, 5),
        st.integers(0, 5),
        st.integers(1, 400),
        st.integers(0, 10),
    ),
    min_size=1,
    max_size=24,
)
batch_sizes = st.integers(1, 4)


@dataclass
class History:
    """A marketplace with six accounts of every class and the transfers that committed."""

    marketplace_id: str
    accounts: list[str]
    normal_sides: dict[str, Side]
    # created_at of the last transfer of each committed batch (checkpoints between batches)
    checkpoints: list[datetime] = field(default_factory=list)


async def _open_accounts(conn: asyncpg.Connection, marketplace_id: str) -> list[str]:
    specs = [
        system_account("external:stellar"),
        system_account("fees:platform"),
        user_account(new_id("usr_")),
        user_account(new_id("usr_")),
        user_account(new_id("usr_")),
        escrow_account(new_id("ord_")),
    ]
    return [(await open_account(conn, marketplace_id, ASSET, spec)).id for spec in specs]


def _transfer(
    operation: tuple[str, int, int, int, int],
    history: History,
    pendings: list[str],
) -> Transfer:
    kind, debit, credit, amount, pick = operation
    if kind in ("post", "void") and pendings:
        return Transfer(
            id=new_id("trf_"),
            marketplace_id=history.marketplace_id,
            code="order_reserve",
            phase=TransferPhase.POST_PENDING if kind == "post" else TransferPhase.VOID_PENDING,
            pending_id=pendings.pop(pick % len(pendings)),
            amount=amount * UNIT_MINOR if kind == "post" else None,
        )
    accounts = history.accounts
    credit = credit if credit != debit else (debit + 1) % len(accounts)
    return Transfer(
        id=new_id("trf_"),
        marketplace_id=history.marketplace_id,
        code="deposit" if kind == "single" else "order_reserve",
        debit_account_id=accounts[debit],
        credit_account_id=accounts[credit],
        amount=amount * UNIT_MINOR,
        asset=ASSET,
        phase=TransferPhase.PENDING if kind == "pending" else TransferPhase.SINGLE,
        description=f'op {kind}, with a comma and a "quote"',
    )


async def build_history(
    conn: asyncpg.Connection,
    plan: list[tuple[str, int, int, int, int]],
    batch_size: int,
    marketplace_id: str | None = None,
) -> History:
    """Fund the users, then apply ``plan`` in batches of ``batch_size``, one transaction each
    (in a new marketplace unless one is given)."""
    marketplace_id = marketplace_id or await create_marketplace(conn)
    accounts = await _open_accounts(conn, marketplace_id)
    sides = dict(
        await conn.fetch(
            "SELECT id, normal_side FROM ledger_accounts WHERE marketplace_id = $1",
            marketplace_id,
        )
    )
    history = History(marketplace_id, accounts, {k: Side(v) for k, v in sides.items()})
    funding = [("single", 0, index, 500, 0) for index in (2, 3, 4)]
    batches = [funding] + [
        plan[start : start + batch_size] for start in range(0, len(plan), batch_size)
    ]
    pendings: list[str] = []
    for batch in batches:
        transfers = [_transfer(operation, history, pendings) for operation in batch]
        async with conn.transaction():
            outcomes = await create_transfers(conn, transfers)
        for item, outcome in zip(transfers, outcomes, strict=True):
            if item.phase is TransferPhase.PENDING and outcome.result is TransferResult.OK:
                pendings.append(item.id)
        last = await conn.fetchval(
            "SELECT max(created_at) FROM ledger_transfers WHERE marketplace_id = $1",
            marketplace_id,
        )
        history.checkpoints.append(last)
    return history


async def committed_transfers(conn: asyncpg.Connection, marketplace_id: str) -> list[Any]:
    """Every committed transfer, in ledger order, with its pending transfer's amount."""
    return list(
        await conn.fetch(
            """
            SELECT t.id, t.sequence, t.created_at, t.phase::text AS phase, t.amount,
                t.debit_account_id, t.credit_account_id, p.amount AS pending_amount
            FROM ledger_transfers t
            LEFT JOIN ledger_transfers p ON p.marketplace_id = t.marketplace_id
                AND p.id = t.pending_id
            WHERE t.marketplace_id = $1 ORDER BY t.sequence
            """,
            marketplace_id,
        )
    )


def deltas(transfer: Any) -> tuple[int, int]:
    """(pending delta, posted delta) of a transfer on both of its accounts."""
    phase = transfer["phase"]
    pending = {"PENDING": transfer["amount"], "SINGLE": 0}.get(
        phase, -(transfer["pending_amount"] or 0)
    )
    posted = transfer["amount"] if phase in ("SINGLE", "POST_PENDING") else 0
    return pending, posted


def counters(
    transfers: Iterable[Any], *, before: datetime | None = None, at: datetime | None = None
) -> dict[str, list[int]]:
    """Per account [debits_posted, credits_posted, debits_pending, credits_pending] of the
    transfers strictly before ``before`` or at/before ``at`` (all when neither is given)."""
    result: dict[str, list[int]] = {}
    for transfer in transfers:
        moment = transfer["created_at"]
        if (before is not None and moment >= before) or (at is not None and moment > at):
            continue
        pending, posted = deltas(transfer)
        debit = result.setdefault(transfer["debit_account_id"], [0, 0, 0, 0])
        credit = result.setdefault(transfer["credit_account_id"], [0, 0, 0, 0])
        debit[0] += posted
        debit[2] += pending
        credit[1] += posted
        credit[3] += pending
    return result


def signed(side: Side, counter: list[int]) -> int:
    """The posted balance from the account's normal side."""
    return counter[1] - counter[0] if side is Side.CREDIT else counter[0] - counter[1]
