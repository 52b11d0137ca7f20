"""The pure half of posting: decides each transfer's result against locked account state.

``plan_batch`` walks a batch in order, as TigerBeetle does: each transfer sees the effects of the
ones accepted before it, a linked chain is applied all-or-nothing, and nothing here touches the
database. The caller then inserts ``Plan.rows`` in one statement; the database re-checks every
rule that matters (bounds, pending consistency, zero sum), so a bug here cannot corrupt the books.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import msgspec

from common.ids import is_valid_id
from ledger.types import (
    RESOLVING_PHASES,
    StoredTransfer,
    Transfer,
    TransferOutcome,
    TransferPhase,
    TransferResult,
)

__all__ = ["AccountState", "Plan", "plan_batch"]

INT64_MAX: Final = 2**63 - 1
# The timeout column is a PostgreSQL integer; 2**31 - 1 seconds is about 68 years.
TIMEOUT_S_MAX: Final = 2**31 - 1
# Matches the ledger_transfers_description_length check.
DESCRIPTION_LENGTH_MAX: Final = 500
_CODE_PATTERN: Final = re.compile(r"[a-z_]{1,40}")
R = TransferResult
Key = tuple[str, str]


@dataclass(slots=True)
class AccountState:
    """The mutable counters and bound flags of a locked account."""

    asset: str
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool

    def copy(self) -> "AccountState":
        """Return an independent copy (a linked chain works on copies until it succeeds)."""
        return AccountState(
            self.asset,
            self.debits_pending,
            self.debits_posted,
            self.credits_pending,
            self.credits_posted,
            self.debits_must_not_exceed_credits,
            self.credits_must_not_exceed_debits,
        )


@dataclass
class Plan:
    """Per-transfer outcomes, and the rows to insert for the accepted ones (in batch order)."""

    outcomes: list[TransferOutcome] = field(default_factory=list)
    rows: list[StoredTransfer] = field(default_factory=list)


@dataclass
class _Batch:
    """The committed state a batch is planned against; accepted chains are merged into it."""

    accounts: dict[Key, AccountState]
    known: dict[Key, StoredTransfer]
    now: datetime
    plan: Plan


@dataclass
class _Chain:
    """Tentative effects of the chain being planned; merged only if every member succeeds."""

    group: str | None
    accounts: dict[Key, AccountState] = field(default_factory=dict)
    transfers: dict[Key, StoredTransfer] = field(default_factory=dict)
    rows: list[StoredTransfer] = field(default_factory=list)


def plan_batch(
    transfers: list[Transfer],
    accounts: dict[Key, AccountState],
    known: dict[Key, StoredTransfer],
    now: datetime,
) -> Plan:
    """Decide the result of every transfer and the rows to insert.

    Args:
        transfers: The batch, in order.
        accounts: Locked accounts by (marketplace, id); updated in place for accepted transfers.
        known: Committed transfers by (marketplace, id) that the batch names (its ids and pending
            ids), with the resolution of pending ones; accepted transfers are added to it.
        now: The posting time (taken after the locks were acquired).

    Returns:
        The outcomes in request order and the rows to insert.
    """
    batch = _Batch(accounts, known, now, Plan())
    start = 0
    while start < len(transfers):
        end = start
        while transfers[end].linked and end + 1 < len(transfers):
            end += 1
        _plan_chain(batch, transfers[start : end + 1], start)
        start = end + 1
    return batch.plan


def _plan_chain(batch: _Batch, members: list[Transfer], first_index: int) -> None:
    """Plan one transfer, or one linked chain, all-or-nothing."""
    chain = _Chain(group=members[0].id if len(members) > 1 else None)
    results: list[TransferResult] = []
    for position, transfer in enumerate(members):
        if position == len(members) - 1 and transfer.linked:
            results.append(R.LINKED_EVENT_CHAIN_OPEN)
            break
        results.append(_plan_one(batch, chain, transfer))
        if results[-1] not in (R.OK, R.EXISTS):
            break
    outcomes = batch.plan.outcomes
    if len(results) == len(members) and all(result is R.EXISTS for result in results):
        # A repeated request: every member already exists as asked; nothing to insert.
        outcomes += [
            TransferOutcome(first_index + i, t.id, R.EXISTS) for i, t in enumerate(members)
        ]
        return
    if all(result is R.OK for result in results):
        outcomes += [TransferOutcome(first_index + i, t.id, R.OK) for i, t in enumerate(members)]
        batch.accounts.update(chain.accounts)
        batch.known.update(chain.transfers)
        batch.plan.rows.extend(chain.rows)
        return
    # A member failed, or a chain mixes new and existing members: none of it commits. The real
    # failure is reported on its member, the others get linked_event_failed.
    failures: list[TransferResult] = [r for r in results if r not in (R.OK, R.EXISTS)]
    failures = failures or [R.EXISTS]
    failed_at = results.index(failures[0])
    for position, transfer in enumerate(members):
        result = failures[0] if position == failed_at else R.LINKED_EVENT_FAILED
        outcomes.append(TransferOutcome(first_index + position, transfer.id, result))


def _plan_one(batch: _Batch, chain: _Chain, transfer: Transfer) -> TransferResult:
    """Validate one transfer, apply it to the chain's copies and queue its row."""
    key = (transfer.marketplace_id, transfer.id)
    if not is_valid_id(transfer.id, "trf_"):
        return R.ID_MUST_BE_VALID
    existing = _known_transfer(batch, chain, transfer.marketplace_id, transfer.id)
    if existing is not None:
        return _compare_with_existing(transfer, existing)
    if not _CODE_PATTERN.fullmatch(transfer.code):
        return R.CODE_MUST_BE_VALID
    if transfer.description is not None and len(transfer.description) > DESCRIPTION_LENGTH_MAX:
        return R.DESCRIPTION_TOO_LONG
    if transfer.phase in RESOLVING_PHASES:
        row = _resolve_pending(batch, chain, transfer)
    else:
        row = _new_movement(batch, chain, transfer)
    if isinstance(row, TransferResult):
        return row
    result = _apply(batch, chain, row)
    if result is R.OK:
        if chain.group is not None:
            row = msgspec.structs.replace(row, linked_group=chain.group)
        chain.transfers[key] = row
        chain.rows.append(row)
    return result


