"""The sandbox's composition and its control routes (providers.md 5.7), each exercised once."""

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from common.money import UNIT_MINOR
from providers.airtm.client import AirtmClient
from providers.sandbox.airtm_records import PayinCreateBody, PayinItemBody, PayoutCreateBody
from providers.sandbox.app import Sandbox
from providers.stellar.horizon import HorizonClient


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(seed=5, start_s=1_800_000_000)


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sandbox.asgi_app())
    base = sandbox.provider_settings("http://sandbox").control_url
    async with httpx.AsyncClient(transport=transport, base_url=base) as client:
        yield client


async def test_one_app_mounts_every_service(sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    settings = sandbox.provider_settings("http://sandbox")
    assert settings.horizon_url == "http://sandbox/_sandbox/horizon"
    assert settings.trustless_work.base_url == "http://sandbox/_sandbox/trustless-work"
    assert settings.airtm.base_url == "http://sandbox/_sandbox/airtm"
    assert settings.network_passphrase == "Standalone Network ; February 2017"
    transport = httpx.ASGITransport(app=sandbox.asgi_app())
    async with (
        httpx.AsyncClient(transport=transport, base_url=settings.horizon_url) as horizon_http,
        httpx.AsyncClient(transport=transport) as airtm_http,
    ):
        horizon = HorizonClient(horizon_http, usdc_issuer=settings.usdc_issuer)
        platform = await horizon.get_account(sandbox.platform.public_key)
        assert platform.exists
        assert platform.usdc == 0
        airtm = AirtmClient(airtm_http, settings.airtm)
        assert (await airtm.me_balance()).available_minor == 0
    assert (await http.get("http://sandbox/elsewhere")).status_code == 404
    assert "key" not in repr(settings)


async def test_deposit_and_account(sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    user = sandbox.chain.activate()
    answer = await http.post(
        "/deposits", json={"address": user.public_key, "amount": "12.5", "memo": "hi", "ops": 2}
    )
    assert answer.status_code == 200
    deposit = answer.json()
    assert len(deposit["operation_ids"]) == 2
    assert sandbox.chain.transaction(deposit["tx_hash"]) is not None
    account = (await http.get(f"/accounts/{user.public_key}")).json()
    assert account["usdc"] == "25.00"
    assert account["exists"] is True
    assert int(account["sequence"]) > 0
    ghost = (await http.get(f"/accounts/{sandbox.chain.new_keypair().public_key}")).json()
    assert ghost["exists"] is False
    refused = await http.post("/deposits", json={"address": user.public_key, "amount": "-1"})
    assert refused.status_code == 400


async def test_contract_and_tamper(sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    assert (await http.get("/contracts/CNOPE")).status_code == 404
    tw_fee = sandbox.trustless_work.tw_fee_address
    tampered = await http.post("/tamper", json={"address": tw_fee, "usdc_delta": "-0.5"})
    assert tampered.status_code == 400  # it holds nothing: no balance goes negative
    tampered = await http.post("/tamper", json={"address": tw_fee, "usdc_delta": "1.25"})
    assert tampered.json() == {"address": tw_fee, "usdc": "1.25"}
    assert sandbox.chain.adjusted_usdc == 12_500_000


async def test_faults_and_clock(sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    rule = {"service": "horizon", "method": "GET", "route": "/ledgers", "fault": "status:503"}
    armed = await http.post("/faults", json=rule)
    assert armed.json()["rule_id"].startswith("flt_")
    assert len(sandbox.faults.pending()) == 1
    bad = await http.post("/faults", json={**rule, "fault": "explode"})
    assert bad.status_code == 400
    cleared = await http.delete("/faults")
    assert cleared.status_code == 204
    assert sandbox.faults.pending() == ()
    before = sandbox.clock.now_s()
    advanced = (await http.post("/clock/advance", json={"seconds": 90})).json()
    assert advanced == {"now": before + 90, "ledger": sandbox.chain.ledger}


async def test_airtm_transitions_send_webhooks(sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    received: list[bytes] = []

    def receive(request: httpx.Request) -> httpx.Response:
        received.append(request.content)
        return httpx.Response(204)

    hooks = httpx.AsyncClient(transport=httpx.MockTransport(receive))
    sandbox.start_webhook_pump("http://orchestrator/webhooks/airtm", http=hooks, interval_s=60)
    try:
        payin = sandbox.airtm.create_payin(
            PayinCreateBody(
                code="topup_1",
                amount=Decimal(10),
                description="top-up",
                items=[PayinItemBody(description="a", amount=Decimal(10), quantity=1)],
                confirmation_uri="https://ok",
                cancel_uri="https://no",
            )
        )
        confirmed = await http.post(f"/airtm/payins/{payin.id}/confirm")
        assert confirmed.json()["status"] == "CONFIRMED"
        assert sandbox.airtm.available_minor == 10 * UNIT_MINOR
        sandbox.airtm.add_user("bob@example.com")
        payout = sandbox.airtm.create_payout(
            PayoutCreateBody(
                code="wd_1", airtm_user_email="bob@example.com", amount=Decimal(4), commit=True
            )
        )
        completed = await http.post(f"/airtm/payouts/{payout.id}/complete")
        assert completed.json()["status"] == "COMPLETED"
        unknown = await http.post(f"/airtm/payouts/{payout.id}/explode")
        assert unknown.status_code == 404
        assert any(b"payin" in body for body in received)
        assert any(b"payout" in body for body in received)
    finally:
        await sandbox.stop_webhook_pump()
        await hooks.aclose()
