"""Applying operations to a working copy of the ledger, with stellar-core's result codes.

Each operation checks everything before it mutates anything, so a failed operation leaves the
working copy as it found it; the caller drops the whole copy when any operation failed (the
transaction is atomic). Check order follows stellar-core: for a payment the destination side
(no_destination, no_trust, line_full) comes before the source side (src_no_trust, underfunded).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from stellar_sdk import Asset, Operation
from stellar_sdk import xdr as stellar_xdr
from stellar_sdk.operation import (
    BeginSponsoringFutureReserves,
    ChangeTrust,
    CreateAccount,
    EndSponsoringFutureReserves,
    InvokeHostFunction,
    Payment,
)

from providers.sandbox.chain_host import HostCall, HostFunctionTrapped, IntentApply
from providers.sandbox.chain_results import OpResult
from providers.sandbox.chain_state import (
    BASE_RESERVE,
    INT64_MAX,
    AccountEntry,
    LedgerState,
    Trustline,
    asset_key,
)
from providers.stellar.port import AssetBalanceChange

__all__ = ["ApplyContext", "apply_operation"]

_T = stellar_xdr.OperationType
_MALFORMED = -1


@dataclass
class ApplyContext:
    """What operations of one transaction share while they apply."""

    state: LedgerState
    tx_hash: str
    tx_source: str
    ledger: int
    usdc_key: str
    intents: Mapping[str, IntentApply]
    # Active "begin sponsoring" relations of this tx: sponsored account -> sponsor.
    sponsoring: dict[str, str] = field(default_factory=dict)
    balance_changes: dict[int, list[AssetBalanceChange]] = field(default_factory=dict)
    on_commit: list[Callable[[], None]] = field(default_factory=list)


def apply_operation(ctx: ApplyContext, index: int, op: Operation) -> OpResult:
    """Apply one operation; unsupported types give ``op_not_supported``."""
    source_id = op.source.account_id if op.source is not None else ctx.tx_source
    op_type = op.to_xdr_object().body.type
    source = ctx.state.accounts.get(source_id)
    if source is None:
        return OpResult(op_type, outer=stellar_xdr.OperationResultCode.opNO_ACCOUNT)
    if isinstance(op, CreateAccount):
        return OpResult(op_type, _create_account(ctx, source, op))
    if isinstance(op, Payment):
        return OpResult(op_type, _payment(ctx, source, op))
    if isinstance(op, ChangeTrust):
        return OpResult(op_type, _change_trust(ctx, source, op))
    if isinstance(op, BeginSponsoringFutureReserves):
        return OpResult(op_type, _begin_sponsoring(ctx, source_id, op.sponsored_id))
    if isinstance(op, EndSponsoringFutureReserves):
        if ctx.sponsoring.pop(source_id, None) is None:
            return OpResult(op_type, -1)  # op_not_sponsored
        return OpResult(op_type)
    if isinstance(op, InvokeHostFunction):
        return OpResult(op_type, _invoke(ctx, index, source_id, op))
    return OpResult(op_type, outer=stellar_xdr.OperationResultCode.opNOT_SUPPORTED)


def _reserve_sponsor(ctx: ApplyContext, sponsored_id: str) -> AccountEntry | None:
    """The account paying new reserves of ``sponsored_id`` in this tx (None: the account itself)."""
    sponsor_id = ctx.sponsoring.get(sponsored_id)
    return ctx.state.accounts.get(sponsor_id) if sponsor_id is not None else None


def _create_account(ctx: ApplyContext, source: AccountEntry, op: CreateAccount) -> int:
    amount = Operation.to_xdr_amount(op.starting_balance)
    accounts = ctx.state.accounts
    if op.destination in accounts:
        return -4  # op_already_exists
    sponsor = _reserve_sponsor(ctx, op.destination)
    if sponsor is None and amount < 2 * BASE_RESERVE:
        return -3  # op_low_reserve
    if sponsor is not None and sponsor.xlm < sponsor.min_balance() + 2 * BASE_RESERVE:
        return -3
    extra = 2 * BASE_RESERVE if sponsor is source else 0
    if source.xlm - amount < source.min_balance() + extra:
        return -2  # op_underfunded
    source.xlm -= amount
    entry = AccountEntry(account_id=op.destination, sequence=ctx.ledger << 32, xlm=amount)
    entry.last_modified_ledger = ctx.ledger
    if sponsor is not None:
        sponsor.num_sponsoring += 2
        entry.num_sponsored = 2
        entry.sponsor = sponsor.account_id
    accounts[op.destination] = entry
    return 0


def _payment(ctx: ApplyContext, source: AccountEntry, op: Payment) -> int:
    amount = Operation.to_xdr_amount(op.amount)
    destination = ctx.state.accounts.get(op.destination.account_id)
    if amount <= 0:
        return _MALFORMED
    if destination is None:
        return -5  # op_no_destination
    if op.asset.is_native():
        return _pay_native(source, destination, amount)
    issuer = op.asset.issuer
    assert issuer is not None
    key = asset_key(op.asset.code, issuer)
    mints, burns = source.account_id == issuer, destination.account_id == issuer
    if not (mints or burns) and issuer not in ctx.state.accounts:
        return -9  # op_no_issuer
    dest_line = destination.trustlines.get(key)
    if not burns:
        if dest_line is None:
            return -6  # op_no_trust
        if not dest_line.authorized:
            return -7  # op_not_authorized
        if dest_line.balance + amount > dest_line.limit:
            return -8  # op_line_full
    src_line = source.trustlines.get(key)
    if not mints:
        if src_line is None:
            return -3  # op_src_no_trust
        if src_line.balance < amount:
            return -2  # op_underfunded
    _move_credit(ctx.state, key, src_line, dest_line, amount)
    return 0


def _move_credit(
    state: LedgerState, key: str, src: Trustline | None, dest: Trustline | None, amount: int
) -> None:
    """Move an issued asset; a missing side is the issuer, which mints or burns."""
    if src is None:
        state.minted[key] = state.minted.get(key, 0) + amount
    else:
        src.balance -= amount
    if dest is None:
        state.burned[key] = state.burned.get(key, 0) + amount
    else:
        dest.balance += amount


def _pay_native(source: AccountEntry, destination: AccountEntry, amount: int) -> int:
    if destination.xlm + amount > INT64_MAX:
        return -8  # op_line_full
    # XLM keeps the source's reserve: only the balance above the minimum can move.
    if source.xlm - amount < source.min_balance():
        return -2  # op_underfunded
    source.xlm -= amount
    destination.xlm += amount
    return 0


def _change_trust(ctx: ApplyContext, source: AccountEntry, op: ChangeTrust) -> int:
    asset = op.asset
    if not isinstance(asset, Asset) or asset.is_native() or asset.issuer == source.account_id:
        return _MALFORMED
    assert asset.issuer is not None
    key = asset_key(asset.code, asset.issuer)
    limit = Operation.to_xdr_amount(op.limit)
    line = source.trustlines.get(key)
    if line is not None:
        return _update_trustline(ctx, source, key, line, limit)
    if limit == 0:
        return -3  # op_invalid_limit: deleting a line that does not exist
    if asset.issuer not in ctx.state.accounts:
        return -2  # op_no_issuer
    sponsor = _reserve_sponsor(ctx, source.account_id)
    if sponsor is not None:
        if sponsor.xlm < sponsor.min_balance() + BASE_RESERVE:
            return -4  # op_low_reserve
        sponsor.num_sponsoring += 1
        source.num_sponsored += 1
    elif source.xlm < source.min_balance() + BASE_RESERVE:
        return -4
    source.subentries += 1
    sponsor_id = sponsor.account_id if sponsor is not None else None
    source.trustlines[key] = Trustline(limit=limit, sponsor=sponsor_id)
    return 0


def _update_trustline(
    ctx: ApplyContext, source: AccountEntry, key: str, line: Trustline, limit: int
) -> int:
    # stellar-core refuses any limit under the balance, removal included (op_invalid_limit).
    if limit < line.balance:
        return -3
    if limit > 0:
        line.limit = limit
        return 0
    del source.trustlines[key]
    source.subentries -= 1
    if line.sponsor is not None:
        source.num_sponsored -= 1
        ctx.state.accounts[line.sponsor].num_sponsoring -= 1
    return 0


def _begin_sponsoring(ctx: ApplyContext, sponsor_id: str, sponsored_id: str) -> int:
    if sponsored_id == sponsor_id:
        return _MALFORMED
    if sponsored_id in ctx.sponsoring:
        return -2  # op_already_sponsored
    if sponsor_id in ctx.sponsoring or sponsored_id in ctx.sponsoring.values():
        return -3  # op_recursive
    ctx.sponsoring[sponsored_id] = sponsor_id
    return 0


def _invoke(ctx: ApplyContext, index: int, source_id: str, op: InvokeHostFunction) -> int:
    """Run the intent registered for this tx hash; without one the contract call traps."""
    apply_fn = ctx.intents.get(ctx.tx_hash)
    if apply_fn is None:
        return -2  # op_trapped
    call = HostCall(
        ctx.state, tx_hash=ctx.tx_hash, source=source_id, operation=op, usdc_key=ctx.usdc_key
    )
    try:
        apply_fn(call)
    except HostFunctionTrapped:
        return -2
    ctx.balance_changes[index] = call.changes
    ctx.on_commit.extend(call.commit_hooks)
    return 0
