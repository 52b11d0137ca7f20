"""Verification of unsigned envelopes (providers.md 1.10) on real stellar_sdk envelopes.

Each test builds what TW would return for an action (one invoke_host_function on the escrow
contract with address and i128 arguments), then tampers with one aspect of it.
"""

from collections.abc import Sequence

import pytest
from stellar_sdk import (
    Account,
    Address,
    Asset,
    Keypair,
    Network,
    StrKey,
    TransactionBuilder,
    TransactionEnvelope,
    scval,
    xdr,
)
from stellar_sdk.memo import TextMemo

from providers.errors import ProviderResponseInvalid
from providers.trustless_work.xdr_check import (
    ExpectedInvocation,
    XdrPolicy,
    verify_unsigned_xdr,
)

PASSPHRASE = Network.STANDALONE_NETWORK_PASSPHRASE
NOW_S = 1_800_000_000
SEQUENCE = 41


def _key(seed: int) -> Keypair:
    return Keypair.from_raw_ed25519_seed(bytes([seed]) * 32)


BUYER = _key(1).public_key
SELLER = _key(2).public_key
PLATFORM = _key(3).public_key
TW_FEE = _key(4).public_key
ATTACKER = _key(9).public_key
ESCROW = StrKey.encode_contract(b"\x10" * 32)
OTHER_ESCROW = StrKey.encode_contract(b"\x11" * 32)
USDC = StrKey.encode_contract(b"\x20" * 32)
POLICY = XdrPolicy(network_passphrase=PASSPHRASE, token_contract_id=USDC)

FUND_AMOUNT = 1_000_000_000
FUND_EXPECTED = ExpectedInvocation(
    source_address=BUYER,
    contract_id=ESCROW,
    function_names=frozenset({"fund_escrow"}),
    amounts_minor=(FUND_AMOUNT,),
    account_sequence=SEQUENCE,
)


def _builder(source: str = BUYER, *, timeout_s: int | None = 300) -> TransactionBuilder:
    builder = TransactionBuilder(Account(source, SEQUENCE), PASSPHRASE, base_fee=100)
    if timeout_s is not None:
        builder.add_time_bounds(0, NOW_S + timeout_s)
    return builder


def _fund_args(signer: str = BUYER, amount_minor: int = FUND_AMOUNT) -> list[xdr.SCVal]:
    return [scval.to_address(signer), scval.to_int128(amount_minor)]


def _envelope(
    *,
    source: str = BUYER,
    contract_id: str = ESCROW,
    function_name: str = "fund_escrow",
    args: Sequence[xdr.SCVal] | None = None,
    auth: Sequence[xdr.SorobanAuthorizationEntry] | None = None,
    timeout_s: int | None = 300,
) -> TransactionEnvelope:
    builder = _builder(source, timeout_s=timeout_s)
    arguments = _fund_args() if args is None else list(args)
    builder.append_invoke_contract_function_op(contract_id, function_name, arguments, auth=auth)
    return builder.build()


def _verify(envelope_xdr: str, expected: ExpectedInvocation = FUND_EXPECTED) -> str:
    return verify_unsigned_xdr(envelope_xdr, expected, POLICY, now_s=NOW_S).tx_hash


def _assert_tampered(
    envelope_xdr: str, check: str, expected: ExpectedInvocation = FUND_EXPECTED
) -> None:
    with pytest.raises(ProviderResponseInvalid, match=f"the {check} check") as caught:
        _verify(envelope_xdr, expected)
    assert caught.value.reason == "tampered_xdr"
    assert caught.value.provider == "trustless_work"


def test_good_fund_envelope_returns_the_network_hash() -> None:
    envelope = _envelope()
    verified = verify_unsigned_xdr(envelope.to_xdr(), FUND_EXPECTED, POLICY, now_s=NOW_S)
    assert verified.tx_hash == envelope.hash_hex()
    assert verified.max_time == NOW_S + 300
    assert verified.sequence == SEQUENCE + 1
    # The hash is stable across signing, so it can be persisted before the signature.
    envelope.sign(_key(1))
    assert envelope.hash_hex() == verified.tx_hash


def test_hash_depends_on_the_configured_passphrase() -> None:
    envelope_xdr = _envelope().to_xdr()
    testnet = XdrPolicy(network_passphrase=Network.TESTNET_NETWORK_PASSPHRASE)
    other = verify_unsigned_xdr(envelope_xdr, FUND_EXPECTED, testnet, now_s=NOW_S)
    assert other.tx_hash != _verify(envelope_xdr)


def test_wrong_source_is_refused() -> None:
    envelope = _envelope(source=ATTACKER, args=_fund_args(signer=BUYER))
    _assert_tampered(envelope.to_xdr(), "source")