def _new_movement(
    batch: _Batch, chain: _Chain, transfer: Transfer
) -> StoredTransfer | TransferResult:
    """Validate a SINGLE or PENDING transfer and return its row."""
    refusal = _movement_fields_refusal(transfer)
    if refusal is not None:
        return refusal
    assert transfer.amount is not None
    debit = _account(batch, chain, transfer.marketplace_id, transfer.debit_account_id)
    if debit is None:
        return R.DEBIT_ACCOUNT_NOT_FOUND
    credit = _account(batch, chain, transfer.marketplace_id, transfer.credit_account_id)
    if credit is None:
        return R.CREDIT_ACCOUNT_NOT_FOUND
    if debit.asset != credit.asset:
        return R.ACCOUNTS_MUST_HAVE_THE_SAME_ASSET
    if transfer.asset != debit.asset:
        return R.TRANSFER_MUST_HAVE_THE_SAME_ASSET_AS_ACCOUNTS
    timeout = timedelta(seconds=transfer.timeout_s)
    return _stored(
        transfer,
        debit_account_id=transfer.debit_account_id,
        credit_account_id=transfer.credit_account_id,
        amount=transfer.amount,
        asset=transfer.asset,
        expires_at=batch.now + timeout if transfer.timeout_s else None,
    )


def _movement_fields_refusal(transfer: Transfer) -> TransferResult | None:
    """Check the fields of a SINGLE or PENDING transfer that need no account."""
    if transfer.pending_id is not None:
        return R.PENDING_ID_MUST_BE_EMPTY
    if not transfer.debit_account_id:
        return R.DEBIT_ACCOUNT_ID_MUST_NOT_BE_EMPTY
    if not transfer.credit_account_id:
        return R.CREDIT_ACCOUNT_ID_MUST_NOT_BE_EMPTY
    if transfer.debit_account_id == transfer.credit_account_id:
        return R.ACCOUNTS_MUST_BE_DIFFERENT
    if not transfer.asset:
        return R.ASSET_MUST_NOT_BE_EMPTY
    if transfer.amount is None or transfer.amount <= 0:
        return R.AMOUNT_MUST_BE_POSITIVE
    if transfer.timeout_s < 0:
        return R.TIMEOUT_MUST_NOT_BE_NEGATIVE
    if transfer.timeout_s > TIMEOUT_S_MAX:
        return R.TIMEOUT_TOO_LARGE
    if transfer.timeout_s > 0 and transfer.phase is not TransferPhase.PENDING:
        return R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
    return None


