"""The simulated Trustless Work over raw HTTP: auth, limiter, error bodies, reads, indexer, faults.

Wallets are set up with the chain's helpers; everything TW does goes through HTTP.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from stellar_sdk import Keypair, TransactionEnvelope

from providers.sandbox.app import Sandbox
from providers.sandbox.trustless_work_state import TrustlessWorkConfig

USDC = 10_000_000


@dataclass
class Env:
    sandbox: Sandbox
    http: httpx.AsyncClient
    buyer: Keypair
    seller: Keypair
    last_hash: str = ""

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post(path, json=body)

    async def act(self, path: str, body: dict[str, Any], signer: Keypair) -> httpx.Response:
        built = await self.post(path, body)
        assert built.status_code == 201, built.text
        envelope = TransactionEnvelope.from_xdr(
            built.json()["unsignedTransaction"], self.sandbox.chain.passphrase
        )
        envelope.sign(signer)
        self.last_hash = envelope.hash_hex()
        return await self.post("/helper/send-transaction", {"signedXdr": envelope.to_xdr()})

    def roles(self, *, receiver: bool = True) -> dict[str, str]:
        platform = self.sandbox.platform.public_key
        roles = {
            "approver": self.buyer.public_key,
            "serviceProvider": self.seller.public_key,
            "platformAddress": platform,
            "releaseSigner": self.buyer.public_key,
            "disputeResolver": platform,
        }
        return {**roles, "receiver": self.seller.public_key} if receiver else roles

    async def deploy(self, amount: int = 10) -> str:
        body = {
            "signer": self.sandbox.platform.public_key,
            "engagementId": "ord_9",
            "title": "t",
            "description": "d",
            "roles": self.roles(),
            "amount": amount,
            "platformFee": 5,
            "milestones": [{"description": "m"}],
            "trustline": {"address": self.sandbox.chain.issuer.public_key, "symbol": "USDC"},
        }
        answer = await self.act("/deployer/single-release", body, self.sandbox.platform)
        assert answer.status_code == 200, answer.text
        contract_id: str = answer.json()["contractId"]
        return contract_id


async def _env(sandbox: Sandbox) -> AsyncIterator[Env]:
    transport = httpx.ASGITransport(app=sandbox.asgi_app())
    base = sandbox.provider_settings().trustless_work.base_url
    headers = {"x-api-key": sandbox.trustless_work_api_key}
    async with httpx.AsyncClient(transport=transport, base_url=base, headers=headers) as http:
        buyer = sandbox.chain.activate(usdc=100 * USDC)
        yield Env(sandbox, http, buyer, sandbox.chain.activate())


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async for value in _env(Sandbox(seed=3, start_s=1_800_000_000)):
        yield value


async def test_api_key_is_required(env: Env) -> None:
    answer = await env.http.get(
        "/helper/get-multiple-escrow-balance",
        params={"addresses[]": "C"},
        headers={"x-api-key": "wrong.key"},
    )
    assert answer.status_code == 401
    assert answer.json() == {
        "statusCode": 401,
        "message": "Invalid or missing API key",
        "error": "Unauthorized",
    }


async def test_rate_limit_answers_429_until_the_window_moves() -> None:
    sandbox = Sandbox(seed=3, start_s=1_800_000_000, trustless_work_rate_limit=2)
    async for env in _env(sandbox):
        cid = env.sandbox.trustless_work.deployer_id
        for _ in range(2):
            answer = await env.http.get("/helper/get-multiple-escrow-balance?addresses[]=" + cid)
            assert answer.status_code == 200
        limited = await env.http.get("/helper/get-multiple-escrow-balance?addresses[]=" + cid)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "60"
        assert limited.json()["error"] == "Too Many Requests"
        sandbox.clock.advance(60)
        again = await env.http.get("/helper/get-multiple-escrow-balance?addresses[]=" + cid)
        assert again.status_code == 200


async def test_build_refusals_are_nestjs_bodies_with_contract_texts(env: Env) -> None:
    cid = await env.deploy()
    fund = {"contractId": cid, "amount": 1000, "signer": env.buyer.public_key}
    poor = await env.post("/escrow/single-release/fund-escrow", fund)
    assert poor.status_code == 400
    assert poor.json() == {
        "statusCode": 400,
        "message": "The signer has insufficient funds to fund the escrow",
        "error": "Bad Request",
    }
    bad_index = {
        "contractId": cid,
        "milestoneIndex": "3",
        "approver": env.buyer.public_key,
    }
    refused = await env.post("/escrow/single-release/approve-milestone", bad_index)
    assert refused.json()["message"] == "Invalid milestone index"
    wrong_type = await env.post("/escrow/multi-release/fund-escrow", {**fund, "amount": 1})
    assert wrong_type.status_code == 400
    missing = await env.post("/escrow/single-release/fund-escrow", {**fund, "contractId": "C1"})
    assert missing.status_code == 404
    malformed = await env.post("/escrow/single-release/fund-escrow", {"contractId": cid})
    assert malformed.status_code == 400
    assert isinstance(malformed.json()["message"], list)
    unknown = await env.post("/helper/send-transaction", {"signedXdr": "AAAA"})
    assert unknown.status_code == 400


async def test_reads_lag_until_validated_or_reindexed() -> None:
    config = TrustlessWorkConfig(indexer_lag_s=30)
    async for env in _env(Sandbox(seed=4, start_s=1_800_000_000, trustless_work_config=config)):
        cid = await env.deploy()
        stale = await env.http.get(
            "/helper/get-escrow-by-contract-ids", params={"contractIds[]": cid}
        )
        assert stale.json() == []
        fund = {"contractId": cid, "amount": 10, "signer": env.buyer.public_key}
        funded = await env.act("/escrow/single-release/fund-escrow", fund, env.buyer)
        assert funded.json()["status"] == "SUCCESS"
        fund_hash = env.last_hash
        live = await env.http.get(
            f"/helper/get-escrow-by-contract-ids?contractIds={cid}&validateOnChain=true"
        )
        escrow = live.json()[0]
        assert (escrow["balance"], escrow["amount"], escrow["platformFee"]) == (10, 10, 5)
        assert escrow["flags"] == {"disputed": False, "released": False, "resolved": False}
        reindexed = await env.post("/indexer/update-from-txHash", {"txHash": fund_hash})
        assert reindexed.json()["status"] == "SUCCESS"
        indexed = await env.http.get(f"/helper/get-escrow-by-contract-ids?contractIds[]={cid}")
        assert indexed.json()[0]["balance"] == 10
        balances = await env.http.get(f"/helper/get-multiple-escrow-balance?addresses={cid}")
        assert balances.json() == [{"address": cid, "balance": 10}]


@pytest.mark.parametrize(("fault", "status"), [("status:503", 503), ("fail_before_apply", 500)])
async def test_send_faults_before_apply_change_nothing(env: Env, fault: str, status: int) -> None:
    cid = await env.deploy()
    env.sandbox.faults.add("trustless_work", "POST", "/helper/send-transaction", fault)
    fund = {"contractId": cid, "amount": 4, "signer": env.buyer.public_key}
    answer = await env.act("/escrow/single-release/fund-escrow", fund, env.buyer)
    assert answer.status_code == status
    assert answer.json()["statusCode"] == status
    assert env.sandbox.chain.contract_balance(cid) == 0


async def test_multi_release_milestone_flow(env: Env) -> None:
    platform = env.sandbox.platform
    body = {
        "signer": platform.public_key,
        "engagementId": "ord_m",
        "title": "t",
        "description": "d",
        "roles": env.roles(receiver=False),
        "platformFee": 5,
        "milestones": [
            {"description": "a", "amount": 10, "receiver": env.seller.public_key},
            {"description": "b", "amount": 20, "receiver": env.seller.public_key},
        ],
        "trustline": {"address": env.sandbox.chain.issuer.public_key, "symbol": "USDC"},
    }
    deployed = await env.act("/deployer/multi-release", body, platform)
    cid = deployed.json()["contractId"]
    assert deployed.json()["escrow"]["type"] == "multi-release"
    m = "/escrow/multi-release"
    fund = {"contractId": cid, "amount": 30, "signer": env.buyer.public_key}
    assert (await env.act(f"{m}/fund-escrow", fund, env.buyer)).status_code == 200
    approve = {"contractId": cid, "milestoneIndex": "0", "approver": env.buyer.public_key}
    assert (await env.act(f"{m}/approve-milestone", approve, env.buyer)).status_code == 200
    release = {"contractId": cid, "milestoneIndex": "0", "releaseSigner": env.buyer.public_key}
    assert (await env.act(f"{m}/release-milestone-funds", release, env.buyer)).status_code == 200
    dispute = {"contractId": cid, "milestoneIndex": "1", "signer": env.seller.public_key}
    assert (await env.act(f"{m}/dispute-milestone", dispute, env.seller)).status_code == 200
    resolve = {
        "contractId": cid,
        "milestoneIndex": "1",
        "disputeResolver": platform.public_key,
        "distributions": [{"address": env.buyer.public_key, "amount": 20}],
    }
    assert (await env.act(f"{m}/resolve-milestone-dispute", resolve, platform)).status_code == 200
    chain = env.sandbox.chain
    # Milestone 0: 10 → seller 9.47; milestone 1: 20 refunded → buyer 18.94.
    assert chain.usdc_balance(env.seller.public_key) == 94_700_000
    assert chain.usdc_balance(env.buyer.public_key) == 70 * USDC + 189_400_000
    assert chain.contract_balance(cid) == 0
    flags = env.sandbox.trustless_work.escrows[cid].milestones[1].flags
    assert (flags.resolved, flags.disputed) == (True, False)