def test_wrong_contract_is_refused() -> None:
    _assert_tampered(_envelope(contract_id=OTHER_ESCROW).to_xdr(), "contract")


def test_wrong_amount_is_refused() -> None:
    envelope = _envelope(args=_fund_args(amount_minor=FUND_AMOUNT * 10))
    _assert_tampered(envelope.to_xdr(), "amounts")


def test_extra_amount_is_refused() -> None:
    envelope = _envelope(args=[*_fund_args(), scval.to_int128(1)])
    _assert_tampered(envelope.to_xdr(), "amounts")


def test_wrong_function_is_refused() -> None:
    _assert_tampered(_envelope(function_name="release_funds").to_xdr(), "function")


def test_extra_payment_operation_is_refused() -> None:
    builder = _builder()
    builder.append_invoke_contract_function_op(ESCROW, "fund_escrow", _fund_args())
    builder.append_payment_op(ATTACKER, Asset("USDC", PLATFORM), "100")
    _assert_tampered(builder.build().to_xdr(), "operations")


def test_payment_instead_of_invocation_is_refused() -> None:
    builder = _builder()
    builder.append_payment_op(ATTACKER, Asset("USDC", PLATFORM), "100")
    _assert_tampered(builder.build().to_xdr(), "operations")


def test_operation_with_another_source_is_refused() -> None:
    builder = _builder()
    builder.append_invoke_contract_function_op(ESCROW, "fund_escrow", _fund_args(), source=SELLER)
    _assert_tampered(builder.build().to_xdr(), "operation source")


def test_unbounded_time_is_refused() -> None:
    builder = _builder(timeout_s=None)
    builder.add_time_bounds(0, 0)
    builder.append_invoke_contract_function_op(ESCROW, "fund_escrow", _fund_args())
    _assert_tampered(builder.build().to_xdr(), "time bounds")


def test_missing_preconditions_are_refused() -> None:
    envelope = _envelope()
    envelope.transaction.preconditions = None
    _assert_tampered(envelope.to_xdr(), "time bounds")


@pytest.mark.parametrize("timeout_s", [5, 16 * 60])
def test_time_bounds_too_short_or_too_long_are_refused(timeout_s: int) -> None:
    _assert_tampered(_envelope(timeout_s=timeout_s).to_xdr(), "time bounds")


def test_signed_envelope_is_refused() -> None:
    envelope = _envelope()
    envelope.sign(_key(1))
    _assert_tampered(envelope.to_xdr(), "signatures")


def test_fee_bump_envelope_is_refused() -> None:
    inner = _envelope()
    bump = TransactionBuilder.build_fee_bump_transaction(PLATFORM, 200, inner, PASSPHRASE)
    _assert_tampered(bump.to_xdr(), "envelope type")


def test_garbage_is_refused() -> None:
    _assert_tampered("not-xdr", "decode")


def test_memo_is_refused() -> None:
    builder = _builder()
    builder.add_memo(TextMemo("hi"))
    builder.append_invoke_contract_function_op(ESCROW, "fund_escrow", _fund_args())
    _assert_tampered(builder.build().to_xdr(), "memo")


def test_fee_above_cap_is_refused() -> None:
    builder = TransactionBuilder(Account(BUYER, SEQUENCE), PASSPHRASE, base_fee=30_000_000)
    builder.add_time_bounds(0, NOW_S + 300)
    builder.append_invoke_contract_function_op(ESCROW, "fund_escrow", _fund_args())
    _assert_tampered(builder.build().to_xdr(), "fee")


def test_stale_sequence_is_refused() -> None:
    expected = FUND_EXPECTED.__replace__(account_sequence=SEQUENCE + 1)
    _assert_tampered(_envelope().to_xdr(), "sequence", expected)


def test_missing_signer_argument_is_refused() -> None:
    envelope = _envelope(args=[scval.to_int128(FUND_AMOUNT)])
    _assert_tampered(envelope.to_xdr(), "signer")


def test_unexpected_address_in_a_nested_struct_is_refused() -> None:
    nested = scval.to_map({scval.to_symbol("receiver"): scval.to_address(ATTACKER)})
    envelope = _envelope(args=[*_fund_args(), nested])
    _assert_tampered(envelope.to_xdr(), "addresses")


def test_nested_escrow_struct_amounts_must_be_declared() -> None:
    # fund_escrow may carry the expected escrow state; its amount is an i128 too.
    escrow_struct = scval.to_map(
        {
            scval.to_symbol("amount"): scval.to_int128(FUND_AMOUNT),
            scval.to_symbol("receiver"): scval.to_address(SELLER),
        }
    )
    envelope_xdr = _envelope(args=[*_fund_args(), escrow_struct]).to_xdr()
    _assert_tampered(envelope_xdr, "amounts")
    expected = FUND_EXPECTED.__replace__(
        amounts_minor=(FUND_AMOUNT, FUND_AMOUNT), other_addresses=frozenset({SELLER})
    )
    assert _verify(envelope_xdr, expected)


