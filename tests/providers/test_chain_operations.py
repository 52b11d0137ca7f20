"""Sandbox chain operations: stellar-core op codes, atomicity, sponsorship, host functions."""

import pytest
from stellar_sdk import Account as SdkAccount
from stellar_sdk import Asset, StrKey, TransactionBuilder
from stellar_sdk.operation import (
    BeginSponsoringFutureReserves,
    ChangeTrust,
    CreateAccount,
    EndSponsoringFutureReserves,
    Payment,
)

from providers.sandbox.chain import SandboxChain, Submission
from providers.sandbox.chain_host import HostCall, HostFunctionTrapped
from providers.sandbox.chain_state import BASE_RESERVE
from providers.sandbox.clock import SandboxClock
from providers.stellar.keys import build_sponsored_activation

XLM = 10_000_000
USDC = 10_000_000
CONTRACT = StrKey.encode_contract(bytes(range(32)))


@pytest.fixture
def chain() -> SandboxChain:
    return SandboxChain(SandboxClock(1_700_000_000), seed=2)


def _op_codes(submission: Submission) -> tuple[str, ...]:
    assert submission.tx is not None, submission
    assert submission.tx.result_codes.transaction == "tx_failed"
    return submission.tx.result_codes.operations


def test_usdc_payment_codes(chain: SandboxChain) -> None:
    payer = chain.activate(usdc=10 * USDC)
    untrusting = chain.new_keypair()
    assert chain.friendbot(untrusting.public_key).successful
    usdc = chain.usdc
    ghost = chain.new_keypair().public_key
    cases = [
        (payer, ghost, "1", "op_no_destination"),
        (payer, untrusting.public_key, "1", "op_no_trust"),
        (untrusting, payer.public_key, "1", "op_src_no_trust"),
        (payer, chain.outside.public_key, "10.0000001", "op_underfunded"),
    ]
    for source, to, amount, code in cases:
        assert _op_codes(chain.sign_and_submit(source, [Payment(to, usdc, amount)])) == (code,)
    assert chain.usdc_balance(payer.public_key) == 10 * USDC


def test_xlm_payment_keeps_the_reserve(chain: SandboxChain) -> None:
    payer = chain.activate()  # 10,000 XLM, one trustline: 1.5 XLM reserve, minus fees paid
    entry = chain.account(payer.public_key)
    assert entry is not None
    spendable = entry.xlm - entry.min_balance() - 100
    too_much = Payment(chain.outside.public_key, Asset.native(), _xlm_text(spendable + 1))
    assert _op_codes(chain.sign_and_submit(payer, [too_much])) == ("op_underfunded",)
    exact = Payment(chain.outside.public_key, Asset.native(), _xlm_text(spendable - 100))
    assert chain.sign_and_submit(payer, [exact]).successful


def _xlm_text(stroops: int) -> str:
    whole, fraction = divmod(stroops, XLM)
    return f"{whole}.{fraction:07d}"


def test_line_full(chain: SandboxChain) -> None:
    user = chain.new_keypair()
    assert chain.friendbot(user.public_key).successful
    assert chain.sign_and_submit(user, [ChangeTrust(chain.usdc, limit="10")]).successful
    assert _op_codes(chain.deposit(user.public_key, 11 * USDC)) == ("op_line_full",)
    assert chain.deposit(user.public_key, 10 * USDC).successful


def test_create_account_codes(chain: SandboxChain) -> None:
    funder = chain.activate()
    fresh = chain.new_keypair().public_key
    low = CreateAccount(fresh, "0.9999999")
    assert _op_codes(chain.sign_and_submit(funder, [low])) == ("op_low_reserve",)
    assert _op_codes(chain.friendbot(funder.public_key)) == ("op_already_exists",)
    broke = chain.new_keypair()
    assert chain.friendbot(broke.public_key, xlm=2 * XLM).successful
    rich_gift = CreateAccount(fresh, "1.5")
    assert _op_codes(chain.sign_and_submit(broke, [rich_gift])) == ("op_underfunded",)


