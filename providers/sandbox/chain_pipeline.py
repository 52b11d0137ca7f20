"""Validation steps of the submission pipeline (providers.md 5.2, steps 1 and 3-8).

Each check returns the stellar-core ``TransactionResultCode`` that rejects the transaction, or
``None``. Rejected transactions never reach a ledger: no fee, no sequence change, no record.
The order of the checks is the order of 5.2, so a test can reach each code on its own.
"""

from dataclasses import dataclass

from stellar_sdk import (
    DecoratedSignature,
    FeeBumpTransactionEnvelope,
    Keypair,
    Transaction,
    TransactionEnvelope,
)
from stellar_sdk import xdr as stellar_xdr
from stellar_sdk.exceptions import BadSignatureError

from providers.sandbox.chain_state import LedgerState

__all__ = [
    "MalformedEnvelope",
    "ParsedEnvelope",
    "charged_fee",
    "check_fee_bump",
    "check_transaction",
    "parse_envelope",
]

Code = stellar_xdr.TransactionResultCode


class MalformedEnvelope(ValueError):
    """Not a transaction envelope (Horizon answers ``transaction_malformed``)."""


@dataclass(frozen=True)
class ParsedEnvelope:
    """A decoded envelope: the (inner) transaction, and the fee-bump around it if any."""

    envelope_xdr: str
    hash: str
    inner: TransactionEnvelope
    inner_hash: str
    fee_bump: FeeBumpTransactionEnvelope | None

    @property
    def transaction(self) -> Transaction:
        """The transaction whose operations apply."""
        return self.inner.transaction


def parse_envelope(envelope_xdr: str, passphrase: str) -> ParsedEnvelope:
    """Step 1: decode with stellar-sdk, else :class:`MalformedEnvelope`."""
    try:
        if FeeBumpTransactionEnvelope.is_fee_bump_transaction_envelope(envelope_xdr):
            outer = FeeBumpTransactionEnvelope.from_xdr(envelope_xdr, passphrase)
            inner = outer.transaction.inner_transaction_envelope
            return ParsedEnvelope(envelope_xdr, outer.hash_hex(), inner, inner.hash_hex(), outer)
        envelope = TransactionEnvelope.from_xdr(envelope_xdr, passphrase)
    except Exception as exc:  # the XDR unpacker and the SDK raise many unrelated types
        raise MalformedEnvelope(f"cannot decode the envelope: {type(exc).__name__}") from exc
    digest = envelope.hash_hex()
    return ParsedEnvelope(envelope_xdr, digest, envelope, digest, None)


def charged_fee(tx: Transaction, base_fee: int, *, extra_ops: int = 0) -> int:
    """The fee actually charged: base fee per operation (+1 op for a fee-bump) + resource fee.

    Without surge pricing core charges this minimum, not the bid ``tx.fee``.
    """
    resource_fee = tx.soroban_data.resource_fee.int64 if tx.soroban_data is not None else 0
    return base_fee * (len(tx.operations) + extra_ops) + resource_fee


def _verifies(key: Keypair, data: bytes, signature: DecoratedSignature) -> bool:
    if signature.signature_hint != key.signature_hint():
        return False
    try:
        key.verify(data, signature.signature)
    except BadSignatureError:
        return False
    return True


def _check_signatures(
    state: LedgerState, tx_hash: bytes, signatures: list[DecoratedSignature], needed: list[str]
) -> Code | None:
    """Step 7: each needed account reaches its threshold; every signature is used."""
    used = [False] * len(signatures)
    for account_id in needed:
        account = state.accounts.get(account_id)
        # An account created by this very tx (activation) can only sign with its master key.
        weights = account.signer_weights() if account else {account_id: 1}
        threshold = max(1, account.med_threshold) if account else 1
        total = 0
        for key_id, weight in weights.items():
            key = Keypair.from_public_key(key_id)
            for index, signature in enumerate(signatures):
                if _verifies(key, tx_hash, signature):
                    used[index] = True
                    total += weight
                    break
            if total >= threshold:
                break
        if total < threshold:
            return Code.txBAD_AUTH
    return None if all(used) else Code.txBAD_AUTH_EXTRA


def _needed_signers(tx: Transaction) -> list[str]:
    needed = [tx.source.account_id]
    for op in tx.operations:
        if op.source is not None and op.source.account_id not in needed:
            needed.append(op.source.account_id)
    return needed


def check_transaction(
    state: LedgerState,
    envelope: TransactionEnvelope,
    *,
    now_s: int,
    base_fee: int,
    pays_fee: bool,
) -> Code | None:
    """Steps 3-8 for one transaction (``pays_fee=False`` for the inner tx of a fee-bump)."""
    tx = envelope.transaction
    if not tx.operations:
        return Code.txMISSING_OPERATION
    source = state.accounts.get(tx.source.account_id)
    if source is None:
        return Code.txNO_ACCOUNT
    bounds = tx.preconditions.time_bounds if tx.preconditions is not None else None
    if bounds is not None and bounds.min_time and now_s < bounds.min_time:
        return Code.txTOO_EARLY
    # max_time 0 means "no upper bound".
    if bounds is not None and bounds.max_time and now_s > bounds.max_time:
        return Code.txTOO_LATE
    if tx.sequence != source.sequence + 1:
        return Code.txBAD_SEQ
    fee = charged_fee(tx, base_fee)
    if pays_fee and tx.fee < fee:
        return Code.txINSUFFICIENT_FEE
    auth = _check_signatures(state, envelope.hash(), envelope.signatures, _needed_signers(tx))
    if auth is not None:
        return auth
    if pays_fee and source.xlm - fee < source.min_balance():
        return Code.txINSUFFICIENT_BALANCE
    return None


def check_fee_bump(state: LedgerState, parsed: ParsedEnvelope, *, base_fee: int) -> Code | None:
    """The outer checks of a fee-bump: fee source exists, bid covers ops + 1, signed, can pay."""
    assert parsed.fee_bump is not None
    outer = parsed.fee_bump.transaction
    fee_source = state.accounts.get(outer.fee_source.account_id)
    if fee_source is None:
        return Code.txNO_ACCOUNT
    fee = charged_fee(parsed.transaction, base_fee, extra_ops=1)
    if outer.fee < fee:
        return Code.txINSUFFICIENT_FEE
    auth = _check_signatures(
        state, parsed.fee_bump.hash(), parsed.fee_bump.signatures, [fee_source.account_id]
    )
    if auth is not None:
        return auth
    if fee_source.xlm - fee < fee_source.min_balance():
        return Code.txINSUFFICIENT_BALANCE
    return None
