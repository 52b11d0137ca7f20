"""The simulated ledger: the submission pipeline, atomic application, the tx store and reads.

:class:`ChainCore` runs providers.md 5.2 in order: decode (``transaction_malformed``), a hash
already stored returns its stored result (idempotent), then source, time bounds, sequence,
fee, signatures, fee balance. A transaction that passes is in a ledger: its fee is charged and
its sequence consumed even when an operation fails (``tx_failed``); the operations themselves
apply all-or-nothing on a copy of the state. One transaction closes one ledger.
"""

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from stellar_sdk import xdr as stellar_xdr

from providers.sandbox.chain_apply import ApplyContext, apply_operation
from providers.sandbox.chain_host import IntentApply
from providers.sandbox.chain_pipeline import (
    MalformedEnvelope,
    ParsedEnvelope,
    charged_fee,
    check_fee_bump,
    check_transaction,
    parse_envelope,
)
from providers.sandbox.chain_records import iso_time, memo_fields, op_records
from providers.sandbox.chain_results import TxResult, build_result
from providers.sandbox.chain_state import AccountEntry, LedgerState, OpRecord, TxRecord
from providers.sandbox.clock import SandboxClock

__all__ = ["ChainCore", "Submission"]

Code = stellar_xdr.TransactionResultCode


@dataclass(frozen=True)
class Submission:
    """The pipeline's answer.

    ``applied``: in a ledger (``tx.successful`` says whether its operations took effect);
    ``rejected``: refused before any ledger (``result`` holds the code); ``malformed``: not
    decodable. ``replayed`` marks a stored result returned for an already-applied hash.
    """

    kind: Literal["applied", "rejected", "malformed"]
    envelope_xdr: str
    hash: str | None = None
    tx: TxRecord | None = None
    result: TxResult | None = None
    detail: str = ""
    replayed: bool = False

    @property
    def successful(self) -> bool:
        """Whether the transaction is in a ledger and its operations took effect."""
        return self.tx is not None and self.tx.successful