def test_change_trust_codes(chain: SandboxChain) -> None:
    user = chain.activate(usdc=1 * USDC)
    unknown = Asset("EUR", chain.new_keypair().public_key)
    assert _op_codes(chain.sign_and_submit(user, [ChangeTrust(unknown)])) == ("op_no_issuer",)
    remove = ChangeTrust(chain.usdc, limit="0")
    assert _op_codes(chain.sign_and_submit(user, [remove])) == ("op_invalid_limit",)
    tight = chain.new_keypair()
    assert chain.friendbot(tight.public_key, xlm=1 * XLM + 100).successful
    assert _op_codes(chain.sign_and_submit(tight, [ChangeTrust(chain.usdc)])) == ("op_low_reserve",)


def test_payment_of_an_asset_without_issuer(chain: SandboxChain) -> None:
    user = chain.activate()
    unknown = Asset("EUR", chain.new_keypair().public_key)
    pay = Payment(chain.outside.public_key, unknown, "1")
    assert _op_codes(chain.sign_and_submit(user, [pay])) == ("op_no_issuer",)


def test_trustline_removal_frees_the_reserve(chain: SandboxChain) -> None:
    user = chain.activate()
    assert chain.sign_and_submit(user, [ChangeTrust(chain.usdc, limit="0")]).successful
    entry = chain.account(user.public_key)
    assert entry is not None
    assert (entry.subentries, entry.trustlines) == (0, {})


def test_operations_apply_all_or_nothing(chain: SandboxChain) -> None:
    payer = chain.activate(usdc=5 * USDC)
    receiver = chain.activate()
    ghost = chain.new_keypair().public_key
    ops = [
        Payment(receiver.public_key, chain.usdc, "2"),
        Payment(ghost, chain.usdc, "1"),
    ]
    assert _op_codes(chain.sign_and_submit(payer, ops)) == ("op_success", "op_no_destination")
    assert chain.usdc_balance(payer.public_key) == 5 * USDC
    assert chain.usdc_balance(receiver.public_key) == 0


def test_issuer_mints_and_burns(chain: SandboxChain) -> None:
    holder = chain.activate(usdc=7 * USDC)
    burn = Payment(chain.issuer.public_key, chain.usdc, "2")
    assert chain.sign_and_submit(holder, [burn]).successful
    assert chain.minted_usdc() - chain.burned_usdc() == chain.total_usdc()
    assert chain.usdc_balance(holder.public_key) == 5 * USDC


def test_sponsored_activation_end_to_end(chain: SandboxChain) -> None:
    platform = chain.activate()
    user = chain.new_keypair()
    platform_entry = chain.account(platform.public_key)
    assert platform_entry is not None
    signed = build_sponsored_activation(
        platform=platform,
        platform_sequence=platform_entry.sequence,
        user=user,
        usdc_issuer=chain.issuer.public_key,
        passphrase=chain.passphrase,
        now_s=chain.clock.now_s(),
        fee_float=1 * XLM,
    )
    submission = chain.submit(signed.envelope_xdr)
    assert submission.successful, submission
    assert submission.hash == signed.hash
    entry = chain.account(user.public_key)
    assert entry is not None
    assert (entry.xlm, entry.num_sponsored, entry.subentries) == (1 * XLM, 3, 1)
    assert entry.min_balance() == 0
    assert chain.account(platform.public_key).num_sponsoring == 3  # type: ignore[union-attr]
    assert chain.deposit(user.public_key, 3 * USDC).successful


def test_begin_without_end_is_bad_sponsorship(chain: SandboxChain) -> None:
    platform = chain.activate()
    user = chain.new_keypair()
    ops = [BeginSponsoringFutureReserves(user.public_key), CreateAccount(user.public_key, "0")]
    submission = chain.sign_and_submit(platform, ops)
    assert submission.tx is not None
    assert submission.tx.result_codes.transaction == "tx_bad_sponsorship"
    assert chain.account(user.public_key) is None