RESOLVE_DISTRIBUTIONS = ((SELLER, 600_000_000), (BUYER, 400_000_000))
RESOLVE_EXPECTED = ExpectedInvocation(
    source_address=PLATFORM,
    contract_id=ESCROW,
    function_names=frozenset({"resolve_dispute"}),
    distributions_minor=RESOLVE_DISTRIBUTIONS,
    trustless_work_address=TW_FEE,
)


def _resolve_envelope(fee_address: str, distributions: Sequence[tuple[str, int]]) -> str:
    mapping = scval.to_map({scval.to_address(a): scval.to_int128(v) for a, v in distributions})
    args = [scval.to_address(PLATFORM), scval.to_address(fee_address), mapping]
    return _envelope(source=PLATFORM, function_name="resolve_dispute", args=args).to_xdr()


def test_good_resolve_envelope_passes() -> None:
    assert _verify(_resolve_envelope(TW_FEE, RESOLVE_DISTRIBUTIONS), RESOLVE_EXPECTED)


def test_resolve_with_another_fee_address_is_refused() -> None:
    envelope_xdr = _resolve_envelope(ATTACKER, RESOLVE_DISTRIBUTIONS)
    _assert_tampered(envelope_xdr, "fee address", RESOLVE_EXPECTED)


def test_resolve_with_changed_distribution_is_refused() -> None:
    changed = ((SELLER, 900_000_000), (BUYER, 100_000_000))
    _assert_tampered(_resolve_envelope(TW_FEE, changed), "distributions", RESOLVE_EXPECTED)


def test_resolve_paying_an_outsider_is_refused() -> None:
    changed = ((ATTACKER, 600_000_000), (BUYER, 400_000_000))
    _assert_tampered(_resolve_envelope(TW_FEE, changed), "distributions", RESOLVE_EXPECTED)


def _authorized(
    contract_id: str, function_name: str, subs: Sequence[xdr.SorobanAuthorizedInvocation] = ()
) -> xdr.SorobanAuthorizedInvocation:
    function = xdr.SorobanAuthorizedFunction(
        xdr.SorobanAuthorizedFunctionType.SOROBAN_AUTHORIZED_FUNCTION_TYPE_CONTRACT_FN,
        contract_fn=xdr.InvokeContractArgs(
            contract_address=Address(contract_id).to_xdr_sc_address(),
            function_name=xdr.SCSymbol(function_name.encode()),
            args=[],
        ),
    )
    return xdr.SorobanAuthorizedInvocation(function, list(subs))


def _source_entry(invocation: xdr.SorobanAuthorizedInvocation) -> xdr.SorobanAuthorizationEntry:
    credentials = xdr.SorobanCredentials(
        xdr.SorobanCredentialsType.SOROBAN_CREDENTIALS_SOURCE_ACCOUNT
    )
    return xdr.SorobanAuthorizationEntry(credentials, invocation)


def test_source_account_auth_with_token_transfer_passes() -> None:
    root = _authorized(ESCROW, "fund_escrow", [_authorized(USDC, "transfer")])
    assert _verify(_envelope(auth=[_source_entry(root)]).to_xdr())


def test_nested_call_outside_the_token_is_refused() -> None:
    root = _authorized(ESCROW, "fund_escrow", [_authorized(OTHER_ESCROW, "transfer")])
    _assert_tampered(_envelope(auth=[_source_entry(root)]).to_xdr(), "auth")


def test_nested_token_approve_is_refused() -> None:
    root = _authorized(ESCROW, "fund_escrow", [_authorized(USDC, "approve")])
    _assert_tampered(_envelope(auth=[_source_entry(root)]).to_xdr(), "auth")


def test_auth_root_for_another_function_is_refused() -> None:
    root = _authorized(ESCROW, "release_funds")
    _assert_tampered(_envelope(auth=[_source_entry(root)]).to_xdr(), "auth")


def test_address_credentials_are_refused() -> None:
    credentials = xdr.SorobanCredentials(
        xdr.SorobanCredentialsType.SOROBAN_CREDENTIALS_ADDRESS,
        address=xdr.SorobanAddressCredentials(
            address=Address(SELLER).to_xdr_sc_address(),
            nonce=xdr.Int64(1),
            signature_expiration_ledger=xdr.Uint32(100),
            signature=scval.to_void(),
        ),
    )
    entry = xdr.SorobanAuthorizationEntry(credentials, _authorized(ESCROW, "fund_escrow"))
    _assert_tampered(_envelope(auth=[entry]).to_xdr(), "auth")
