"""The sandbox submission pipeline (providers.md 5.2), each step hit by a real signed envelope."""

import pytest
from stellar_sdk import Account, Asset, Keypair, Network, TransactionBuilder, TransactionEnvelope
from stellar_sdk.operation import Payment

from providers.sandbox.chain import SandboxChain
from providers.sandbox.clock import SandboxClock
from providers.stellar.keys import fee_bump

START_S = 1_700_000_000
XLM = 10_000_000


@pytest.fixture
def chain() -> SandboxChain:
    return SandboxChain(SandboxClock(START_S), seed=1)


def _envelope(
    chain: SandboxChain,
    source: Keypair,
    *,
    to: str,
    amount: str = "1",
    sequence: int | None = None,
    base_fee: int = 100,
    bounds: tuple[int, int] | None = None,
    signers: tuple[Keypair, ...] | None = None,
    passphrase: str | None = None,
) -> TransactionEnvelope:
    entry = chain.account(source.public_key)
    current = sequence if sequence is not None else (entry.sequence if entry else 0)
    builder = TransactionBuilder(
        Account(source.public_key, current), passphrase or chain.passphrase, base_fee
    )
    builder.append_operation(Payment(to, Asset.native(), amount))
    low, high = bounds or (0, chain.clock.now_s() + 60)
    builder.add_time_bounds(low, high)
    envelope = builder.build()
    for keypair in (source,) if signers is None else signers:
        envelope.sign(keypair)
    return envelope


def _rejected_code(chain: SandboxChain, envelope_xdr: str) -> str:
    submission = chain.submit(envelope_xdr)
    assert submission.kind == "rejected"
    assert submission.result is not None
    return submission.result.codes.transaction


def test_undecodable_envelope_is_malformed(chain: SandboxChain) -> None:
    submission = chain.submit("not-xdr")
    assert submission.kind == "malformed"
    assert submission.tx is None


def test_source_must_exist(chain: SandboxChain) -> None:
    ghost = chain.new_keypair()
    envelope = _envelope(chain, ghost, to=chain.outside.public_key)
    assert _rejected_code(chain, envelope.to_xdr()) == "tx_no_source_account"


def test_time_bounds_too_early_and_too_late(chain: SandboxChain) -> None:
    user = chain.activate()
    now = chain.clock.now_s()
    early = _envelope(chain, user, to=chain.outside.public_key, bounds=(now + 100, now + 200))
    assert _rejected_code(chain, early.to_xdr()) == "tx_too_early"
    late = _envelope(chain, user, to=chain.outside.public_key, bounds=(0, now - 1))
    assert _rejected_code(chain, late.to_xdr()) == "tx_too_late"


def test_sequence_must_be_next(chain: SandboxChain) -> None:
    user = chain.activate()
    seq = chain.account(user.public_key).sequence  # type: ignore[union-attr]
    ahead = _envelope(chain, user, to=chain.outside.public_key, sequence=seq + 1)
    assert _rejected_code(chain, ahead.to_xdr()) == "tx_bad_seq"


def test_external_sequence_bump_makes_a_built_tx_fail_bad_seq(chain: SandboxChain) -> None:
    user = chain.activate()
    envelope = _envelope(chain, user, to=chain.outside.public_key)
    chain.bump_sequence(user.public_key)
    assert _rejected_code(chain, envelope.to_xdr()) == "tx_bad_seq"


def test_fee_below_minimum_and_surge(chain: SandboxChain) -> None:
    user = chain.activate()
    cheap = _envelope(chain, user, to=chain.outside.public_key, base_fee=99)
    assert _rejected_code(chain, cheap.to_xdr()) == "tx_insufficient_fee"
    chain.base_fee = 500  # surge pricing raises the minimum
    normal = _envelope(chain, user, to=chain.outside.public_key, base_fee=100)
    assert _rejected_code(chain, normal.to_xdr()) == "tx_insufficient_fee"


@pytest.mark.parametrize("case", ["unsigned", "wrong_key", "wrong_network"])
def test_missing_or_wrong_signature_is_bad_auth(chain: SandboxChain, case: str) -> None:
    user = chain.activate()
    if case == "unsigned":
        envelope = _envelope(chain, user, to=chain.outside.public_key, signers=())
    elif case == "wrong_key":
        other = chain.new_keypair()
        envelope = _envelope(chain, user, to=chain.outside.public_key, signers=(other,))
    else:
        signed = _envelope(
            chain, user, to=chain.outside.public_key, passphrase=Network.TESTNET_NETWORK_PASSPHRASE
        )
        envelope = signed  # same bytes, signature over the testnet hash
    assert _rejected_code(chain, envelope.to_xdr()) == "tx_bad_auth"


def test_hint_matching_but_forged_signature_is_bad_auth(chain: SandboxChain) -> None:
    user = chain.activate()
    envelope = _envelope(chain, user, to=chain.outside.public_key)
    forged = envelope.signatures[0]
    forged.signature = bytes(64)  # the hint still names the user's key
    assert _rejected_code(chain, envelope.to_xdr()) == "tx_bad_auth"


