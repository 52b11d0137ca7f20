"""Escrow faults on the sandbox through the real clients: stale builds, tampered XDR, lost replies.

The wallets and clients come from ``test_sandbox_escrow``'s ``World``.
"""

import pytest

from providers.errors import ProviderResponseInvalid, ProviderUnavailable
from providers.trustless_work.port import (
    DisputeRequest,
    Distribution,
    FundRequest,
    ResolveDisputeRequest,
)
from tests.providers.test_sandbox_escrow import AMOUNT, World, rejected, world

__all__ = ["world"]


async def test_rules_are_checked_again_when_applied(world: World) -> None:
    w = world
    cid = await w.deploy_and_fund()
    await w.dispute(cid)
    build = await w.tw.build_resolve_dispute(
        ResolveDisputeRequest(
            escrow_type="single-release",
            contract_id=cid,
            dispute_resolver=w.platform.public_key,
            distributions=(Distribution(address=w.buyer.public_key, amount_minor=AMOUNT),),
        )
    )
    w.sandbox.chain.tamper(cid, 1)  # the balance moves between build and send
    expected = w.expect(
        w.platform,
        cid,
        "resolve_dispute",
        distributions_minor=((w.buyer.public_key, AMOUNT),),
        trustless_work_address=w.settings.trustless_work_fee_address,
    )
    refused = await rejected(w.run(build, expected, w.platform))
    assert refused.reason == "distribution_sum_mismatch"
    assert await w.usdc(w.buyer.public_key) == 0


async def test_tampered_xdr_is_refused_by_the_check(world: World) -> None:
    w = world
    cid = await w.deploy_and_fund(AMOUNT // 2)
    answer = await w.http.post(
        f"{w.settings.control_url}/faults",
        json={
            "service": "trustless_work",
            "method": "POST",
            "route": "/escrow/",
            "fault": "tampered_xdr",
            "count": 4,
        },
    )
    assert answer.status_code == 200
    fund = FundRequest(
        escrow_type="single-release",
        contract_id=cid,
        signer=w.buyer.public_key,
        amount_minor=AMOUNT // 2,
    )
    expected = w.expect(w.buyer, cid, "fund_escrow", amounts_minor=(AMOUNT // 2,))
    modes = []
    for _ in range(4):
        unsigned = await w.tw.build_fund(fund)
        with pytest.raises(ProviderResponseInvalid) as caught:
            await w.verify(unsigned, expected)
        assert caught.value.reason == "tampered_xdr"
        modes.append(w.sandbox.trustless_work.last_tamper_mode)
    assert modes == ["source", "contract", "amount", "extra_payment"]
    await w.run(await w.tw.build_fund(fund), expected, w.buyer)  # the fault has fired out
    assert w.sandbox.chain.contract_balance(cid) == AMOUNT


async def test_response_lost_then_hash_lookup_and_no_double_apply(world: World) -> None:
    w = world
    cid = await w.deploy_and_fund()
    w.sandbox.faults.add(
        "trustless_work", "POST", "/helper/send-transaction", "applied_response_lost"
    )
    sequence = (await w.horizon.get_account(w.seller.public_key)).sequence
    request = DisputeRequest(
        escrow_type="single-release", contract_id=cid, signer=w.seller.public_key
    )
    signed = await w.sign(
        await w.tw.build_dispute(request), w.expect(w.seller, cid, "dispute_escrow"), w.seller
    )
    with pytest.raises(ProviderUnavailable) as caught:
        await w.tw.send_transaction(signed)
    assert caught.value.reason == "outcome_unknown"
    found = await w.horizon.get_transaction(signed.tx_hash)
    assert found.found
    assert found.successful
    again = await rejected(w.tw.send_transaction(signed))
    assert "tx_bad_seq" in str(again)
    # One ledger entry, one sequence step: the resubmission applied nothing.
    assert (await w.horizon.get_account(w.seller.public_key)).sequence == sequence + 1
    assert [op.tx_hash for op in w.sandbox.chain.operations].count(signed.tx_hash) == 1
    assert (await w.tw.get_escrows([cid]))[0].is_disputed
    assert w.sandbox.chain.contract_balance(cid) == AMOUNT


async def test_two_builds_share_a_sequence_and_a_wrong_key_is_refused(world: World) -> None:
    w = world
    cid = await w.deploy_and_fund()
    dispute = DisputeRequest(
        escrow_type="single-release", contract_id=cid, signer=w.buyer.public_key
    )
    first = await w.tw.build_dispute(dispute)
    second = await w.tw.build_dispute(dispute)
    expected = w.expect(w.buyer, cid, "dispute_escrow")
    # Both verified and signed before either is sent: they carry the same sequence.
    signed = [await w.sign(unsigned, expected, w.buyer) for unsigned in (first, second)]
    forged = await w.sign(first, expected, w.seller)  # the seller's key for the buyer's role
    assert "tx_bad_auth" in str(await rejected(w.tw.send_transaction(forged)))
    await w.tw.send_transaction(signed[0])
    late = await rejected(w.tw.send_transaction(signed[1]))
    assert "tx_bad_seq" in str(late)
    assert (await w.tw.get_escrows([cid]))[0].status == "disputed"