class ChainCore:
    """State, pipeline and reads of the simulated chain (test helpers live in ``SandboxChain``)."""

    def __init__(
        self,
        clock: SandboxClock,
        *,
        passphrase: str,
        usdc_key: str,
        base_fee: int = 100,
        seconds_per_ledger: int = 5,
    ) -> None:
        self.clock = clock
        self.passphrase = passphrase
        self.usdc_key = usdc_key
        # The minimum inclusion fee per operation; raise it to simulate surge pricing.
        self.base_fee = base_fee
        self.seconds_per_ledger = seconds_per_ledger
        self.state = LedgerState()
        self.ledger = 1
        self.closed_at = clock.now_s()
        self.transactions: dict[str, TxRecord] = {}
        self.operations: list[OpRecord] = []
        self._intents: dict[str, IntentApply] = {}

    def register_intent(self, tx_hash: str, apply_fn: IntentApply) -> None:
        """Make ``invoke_host_function`` in the tx with this (inner) hash run ``apply_fn``."""
        self._intents[tx_hash] = apply_fn

    def submit(self, envelope_xdr: str) -> Submission:
        """Run the submission pipeline on a base64 envelope (plain or fee-bump)."""
        try:
            parsed = parse_envelope(envelope_xdr, self.passphrase)
        except MalformedEnvelope as exc:
            return Submission("malformed", envelope_xdr, detail=str(exc))
        stored = self.transactions.get(parsed.hash)
        if stored is not None:
            return Submission("applied", envelope_xdr, parsed.hash, tx=stored, replayed=True)
        now_s = self.clock.now_s()
        if parsed.fee_bump is not None:
            outer_code = check_fee_bump(self.state, parsed, base_fee=self.base_fee)
            if outer_code is not None:
                return self._reject(parsed, outer_code, inner=False)
        code = check_transaction(
            self.state,
            parsed.inner,
            now_s=now_s,
            base_fee=self.base_fee,
            pays_fee=parsed.fee_bump is None,
        )
        if code is not None:
            return self._reject(parsed, code, inner=True)
        return self._apply(parsed, now_s)

    def _reject(self, parsed: ParsedEnvelope, code: Code, *, inner: bool) -> Submission:
        wrap = parsed.inner_hash if inner and parsed.fee_bump is not None else None
        result = build_result(code, 0, fee_bump_inner_hash=wrap)
        return Submission("rejected", parsed.envelope_xdr, parsed.hash, result=result)

    def _apply(self, parsed: ParsedEnvelope, now_s: int) -> Submission:
        tx = parsed.transaction
        fee_bump = parsed.fee_bump
        fee_account = fee_bump.transaction.fee_source.account_id if fee_bump else None
        fee = charged_fee(tx, self.base_fee, extra_ops=1 if fee_bump else 0)
        ledger = self.ledger + 1
        # Fee and sequence are committed whatever the operations do.
        payer = self.state.accounts[fee_account or tx.source.account_id]
        payer.xlm -= fee
        self.state.fee_pool += fee
        self.state.accounts[tx.source.account_id].sequence = tx.sequence
        ctx = ApplyContext(
            state=self.state.copy(),
            tx_hash=parsed.inner_hash,
            tx_source=tx.source.account_id,
            ledger=ledger,
            usdc_key=self.usdc_key,
            intents=self._intents,
        )
        results = [apply_operation(ctx, i, op) for i, op in enumerate(tx.operations)]
        code = Code.txSUCCESS if all(r.ok for r in results) else Code.txFAILED
        if code == Code.txSUCCESS and ctx.sponsoring:
            code = Code.txBAD_SPONSORSHIP  # a begin_sponsoring without its end
        if code == Code.txSUCCESS:
            self.state = ctx.state
        result = build_result(
            code,
            fee,
            results,
            fee_bump_inner_hash=parsed.inner_hash if fee_bump else None,
            inner_fee_charged=fee,
        )
        record = self._store(
            parsed, result=result, fee=fee, ledger=ledger, now_s=now_s, fee_account=fee_account
        )
        self.operations.extend(
            op_records(
                tx,
                tx_hash=parsed.hash,
                ledger=ledger,
                created_at=record.created_at,
                successful=record.successful,
                balance_changes=ctx.balance_changes if record.successful else {},
            )
        )
        self._close_ledger(ledger, now_s, ctx.on_commit if record.successful else [])
        return Submission("applied", parsed.envelope_xdr, parsed.hash, tx=record)

    def _store(
        self,
        parsed: ParsedEnvelope,
        *,
        result: TxResult,
        fee: int,
        ledger: int,
        now_s: int,
        fee_account: str | None,
    ) -> TxRecord:
        tx = parsed.transaction
        memo_type, memo = memo_fields(tx.memo)
        bounds = tx.preconditions.time_bounds if tx.preconditions is not None else None
        outer = parsed.fee_bump
        signatures = (outer or parsed.inner).signatures
        record = TxRecord(
            hash=parsed.hash,
            ledger=ledger,
            created_at=iso_time(now_s),
            successful=result.successful,
            source_account=tx.source.account_id,
            source_sequence=tx.sequence,
            fee_account=fee_account or tx.source.account_id,
            fee_charged=fee,
            max_fee=outer.transaction.fee if outer else tx.fee,
            operation_count=len(tx.operations),
            envelope_xdr=parsed.envelope_xdr,
            result_xdr=result.result_xdr,
            result_codes=result.codes,
            memo_type=memo_type,
            memo=memo,
            min_time=bounds.min_time if bounds else 0,
            max_time=bounds.max_time if bounds else 0,
            signatures=tuple(base64.b64encode(s.signature).decode() for s in signatures),
            inner_hash=parsed.inner_hash if outer else None,
        )
        self.transactions[parsed.hash] = record
        self.transactions.setdefault(parsed.inner_hash, record)
        return record

    def _close_ledger(self, ledger: int, now_s: int, hooks: list[Callable[[], None]]) -> None:
        self.ledger = ledger
        self.closed_at = now_s
        for hook in hooks:
            hook()
        # A frozen clock moves one ledger's worth per close. One that follows real time must not
        # run ahead of it: a busy sandbox would drift minutes ahead, and Airtm's webhook
        # signatures, stamped with this clock, are refused 300 s away from the receiver's time.
        if self.seconds_per_ledger and not self.clock.follows_wall_clock:
            self.clock.advance(self.seconds_per_ledger)

    def account(self, account_id: str) -> AccountEntry | None:
        """The account's entry, or None when it does not exist."""
        return self.state.accounts.get(account_id)

    def transaction(self, tx_hash: str) -> TxRecord | None:
        """A stored transaction by its hash (a fee-bump also by its inner hash)."""
        return self.transactions.get(tx_hash)

    def payments(
        self,
        *,
        account_id: str | None = None,
        tx_hash: str | None = None,
        cursor: int | None = None,
        order: Literal["asc", "desc"] = "asc",
        limit: int = 10,
        include_failed: bool = False,
    ) -> list[OpRecord]:
        """Payment records of ``account_id`` (or of ``tx_hash``), strictly after ``cursor``."""
        selected = [
            r
            for r in self.operations
            if (account_id is None or account_id in r.participants)
            and (tx_hash is None or r.tx_hash == tx_hash)
            and (include_failed or r.successful)
        ]
        if order == "desc":
            selected.reverse()
        if cursor is not None:
            ascending = order == "asc"
            selected = [r for r in selected if (r.id > cursor if ascending else r.id < cursor)]
        return selected[:limit]

    def usdc_balance(self, address: str) -> int | None:
        """USDC of an account (None without a trustline or account) or of a contract."""
        if address.startswith("C"):
            return self.state.contracts.get(address, 0)
        entry = self.state.accounts.get(address)
        line = entry.trustlines.get(self.usdc_key) if entry else None
        return line.balance if line else None

    def total_usdc(self) -> int:
        """USDC held by every account and contract (the issuer holds none: it mints)."""
        lines = sum(
            line.balance
            for entry in self.state.accounts.values()
            for key, line in entry.trustlines.items()
            if key == self.usdc_key
        )
        return lines + sum(self.state.contracts.values())