def test_unused_signature_is_bad_auth_extra(chain: SandboxChain) -> None:
    user, stranger = chain.activate(), chain.new_keypair()
    envelope = _envelope(chain, user, to=chain.outside.public_key, signers=(user, stranger))
    assert _rejected_code(chain, envelope.to_xdr()) == "tx_bad_auth_extra"


def test_fee_that_would_breach_the_reserve_is_insufficient_balance(chain: SandboxChain) -> None:
    poor = chain.new_keypair()
    assert chain.friendbot(poor.public_key, xlm=1 * XLM).successful  # exactly the 2-entry reserve
    envelope = _envelope(chain, poor, to=chain.outside.public_key, amount="0.0000001")
    assert _rejected_code(chain, envelope.to_xdr()) == "tx_insufficient_balance"


def test_rejected_tx_changes_nothing(chain: SandboxChain) -> None:
    user = chain.activate()
    before = chain.account(user.public_key)
    ledger = chain.ledger
    envelope = _envelope(chain, user, to=chain.outside.public_key, base_fee=1)
    assert chain.submit(envelope.to_xdr()).kind == "rejected"
    assert chain.account(user.public_key) == before
    assert chain.ledger == ledger
    assert chain.transaction(envelope.hash_hex()) is None


def test_failed_tx_charges_fee_and_consumes_sequence(chain: SandboxChain) -> None:
    user = chain.activate()
    entry = chain.account(user.public_key)
    assert entry is not None
    xlm, seq = entry.xlm, entry.sequence
    ghost = chain.new_keypair().public_key
    submission = chain.sign_and_submit(user, [Payment(ghost, Asset.native(), "5")])
    assert submission.kind == "applied"
    assert submission.tx is not None
    assert not submission.tx.successful
    assert submission.tx.result_codes.transaction == "tx_failed"
    assert submission.tx.result_codes.operations == ("op_no_destination",)
    after = chain.account(user.public_key)
    assert after is not None
    assert (after.xlm, after.sequence) == (xlm - 100, seq + 1)


def test_resubmitting_an_applied_hash_returns_the_stored_result(chain: SandboxChain) -> None:
    user = chain.activate()
    envelope = _envelope(chain, user, to=chain.outside.public_key, amount="3")
    first = chain.submit(envelope.to_xdr())
    assert first.successful
    balances = chain.account(user.public_key)
    ledger = chain.ledger
    again = chain.submit(envelope.to_xdr())
    assert again.replayed
    assert again.tx == first.tx
    assert chain.account(user.public_key) == balances
    assert chain.ledger == ledger


def test_fee_bump_pays_from_the_fee_source_and_keeps_the_inner_hash(chain: SandboxChain) -> None:
    user, sponsor = chain.activate(), chain.activate()
    inner = _envelope(chain, user, to=chain.outside.public_key, base_fee=0, amount="2")
    outer = fee_bump(
        fee_source=sponsor, inner_envelope_xdr=inner.to_xdr(), passphrase=chain.passphrase
    )
    sponsor_xlm = chain.account(sponsor.public_key).xlm  # type: ignore[union-attr]
    submission = chain.submit(outer.envelope_xdr)
    assert submission.successful
    assert submission.tx is not None
    assert submission.tx.result_codes.transaction == "tx_fee_bump_inner_success"
    assert chain.account(sponsor.public_key).xlm == sponsor_xlm - 200  # type: ignore[union-attr]
    assert chain.transaction(inner.hash_hex()) == chain.transaction(outer.hash)


def test_fee_bump_wraps_inner_rejections(chain: SandboxChain) -> None:
    user, sponsor = chain.activate(), chain.activate()
    seq = chain.account(user.public_key).sequence  # type: ignore[union-attr]
    inner = _envelope(chain, user, to=chain.outside.public_key, sequence=seq + 5)
    outer = fee_bump(
        fee_source=sponsor, inner_envelope_xdr=inner.to_xdr(), passphrase=chain.passphrase
    )
    submission = chain.submit(outer.envelope_xdr)
    assert submission.result is not None
    assert submission.result.codes.transaction == "tx_fee_bump_inner_failed"
    assert submission.result.codes.inner_transaction == "tx_bad_seq"


def test_fee_bump_outer_checks(chain: SandboxChain) -> None:
    user, sponsor = chain.activate(), chain.activate()
    inner = _envelope(chain, user, to=chain.outside.public_key)
    cheap = fee_bump(
        fee_source=sponsor, inner_envelope_xdr=inner.to_xdr(), passphrase=chain.passphrase
    )
    chain.base_fee = 150  # 150 x 2 > the 100 x 2 bid of the fee-bump
    assert _rejected_code(chain, cheap.envelope_xdr) == "tx_insufficient_fee"
    chain.base_fee = 100
    ghost = chain.new_keypair()
    orphan = fee_bump(
        fee_source=ghost, inner_envelope_xdr=inner.to_xdr(), passphrase=chain.passphrase
    )
    assert _rejected_code(chain, orphan.envelope_xdr) == "tx_no_source_account"
