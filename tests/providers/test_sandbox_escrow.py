"""End-to-end escrows on the sandbox through the real clients only.

Horizon client + TrustlessWorkClient over ``httpx.ASGITransport`` on ``Sandbox.asgi_app()``;
wallets are signed with stellar-sdk and every unsigned XDR passes ``verify_unsigned_xdr``
before it is signed, as the orchestrator does (providers.md 1.3, 1.10).
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from stellar_sdk import Account, Keypair, TransactionBuilder, TransactionEnvelope

from providers.errors import ProviderRejected
from providers.sandbox.app import Sandbox, SandboxProviderSettings
from providers.stellar.horizon import HorizonClient
from providers.stellar.keys import usdc_asset
from providers.stellar.port import AssetBalanceChange
from providers.trustless_work.client import TrustlessWorkClient
from providers.trustless_work.port import (
    ApproveMilestoneRequest,
    ChangeMilestoneStatusRequest,
    DeploySingleReleaseRequest,
    DisputeRequest,
    Distribution,
    EscrowRoles,
    FundRequest,
    ReleaseRequest,
    ResolveDisputeRequest,
    SendResult,
    SignedTransaction,
    UnsignedTransaction,
)
from providers.trustless_work.xdr_check import ExpectedInvocation, XdrPolicy, verify_unsigned_xdr

USDC = 10_000_000
AMOUNT = 100 * USDC


@dataclass
class World:
    """The sandbox, its clients and three activated wallets."""

    sandbox: Sandbox
    settings: SandboxProviderSettings
    http: httpx.AsyncClient
    horizon: HorizonClient
    tw: TrustlessWorkClient
    buyer: Keypair
    seller: Keypair
    platform: Keypair

    @property
    def policy(self) -> XdrPolicy:
        return XdrPolicy(
            network_passphrase=self.settings.network_passphrase,
            token_contract_id=self.settings.usdc_contract_id,
        )

    async def activate(self, keypair: Keypair) -> None:
        """Friendbot, then a USDC trustline signed by the wallet itself."""
        answer = await self.http.get(
            f"{self.settings.horizon_url}/friendbot", params={"addr": keypair.public_key}
        )
        assert answer.status_code == 200, answer.text
        state = await self.horizon.get_account(keypair.public_key)
        builder = TransactionBuilder(
            Account(keypair.public_key, state.sequence), self.settings.network_passphrase, 100
        )
        builder.append_change_trust_op(usdc_asset(self.settings.usdc_issuer))
        envelope = builder.add_time_bounds(0, self.sandbox.clock.now_s() + 60).build()
        envelope.sign(keypair)
        await self.horizon.submit_transaction(envelope.to_xdr(), tx_hash=envelope.hash_hex())

    async def usdc(self, address: str) -> int | None:
        return (await self.horizon.get_account(address)).usdc

    async def verify(self, unsigned: UnsignedTransaction, expected: ExpectedInvocation) -> str:
        sequence = (await self.horizon.get_account(expected.source_address)).sequence
        checked = ExpectedInvocation(**{**_fields(expected), "account_sequence": sequence})
        now_s = self.sandbox.clock.now_s()
        return verify_unsigned_xdr(unsigned.unsigned_xdr, checked, self.policy, now_s=now_s).tx_hash

    async def sign(
        self, unsigned: UnsignedTransaction, expected: ExpectedInvocation, signer: Keypair
    ) -> SignedTransaction:
        tx_hash = await self.verify(unsigned, expected)
        envelope = TransactionEnvelope.from_xdr(
            unsigned.unsigned_xdr, self.settings.network_passphrase
        )
        envelope.sign(signer)
        return SignedTransaction(tx_hash=tx_hash, signed_xdr=envelope.to_xdr())

    async def run(
        self, unsigned: UnsignedTransaction, expected: ExpectedInvocation, signer: Keypair
    ) -> SendResult:
        return await self.tw.send_transaction(await self.sign(unsigned, expected, signer))

    def expect(
        self, source: Keypair, contract_id: str, function: str, **more: object
    ) -> ExpectedInvocation:
        return ExpectedInvocation(
            source_address=source.public_key,
            contract_id=contract_id,
            function_names=frozenset({function}),
            **more,  # type: ignore[arg-type]
        )

    async def deploy_and_fund(self, amount: int = AMOUNT) -> str:
        """Deploy a single-release escrow (platformFee 5 %) and fund it from the buyer."""
        roles = EscrowRoles(
            approver=self.buyer.public_key,
            service_provider=self.seller.public_key,
            platform_address=self.platform.public_key,
            release_signer=self.buyer.public_key,
            dispute_resolver=self.platform.public_key,
            receiver=self.seller.public_key,
        )
        request = DeploySingleReleaseRequest(
            signer=self.platform.public_key,
            engagement_id="ord_1",
            title="Logo",
            description="A logo",
            roles=roles,
            amount_minor=amount,
            platform_fee_bps=500,
            milestone_descriptions=("deliver",),
            trustline_address=self.settings.usdc_issuer,
        )
        others = {self.buyer.public_key, self.seller.public_key, self.settings.usdc_contract_id}
        expected = self.expect(
            self.platform,
            self.settings.deployer_contract_id,
            "deploy",
            amounts_minor=(amount, 500),
            other_addresses=frozenset(others),
        )
        deployed = await self.run(
            await self.tw.build_deploy_single_release(request), expected, self.platform
        )
        assert deployed.contract_id is not None
        assert deployed.escrow is not None
        assert deployed.escrow.amount_minor == amount
        cid = deployed.contract_id
        fund = FundRequest(
            escrow_type="single-release",
            contract_id=cid,
            signer=self.buyer.public_key,
            amount_minor=amount,
        )
        expected = self.expect(self.buyer, cid, "fund_escrow", amounts_minor=(amount,))
        await self.run(await self.tw.build_fund(fund), expected, self.buyer)
        return cid

    async def dispute(self, cid: str) -> None:
        request = DisputeRequest(
            escrow_type="single-release", contract_id=cid, signer=self.buyer.public_key
        )
        expected = self.expect(self.buyer, cid, "dispute_escrow")
        await self.run(await self.tw.build_dispute(request), expected, self.buyer)

    async def resolve(self, cid: str, shares: list[tuple[Keypair, int]]) -> SendResult:
        distributions = tuple(Distribution(address=k.public_key, amount_minor=a) for k, a in shares)
        request = ResolveDisputeRequest(
            escrow_type="single-release",
            contract_id=cid,
            dispute_resolver=self.platform.public_key,
            distributions=distributions,
        )
        expected = self.expect(
            self.platform,
            cid,
            "resolve_dispute",
            distributions_minor=tuple((k.public_key, a) for k, a in shares),
            trustless_work_address=self.settings.trustless_work_fee_address,
        )
        return await self.run(await self.tw.build_resolve_dispute(request), expected, self.platform)


def _fields(expected: ExpectedInvocation) -> dict[str, object]:
    return {f: getattr(expected, f) for f in expected.__struct_fields__}


@pytest.fixture
async def world() -> AsyncIterator[World]:
    sandbox = Sandbox(seed=11, start_s=1_800_000_000, activate_platform=False)
    settings = sandbox.provider_settings("http://sandbox")
    transport = httpx.ASGITransport(app=sandbox.asgi_app())
    async with httpx.AsyncClient(transport=transport) as http:
        horizon_http = httpx.AsyncClient(transport=transport, base_url=settings.horizon_url)
        async with horizon_http:
            horizon = HorizonClient(horizon_http, usdc_issuer=settings.usdc_issuer)
            tw = TrustlessWorkClient(
                http, settings.trustless_work, api_key=settings.trustless_work_api_key
            )
            keys = [sandbox.chain.new_keypair() for _ in range(2)]
            w = World(sandbox, settings, http, horizon, tw, *keys, sandbox.platform)
            for keypair in (w.buyer, w.seller, w.platform):
                await w.activate(keypair)
            answer = await http.post(
                f"{settings.control_url}/deposits",
                json={"address": w.buyer.public_key, "amount": "100"},
            )
            assert answer.status_code == 200, answer.text
            yield w


def _transfer(w: World, from_: str, to: str, amount: int) -> AssetBalanceChange:
    return AssetBalanceChange(
        asset_code="USDC",
        asset_issuer=w.settings.usdc_issuer,
        type="transfer",
        from_address=from_,
        to_address=to,
        amount=amount,
    )


async def _balances(w: World, cid: str) -> tuple[int | None, ...]:
    balances = await w.tw.get_balances([cid])
    return (
        await w.usdc(w.buyer.public_key),
        await w.usdc(w.seller.public_key),
        await w.usdc(w.platform.public_key),
        await w.usdc(w.settings.trustless_work_fee_address),
        balances[0].balance_minor,
    )


async def test_release_pays_seller_platform_and_trustless_work(world: World) -> None:
    w = world
    cid = await w.deploy_and_fund()
    assert w.sandbox.chain.contract_balance(cid) == AMOUNT
    status = ChangeMilestoneStatusRequest(
        escrow_type="single-release",
        contract_id=cid,
        milestone_index=0,
        new_status="completed",
        service_provider=w.seller.public_key,
    )
    expected = w.expect(w.seller, cid, "change_milestone_status")
    await w.run(await w.tw.build_change_milestone_status(status), expected, w.seller)
    approve = ApproveMilestoneRequest(
        escrow_type="single-release",
        contract_id=cid,
        milestone_index=0,
        approver=w.buyer.public_key,
    )
    expected = w.expect(w.buyer, cid, "approve_milestone")
    await w.run(await w.tw.build_approve_milestone(approve), expected, w.buyer)
    assert (await w.tw.get_escrows([cid]))[0].status == "pendingRelease"
    release = ReleaseRequest(contract_id=cid, release_signer=w.buyer.public_key)
    expected = w.expect(
        w.buyer,
        cid,
        "release_funds",
        trustless_work_address=w.settings.trustless_work_fee_address,
    )
    signed = await w.sign(await w.tw.build_release(release), expected, w.buyer)
    await w.tw.send_transaction(signed)

    assert await _balances(w, cid) == (0, 947_000_000, 50_000_000, 3_000_000, 0)
    escrow = (await w.tw.get_escrows([cid]))[0]
    assert escrow.status == "released"
    assert escrow.milestones[0].status == "completed"
    tx = await w.horizon.get_transaction(signed.tx_hash, with_balance_changes=True)
    assert tx.successful
    tw_fee, platform = w.settings.trustless_work_fee_address, w.platform.public_key
    assert tx.asset_balance_changes == (
        _transfer(w, cid, tw_fee, 3_000_000),
        _transfer(w, cid, platform, 50_000_000),
        _transfer(w, cid, w.seller.public_key, 947_000_000),
    )
    chain = w.sandbox.chain
    assert chain.total_usdc() == chain.minted_usdc() - chain.burned_usdc() + chain.adjusted_usdc


async def test_dispute_split_60_40_matches_d2(world: World) -> None:
    w = world
    cid = await w.deploy_and_fund()
    await w.dispute(cid)
    assert (await w.tw.get_escrows([cid]))[0].status == "disputed"
    result = await w.resolve(cid, [(w.seller, 600_000_000), (w.buyer, 400_000_000)])
    assert result.status == "SUCCESS"
    # D2: fees 1,800,000 + 1,200,000 and 30,000,000 + 20,000,000.
    assert await _balances(w, cid) == (378_800_000, 568_200_000, 50_000_000, 3_000_000, 0)
    escrow = (await w.tw.get_escrows([cid]))[0]
    assert (escrow.status, escrow.is_disputed, escrow.is_resolved) == ("resolved", False, True)


async def test_full_refund_is_not_free(world: World) -> None:
    w = world
    cid = await w.deploy_and_fund()
    await w.dispute(cid)
    await w.resolve(cid, [(w.buyer, AMOUNT)])
    assert await _balances(w, cid) == (947_000_000, 0, 50_000_000, 3_000_000, 0)


async def rejected(coro: object) -> ProviderRejected:
    with pytest.raises(ProviderRejected) as caught:
        await coro  # type: ignore[misc]
    assert caught.value.status_code == 400
    return caught.value


async def test_contract_rules_refuse_at_build(world: World) -> None:
    w = world
    cid = await w.deploy_and_fund()
    release = ReleaseRequest(contract_id=cid, release_signer=w.buyer.public_key)
    refused = await rejected(w.tw.build_release(release))
    assert refused.reason == "milestones_not_approved"
    assert "must be completed to release" in str(refused)
    by_resolver = DisputeRequest(
        escrow_type="single-release", contract_id=cid, signer=w.platform.public_key
    )
    assert (await rejected(w.tw.build_dispute(by_resolver))).reason == "resolver_cannot_dispute"
    await w.dispute(cid)
    short = ResolveDisputeRequest(
        escrow_type="single-release",
        contract_id=cid,
        dispute_resolver=w.platform.public_key,
        distributions=(Distribution(address=w.buyer.public_key, amount_minor=AMOUNT - 1),),
    )
    assert (await rejected(w.tw.build_resolve_dispute(short))).reason == (
        "distribution_sum_mismatch"
    )
