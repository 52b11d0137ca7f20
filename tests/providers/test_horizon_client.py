"""The real Horizon client against the sandbox Horizon app, in process through ASGITransport."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from stellar_sdk import Account, Keypair, StrKey, TransactionBuilder
from stellar_sdk.operation import ChangeTrust

from providers.errors import ProviderRejected
from providers.sandbox.chain import SandboxChain
from providers.sandbox.chain_host import HostCall
from providers.sandbox.clock import SandboxClock
from providers.sandbox.faults import FaultRules
from providers.sandbox.horizon_app import create_horizon_app
from providers.stellar.horizon import HorizonClient
from providers.stellar.keys import build_sponsored_activation, build_usdc_payment
from providers.stellar.port import TransactionFailed
from providers.stellar.result_codes import decode_result_xdr

USDC = 10_000_000
XLM = 10_000_000


@pytest.fixture
def chain() -> SandboxChain:
    return SandboxChain(SandboxClock(1_700_000_000), seed=3)


@pytest.fixture
async def horizon(chain: SandboxChain) -> AsyncIterator[HorizonClient]:
    # Litestar's ASGI types are narrower than httpx's generic ones; the app is a plain ASGI app.
    app: Any = create_horizon_app(chain, faults=FaultRules())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://horizon.test") as http:
        yield HorizonClient(http, usdc_issuer=chain.issuer.public_key)


async def _activate(chain: SandboxChain, horizon: HorizonClient, platform: Keypair) -> Keypair:
    user = chain.new_keypair()
    platform_state = await horizon.get_account(platform.public_key)
    signed = build_sponsored_activation(
        platform=platform,
        platform_sequence=platform_state.sequence,
        user=user,
        usdc_issuer=chain.issuer.public_key,
        passphrase=chain.passphrase,
        now_s=chain.clock.now_s(),
        fee_float=1 * XLM,
    )
    result = await horizon.submit_transaction(signed.envelope_xdr, tx_hash=signed.hash)
    assert result.hash == signed.hash
    return user


async def test_unknown_account_is_not_found(horizon: HorizonClient, chain: SandboxChain) -> None:
    address = chain.new_keypair().public_key
    state = await horizon.get_account(address)
    assert not state.exists
    assert not state.has_usdc_trustline


async def test_create_account_trustline_and_payment_end_to_end(
    horizon: HorizonClient, chain: SandboxChain
) -> None:
    platform = chain.activate(usdc=50 * USDC)
    user = await _activate(chain, horizon, platform)
    account = await horizon.get_account(user.public_key)
    assert account.exists
    assert (account.xlm, account.usdc, account.usdc_authorized) == (1 * XLM, 0, True)
    assert account.usdc_limit == 2**63 - 1
    assert account.num_sponsored == 3
    platform_state = await horizon.get_account(platform.public_key)
    payment = build_usdc_payment(
        source=platform,
        sequence=platform_state.sequence,
        destination=user.public_key,
        amount=12_345_678_9,
        usdc_issuer=chain.issuer.public_key,
        passphrase=chain.passphrase,
        now_s=chain.clock.now_s(),
        memo="order-1",
    )
    submitted = await horizon.submit_transaction(payment.envelope_xdr, tx_hash=payment.hash)
    info = await horizon.get_transaction(payment.hash)
    assert info.found
    assert info.successful
    assert info.ledger == submitted.ledger
    assert info.fee_charged == 100
    assert info.max_time == payment.max_time
    assert (info.memo_type, info.memo) == ("text", "order-1")
    assert info.result_codes is not None
    assert info.result_codes.transaction == "tx_success"
    assert (await horizon.get_account(user.public_key)).usdc == 123_456_789


async def test_failed_transaction_raises_with_result_codes(
    horizon: HorizonClient, chain: SandboxChain
) -> None:
    payer = chain.activate(usdc=1 * USDC)
    state = await horizon.get_account(payer.public_key)
    signed = build_usdc_payment(
        source=payer,
        sequence=state.sequence,
        destination=chain.outside.public_key,
        amount=2 * USDC,
        usdc_issuer=chain.issuer.public_key,
        passphrase=chain.passphrase,
        now_s=chain.clock.now_s(),
    )
    with pytest.raises(TransactionFailed) as failure:
        await horizon.submit_transaction(signed.envelope_xdr, tx_hash=signed.hash)
    codes = failure.value.result_codes
    assert (codes.transaction, codes.operations) == ("tx_failed", ("op_underfunded",))
    assert failure.value.result_xdr is not None
    assert decode_result_xdr(failure.value.result_xdr) == codes
    info = await horizon.get_transaction(signed.hash)
    assert info.found
    assert not info.successful
    assert (await horizon.get_account(payer.public_key)).sequence == state.sequence + 1


async def test_rejected_transaction_is_not_stored(
    horizon: HorizonClient, chain: SandboxChain
) -> None:
    payer = chain.activate(usdc=1 * USDC)
    signed = build_usdc_payment(
        source=payer,
        sequence=0,  # far behind the account's sequence
        destination=chain.outside.public_key,
        amount=1,
        usdc_issuer=chain.issuer.public_key,
        passphrase=chain.passphrase,
        now_s=chain.clock.now_s(),
    )
    with pytest.raises(TransactionFailed) as failure:
        await horizon.submit_transaction(signed.envelope_xdr, tx_hash=signed.hash)
    assert failure.value.result_codes.transaction == "tx_bad_seq"
    assert not (await horizon.get_transaction(signed.hash)).found


async def test_malformed_envelope_is_rejected(horizon: HorizonClient) -> None:
    with pytest.raises(ProviderRejected) as failure:
        await horizon.submit_transaction("AAAA", tx_hash="00" * 32)
    assert failure.value.reason == "transaction_malformed"
    assert not isinstance(failure.value, TransactionFailed)


async def test_resubmitting_the_same_hash_moves_nothing(
    horizon: HorizonClient, chain: SandboxChain
) -> None:
    payer = chain.activate(usdc=5 * USDC)
    state = await horizon.get_account(payer.public_key)
    signed = build_usdc_payment(
        source=payer,
        sequence=state.sequence,
        destination=chain.outside.public_key,
        amount=1 * USDC,
        usdc_issuer=chain.issuer.public_key,
        passphrase=chain.passphrase,
        now_s=chain.clock.now_s(),
    )
    first = await horizon.submit_transaction(signed.envelope_xdr, tx_hash=signed.hash)
    after_first = await horizon.get_account(payer.public_key)
    second = await horizon.submit_transaction(signed.envelope_xdr, tx_hash=signed.hash)
    assert second == first
    assert await horizon.get_account(payer.public_key) == after_first
    assert after_first.usdc == 4 * USDC


async def test_deposits_page_by_cursor_without_gaps_or_duplicates(
    horizon: HorizonClient, chain: SandboxChain
) -> None:
    user = chain.activate()
    assert chain.deposit(user.public_key, 1 * USDC, memo="first").successful
    assert chain.deposit(user.public_key, 2 * USDC, ops=3).successful
    assert chain.deposit(user.public_key, 5 * XLM, asset="XLM").successful
    assert chain.deposit(user.public_key, 4 * USDC).successful
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await horizon.list_payments(user.public_key, cursor=cursor, limit=2)
        if not page.records:
            break
        seen.extend(r.id for r in page.records)
        cursor = page.next_cursor
    everything = await horizon.list_payments(user.public_key, limit=200)
    assert seen == [r.id for r in everything.records]
    assert len(seen) == len(set(seen)) == 1 + 1 + 3 + 1 + 1  # create_account + deposits
    assert [int(x) for x in seen] == sorted(int(x) for x in seen)
    first_deposit = everything.records[1]
    assert (first_deposit.type, first_deposit.amount, first_deposit.memo) == (
        "payment",
        1 * USDC,
        "first",
    )
    assert first_deposit.asset_issuer == chain.issuer.public_key
    assert everything.records[0].type == "create_account"
    newest = await horizon.list_payments(user.public_key, order="desc", limit=1)
    assert newest.records[0].id == seen[-1]


async def test_failed_deposits_only_with_include_failed(
    horizon: HorizonClient, chain: SandboxChain
) -> None:
    user = chain.new_keypair()
    assert chain.friendbot(user.public_key).successful
    assert chain.sign_and_submit(user, [ChangeTrust(chain.usdc, limit="1")]).successful
    failed = chain.deposit(user.public_key, 2 * USDC)
    assert not failed.successful
    visible = await horizon.list_payments(user.public_key)
    assert [r.type for r in visible.records] == ["create_account"]
    everything = await horizon.list_payments(user.public_key, include_failed=True)
    assert [r.transaction_successful for r in everything.records] == [True, False]


async def test_transaction_lookup_with_asset_balance_changes(
    horizon: HorizonClient, chain: SandboxChain
) -> None:
    buyer = chain.activate(usdc=3 * USDC)
    contract = StrKey.encode_contract(bytes(32))
    state = await horizon.get_account(buyer.public_key)
    builder = TransactionBuilder(Account(buyer.public_key, state.sequence), chain.passphrase, 100)
    builder.append_invoke_contract_function_op(contract, "fund_escrow", [])
    envelope = builder.add_time_bounds(0, chain.clock.now_s() + 60).build()
    envelope.sign(buyer)
    chain.register_intent(envelope.hash_hex(), lambda call: _fund(call, contract))
    await horizon.submit_transaction(envelope.to_xdr(), tx_hash=envelope.hash_hex())
    info = await horizon.get_transaction(envelope.hash_hex(), with_balance_changes=True)
    assert [(c.from_address, c.to_address, c.amount) for c in info.asset_balance_changes] == [
        (buyer.public_key, contract, 2 * USDC)
    ]


def _fund(call: HostCall, contract: str) -> None:
    call.transfer(call.source, contract, 2 * USDC)


async def test_latest_ledger_and_fee_stats(horizon: HorizonClient, chain: SandboxChain) -> None:
    ledger = await horizon.latest_ledger()
    assert ledger.sequence == chain.ledger
    assert (ledger.base_fee, ledger.base_reserve) == (100, 5_000_000)
    chain.base_fee = 250
    stats = await horizon.fee_stats()
    assert (stats.last_ledger, stats.last_ledger_base_fee, stats.fee_charged_p99) == (
        chain.ledger,
        250,
        250,
    )


async def test_memo_required_flag(horizon: HorizonClient, chain: SandboxChain) -> None:
    exchange = chain.activate()
    chain.set_memo_required(exchange.public_key)
    assert (await horizon.get_account(exchange.public_key)).memo_required