def test_end_without_begin_is_not_sponsored(chain: SandboxChain) -> None:
    user = chain.activate()
    end = EndSponsoringFutureReserves()
    assert _op_codes(chain.sign_and_submit(user, [end])) == ("op_not_sponsored",)


def _invoke(chain: SandboxChain, source_kp_public: str, function: str) -> TransactionBuilder:
    entry = chain.account(source_kp_public)
    assert entry is not None
    builder = TransactionBuilder(
        SdkAccount(source_kp_public, entry.sequence), chain.passphrase, 100
    )
    builder.append_invoke_contract_function_op(CONTRACT, function, [])
    return builder.add_time_bounds(0, chain.clock.now_s() + 60)


def test_host_function_without_intent_traps(chain: SandboxChain) -> None:
    user = chain.activate()
    envelope = _invoke(chain, user.public_key, "fund_escrow").build()
    envelope.sign(user)
    assert _op_codes(chain.submit(envelope.to_xdr())) == ("op_trapped",)


def test_registered_intent_moves_funds_and_commits_hooks(chain: SandboxChain) -> None:
    buyer = chain.activate(usdc=10 * USDC)
    envelope = _invoke(chain, buyer.public_key, "fund_escrow").build()
    envelope.sign(buyer)
    committed: list[str] = []

    def fund(call: HostCall) -> None:
        call.transfer(call.source, CONTRACT, 4 * USDC)
        call.on_commit(lambda: committed.append(call.tx_hash))

    chain.register_intent(envelope.hash_hex(), fund)
    submission = chain.submit(envelope.to_xdr())
    assert submission.successful
    assert chain.contract_balance(CONTRACT) == 4 * USDC
    assert committed == [envelope.hash_hex()]
    record = chain.payments(account_id=buyer.public_key, order="desc", limit=1)[0]
    assert record.type == "invoke_host_function"
    assert record.fields["asset_balance_changes"] == [
        {
            "asset_type": "credit_alphanum4",
            "asset_code": "USDC",
            "asset_issuer": chain.issuer.public_key,
            "type": "transfer",
            "from": buyer.public_key,
            "to": CONTRACT,
            "amount": "4.0000000",
        }
    ]


def test_trapped_intent_rolls_back_and_skips_hooks(chain: SandboxChain) -> None:
    buyer = chain.activate(usdc=10 * USDC)
    envelope = _invoke(chain, buyer.public_key, "fund_escrow").build()
    envelope.sign(buyer)
    committed: list[str] = []

    def fund_then_trap(call: HostCall) -> None:
        call.transfer(call.source, CONTRACT, 4 * USDC)
        call.on_commit(lambda: committed.append("no"))
        raise HostFunctionTrapped("contract rule")

    chain.register_intent(envelope.hash_hex(), fund_then_trap)
    assert _op_codes(chain.submit(envelope.to_xdr())) == ("op_trapped",)
    assert chain.usdc_balance(buyer.public_key) == 10 * USDC
    assert chain.contract_balance(CONTRACT) == 0
    assert committed == []


def test_xlm_deposit_moves_no_usdc_and_tamper_is_tracked(chain: SandboxChain) -> None:
    user = chain.activate(usdc=1 * USDC)
    assert chain.deposit(user.public_key, 5 * XLM, asset="XLM").successful
    assert chain.usdc_balance(user.public_key) == 1 * USDC
    assert chain.tamper(user.public_key, -1) == 1 * USDC - 1
    chain.credit_contract(CONTRACT, 3)
    expected = chain.minted_usdc() - chain.burned_usdc() + chain.adjusted_usdc
    assert chain.total_usdc() == expected
    assert BASE_RESERVE == XLM // 2