def _resolve_pending(
    batch: _Batch, chain: _Chain, transfer: Transfer
) -> StoredTransfer | TransferResult:
    """Validate a POST, VOID or EXPIRE against its pending transfer and return its row."""
    if transfer.pending_id is None:
        return R.PENDING_ID_MUST_NOT_BE_EMPTY
    if transfer.pending_id == transfer.id:
        return R.PENDING_ID_MUST_BE_DIFFERENT
    if transfer.timeout_s != 0:
        return R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
    if transfer.amount is not None and transfer.amount <= 0:
        return R.AMOUNT_MUST_BE_POSITIVE
    pending = _known_transfer(batch, chain, transfer.marketplace_id, transfer.pending_id)
    if pending is None:
        return R.PENDING_TRANSFER_NOT_FOUND
    if pending.phase is not TransferPhase.PENDING:
        return R.PENDING_TRANSFER_NOT_PENDING
    refusal = _pending_mismatch(transfer, pending) or _pending_closed(transfer, pending, batch.now)
    if refusal is not None:
        return refusal
    amount = pending.amount if transfer.amount is None else transfer.amount
    if transfer.phase is TransferPhase.POST_PENDING and amount > pending.amount:
        return R.EXCEEDS_PENDING_TRANSFER_AMOUNT
    if transfer.phase is not TransferPhase.POST_PENDING and amount != pending.amount:
        return R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
    return _stored(
        transfer,
        debit_account_id=pending.debit_account_id,
        credit_account_id=pending.credit_account_id,
        amount=amount,
        asset=pending.asset,
        expires_at=None,
    )


def _pending_mismatch(transfer: Transfer, pending: StoredTransfer) -> TransferResult | None:
    if transfer.debit_account_id and transfer.debit_account_id != pending.debit_account_id:
        return R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID
    if transfer.credit_account_id and transfer.credit_account_id != pending.credit_account_id:
        return R.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID
    if transfer.asset and transfer.asset != pending.asset:
        return R.PENDING_TRANSFER_HAS_DIFFERENT_ASSET
    return None


def _pending_closed(
    transfer: Transfer, pending: StoredTransfer, now: datetime
) -> TransferResult | None:
    """Return why ``transfer`` may not resolve ``pending`` now, or None if it may."""
    if pending.resolution is TransferPhase.POST_PENDING:
        return R.PENDING_TRANSFER_ALREADY_POSTED
    if pending.resolution is TransferPhase.VOID_PENDING:
        return R.PENDING_TRANSFER_ALREADY_VOIDED
    if pending.resolution is TransferPhase.EXPIRE_PENDING:
        return R.PENDING_TRANSFER_EXPIRED
    has_expired = pending.expires_at is not None and now >= pending.expires_at
    if transfer.phase is TransferPhase.EXPIRE_PENDING:
        # Only the sweep of a timed-out, still open pending transfer may expire it.
        return None if has_expired else R.PENDING_TRANSFER_NOT_EXPIRED
    return R.PENDING_TRANSFER_EXPIRED if has_expired else None


def _apply(batch: _Batch, chain: _Chain, row: StoredTransfer) -> TransferResult:
    """Apply ``row`` to the chain's copies of its two accounts, checking overflow and bounds."""
    debit = _chain_account(batch, chain, row.marketplace_id, row.debit_account_id)
    credit = _chain_account(batch, chain, row.marketplace_id, row.credit_account_id)
    if row.phase is TransferPhase.SINGLE:
        pending_delta, posted_delta = 0, row.amount
    elif row.phase is TransferPhase.PENDING:
        pending_delta, posted_delta = row.amount, 0
    else:
        assert row.pending_id is not None
        pending = _known_transfer(batch, chain, row.marketplace_id, row.pending_id)
        assert pending is not None
        # Resolving releases the whole pending amount; a post moves its (partial) amount to posted.
        pending_delta = -pending.amount
        posted_delta = row.amount if row.phase is TransferPhase.POST_PENDING else 0
        chain.transfers[(row.marketplace_id, pending.id)] = msgspec.structs.replace(
            pending, resolution=row.phase
        )
    new_debits = (debit.debits_pending + pending_delta, debit.debits_posted + posted_delta)
    new_credits = (credit.credits_pending + pending_delta, credit.credits_posted + posted_delta)
    overflow = _overflow(new_debits, new_credits)
    if overflow is not None:
        return overflow
    if debit.debits_must_not_exceed_credits and sum(new_debits) > debit.credits_posted:
        return R.EXCEEDS_CREDITS
    if credit.credits_must_not_exceed_debits and sum(new_credits) > credit.debits_posted:
        return R.EXCEEDS_DEBITS
    debit.debits_pending, debit.debits_posted = new_debits
    credit.credits_pending, credit.credits_posted = new_credits
    return R.OK


