"""Build and sign the transactions of our own flows with stellar-sdk, hash first.

Every builder returns a :class:`SignedTx` whose ``hash`` is computed with the network
passphrase; the caller persists ``(hash, envelope_xdr, max_time)`` before submitting, so a
lost answer is settled by a hash lookup and never by a second build.

Activation uses **sponsored reserves** (begin_sponsoring_future_reserves / create_account /
change_trust USDC / end_sponsoring_future_reserves) rather than a fee-bump: the problem at
activation is the user's 1.5 XLM reserve, not the fee. The platform is the tx source, so it
already pays the fee; a fee-bump would not help. Sponsoring locks the reserve in the platform
account (recoverable when the wallet is merged) and the user receives only the fee float it
needs to sign Trustless Work transactions, whose source must be the user.

Time bounds come from the caller's clock (``now_s``), not from the wall clock, so the sandbox's
clock and persisted ``max_time`` agree.
"""

from typing import Final

import msgspec
from stellar_sdk import (
    Account,
    Asset,
    FeeBumpTransactionEnvelope,
    Keypair,
    TransactionBuilder,
    TransactionEnvelope,
)

from common.money import format_amount

__all__ = [
    "STANDALONE_PASSPHRASE",
    "SignedTx",
    "build_sponsored_activation",
    "build_usdc_payment",
    "envelope_hash",
    "fee_bump",
    "usdc_asset",
]

# A network passphrase, not a secret: it is public and part of every tx hash.
STANDALONE_PASSPHRASE: Final = "Standalone Network ; February 2017"  # noqa: S105
BASE_FEE: Final = 100
TIMEOUT_S: Final = 60


class SignedTx(msgspec.Struct, frozen=True, kw_only=True):
    """A signed envelope and what must be persisted before it is submitted."""

    hash: str
    envelope_xdr: str
    source: str
    sequence: int
    max_time: int


def usdc_asset(issuer: str) -> Asset:
    """The USDC asset of ``issuer``."""
    return Asset("USDC", issuer)


def _finish(builder: TransactionBuilder, signers: list[Keypair]) -> SignedTx:
    envelope = builder.build()
    for signer in signers:
        envelope.sign(signer)
    bounds = envelope.transaction.preconditions
    max_time = bounds.time_bounds.max_time if bounds and bounds.time_bounds else 0
    return SignedTx(
        hash=envelope.hash_hex(),
        envelope_xdr=envelope.to_xdr(),
        source=envelope.transaction.source.account_id,
        sequence=envelope.transaction.sequence,
        max_time=max_time,
    )


def build_sponsored_activation(
    *,
    platform: Keypair,
    platform_sequence: int,
    user: Keypair,
    usdc_issuer: str,
    passphrase: str,
    now_s: int,
    fee_float: int = 0,
    timeout_s: int = TIMEOUT_S,
    base_fee: int = BASE_FEE,
) -> SignedTx:
    """Create ``user`` with a USDC trustline, its reserves sponsored by ``platform``; one atomic tx.

    Args:
        platform_sequence: The platform account's current sequence (the tx uses it + 1).
        fee_float: XLM stroops given to the user for future fees (0 is allowed when sponsored).
        now_s: The caller's clock; the tx expires at ``now_s + timeout_s``.
    """
    builder = (
        TransactionBuilder(Account(platform.public_key, platform_sequence), passphrase, base_fee)
        .append_begin_sponsoring_future_reserves_op(user.public_key)
        .append_create_account_op(user.public_key, format_amount(fee_float))
        .append_change_trust_op(usdc_asset(usdc_issuer), source=user.public_key)
        .append_end_sponsoring_future_reserves_op(source=user.public_key)
        .add_time_bounds(0, now_s + timeout_s)
    )
    return _finish(builder, [platform, user])


def build_usdc_payment(
    *,
    source: Keypair,
    sequence: int,
    destination: str,
    amount: int,
    usdc_issuer: str,
    passphrase: str,
    now_s: int,
    memo: str | None = None,
    timeout_s: int = TIMEOUT_S,
    base_fee: int = BASE_FEE,
) -> SignedTx:
    """Pay ``amount`` stroops of USDC from ``source`` (current ``sequence``) to ``destination``."""
    if amount <= 0:
        raise ValueError("a payment amount must be positive")
    builder = TransactionBuilder(Account(source.public_key, sequence), passphrase, base_fee)
    builder.append_payment_op(destination, usdc_asset(usdc_issuer), format_amount(amount))
    if memo is not None:
        builder.add_text_memo(memo)
    builder.add_time_bounds(0, now_s + timeout_s)
    return _finish(builder, [source])


def fee_bump(
    *, fee_source: Keypair, inner_envelope_xdr: str, passphrase: str, base_fee: int = BASE_FEE
) -> SignedTx:
    """Wrap a signed inner tx in a fee-bump paid by ``fee_source``.

    The inner hash is unchanged; the returned ``hash`` is the outer one. Persist both.
    """
    inner = TransactionEnvelope.from_xdr(inner_envelope_xdr, passphrase)
    outer = TransactionBuilder.build_fee_bump_transaction(
        fee_source.public_key, base_fee, inner, passphrase
    )
    outer.sign(fee_source)
    bounds = inner.transaction.preconditions
    return SignedTx(
        hash=outer.hash_hex(),
        envelope_xdr=outer.to_xdr(),
        source=inner.transaction.source.account_id,
        sequence=inner.transaction.sequence,
        max_time=bounds.time_bounds.max_time if bounds and bounds.time_bounds else 0,
    )


def envelope_hash(envelope_xdr: str, passphrase: str) -> str:
    """The hex hash of a (possibly fee-bump) envelope under ``passphrase``; signatures excluded."""
    if FeeBumpTransactionEnvelope.is_fee_bump_transaction_envelope(envelope_xdr):
        return FeeBumpTransactionEnvelope.from_xdr(envelope_xdr, passphrase).hash_hex()
    return TransactionEnvelope.from_xdr(envelope_xdr, passphrase).hash_hex()