def _overflow(new_debits: tuple[int, int], new_credits: tuple[int, int]) -> TransferResult | None:
    if new_debits[0] > INT64_MAX:
        return R.OVERFLOWS_DEBITS_PENDING
    if new_credits[0] > INT64_MAX:
        return R.OVERFLOWS_CREDITS_PENDING
    if new_debits[1] > INT64_MAX:
        return R.OVERFLOWS_DEBITS_POSTED
    if new_credits[1] > INT64_MAX:
        return R.OVERFLOWS_CREDITS_POSTED
    if sum(new_debits) > INT64_MAX:
        return R.OVERFLOWS_DEBITS
    if sum(new_credits) > INT64_MAX:
        return R.OVERFLOWS_CREDITS
    return None


def _compare_with_existing(transfer: Transfer, existing: StoredTransfer) -> TransferResult:
    """Return ``exists`` if ``transfer`` repeats ``existing``, else the first field that differs."""
    if transfer.phase is not existing.phase:
        return R.EXISTS_WITH_DIFFERENT_PHASE
    if transfer.pending_id != existing.pending_id:
        return R.EXISTS_WITH_DIFFERENT_PENDING_ID
    if transfer.debit_account_id and transfer.debit_account_id != existing.debit_account_id:
        return R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
    if transfer.credit_account_id and transfer.credit_account_id != existing.credit_account_id:
        return R.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
    if transfer.amount is not None and transfer.amount != existing.amount:
        return R.EXISTS_WITH_DIFFERENT_AMOUNT
    if transfer.asset and transfer.asset != existing.asset:
        return R.EXISTS_WITH_DIFFERENT_ASSET
    if transfer.timeout_s != existing.timeout_s:
        return R.EXISTS_WITH_DIFFERENT_TIMEOUT
    if transfer.code != existing.code:
        return R.EXISTS_WITH_DIFFERENT_CODE
    references = (transfer.order_id, transfer.user_id, transfer.external_ref, transfer.description)
    stored = (existing.order_id, existing.user_id, existing.external_ref, existing.description)
    if references != stored:
        return R.EXISTS_WITH_DIFFERENT_REFERENCE
    return R.EXISTS


def _known_transfer(
    batch: _Batch, chain: _Chain, marketplace_id: str, transfer_id: str
) -> StoredTransfer | None:
    """A transfer accepted earlier in this chain, or committed (or accepted in the batch)."""
    key = (marketplace_id, transfer_id)
    return chain.transfers.get(key) or batch.known.get(key)


def _account(
    batch: _Batch, chain: _Chain, marketplace_id: str, account_id: str
) -> AccountState | None:
    key = (marketplace_id, account_id)
    return chain.accounts.get(key) or batch.accounts.get(key)


def _chain_account(
    batch: _Batch, chain: _Chain, marketplace_id: str, account_id: str
) -> AccountState:
    """Return the chain's private copy of an account, copying it on first use."""
    key = (marketplace_id, account_id)
    state = chain.accounts.get(key)
    if state is None:
        state = batch.accounts[key].copy()
        chain.accounts[key] = state
    return state


def _stored(
    transfer: Transfer,
    *,
    debit_account_id: str,
    credit_account_id: str,
    amount: int,
    asset: str,
    expires_at: datetime | None,
) -> StoredTransfer:
    return StoredTransfer(
        id=transfer.id,
        marketplace_id=transfer.marketplace_id,
        code=transfer.code,
        debit_account_id=debit_account_id,
        credit_account_id=credit_account_id,
        amount=amount,
        asset=asset,
        phase=transfer.phase,
        pending_id=transfer.pending_id,
        timeout_s=transfer.timeout_s,
        expires_at=expires_at,
        order_id=transfer.order_id,
        user_id=transfer.user_id,
        external_ref=transfer.external_ref,
        description=transfer.description,
    )
