"""Fault rules, and the Airtm client's idempotency under injected faults in the sandbox."""

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from common.money import UNIT_MINOR
from providers.airtm import AirtmClient, AirtmSettings, PayinCreate, PayoutCreate, PayoutStatus
from providers.errors import ProviderUnavailable
from providers.sandbox.airtm_app import AirtmSandboxSettings, create_airtm_app
from providers.sandbox.airtm_state import AirtmState
from providers.sandbox.clock import SandboxClock
from providers.sandbox.faults import Fault, FaultRules, parse_fault

SETTINGS = AirtmSettings(base_url="http://sandbox.test", api_key="ak", api_secret="as")
PAYIN = PayinCreate(
    code="topup_f1",
    amount_minor=25 * UNIT_MINOR,
    description="top-up",
    confirmation_uri="https://m.example/ok",
    cancel_uri="https://m.example/no",
)
PAYOUT = PayoutCreate(
    code="wd_f1", recipient_email="bob@example.com", amount_minor=40 * UNIT_MINOR, notes="n"
)


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("latency_ms:250", Fault(kind="latency_ms", latency_ms=250)),
        ("status:503", Fault(kind="status", status_code=503)),
        ("status:429:3", Fault(kind="status", status_code=429, retry_after_s=3)),
        ("applied_response_lost", Fault(kind="applied_response_lost")),
        ("duplicate_webhook", Fault(kind="duplicate_webhook")),
    ],
)
def test_parse_fault(text: str, fault: Fault) -> None:
    assert parse_fault(text) == fault


@pytest.mark.parametrize("text", ["", "status:200", "status:abc", "latency_ms:", "explode"])
def test_parse_fault_refuses_unknown_texts(text: str) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        parse_fault(text)


def test_rules_fire_for_n_calls_in_order_and_by_prefix() -> None:
    rules = FaultRules()
    rules.add("airtm", "post", "/payins", "status:500", count=2)
    rules.add("airtm", "*", "/pay", "status:502")

    fired = [rules.match("airtm", "POST", "/payins") for _ in range(4)]

    codes = [None if f is None else f.status_code for f in fired]
    assert codes == [500, 500, 502, None]
    assert rules.match("horizon", "POST", "/payins") is None
    assert rules.pending() == ()


def test_rules_can_be_removed_and_cleared() -> None:
    rules = FaultRules()
    first = rules.add("airtm", "GET", "/", "hang")
    rules.add("trustless_work", "GET", "/", "hang")
    rules.remove(first)
    assert [rule.service for rule in rules.pending()] == ["trustless_work"]

    rules.clear()

    assert rules.match("trustless_work", "GET", "/x") is None


@pytest.fixture
def state() -> AirtmState:
    airtm = AirtmState(SandboxClock(1_700_000_000))
    airtm.fund(1_000 * UNIT_MINOR)
    airtm.add_user("bob@example.com")
    return airtm


@pytest.fixture
def faults() -> FaultRules:
    return FaultRules()


@pytest.fixture
async def client(state: AirtmState, faults: FaultRules) -> AsyncIterator[AirtmClient]:
    settings = AirtmSandboxSettings(api_key="ak", api_secret="as")
    app = create_airtm_app(state, faults=faults, settings=settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        yield AirtmClient(http, SETTINGS)


async def test_lost_payin_answer_then_duplicate_code_ends_with_one_payin(
    client: AirtmClient, state: AirtmState, faults: FaultRules
) -> None:
    faults.add("airtm", "POST", "/payins", "applied_response_lost")
    faults.add("airtm", "GET", "/payins/by-code/", "status:503")
    with pytest.raises(ProviderUnavailable):
        await client.create_payin(PAYIN)  # applied, answer lost, and the lookup failed too

    payin = await client.create_payin(PAYIN)  # same code: 415029, resolved by code
    state.payer_confirms(payin.id)

    assert list(state.payins) == [payin.id]
    assert [m.resource_id for m in state.movements if m.reason == "payin.confirmed"] == [payin.id]
    assert state.available_minor == 1_025 * UNIT_MINOR


async def test_lost_payin_answer_is_adopted_by_code_within_one_call(
    client: AirtmClient, state: AirtmState, faults: FaultRules
) -> None:
    faults.add("airtm", "POST", "/payins", "applied_response_lost")

    payin = await client.create_payin(PAYIN)

    assert list(state.payins) == [payin.id]


async def test_failure_before_apply_is_posted_again_with_the_same_code(
    client: AirtmClient, state: AirtmState, faults: FaultRules
) -> None:
    faults.add("airtm", "POST", "/payins", "fail_before_apply")

    payin = await client.create_payin(PAYIN)

    assert [p.code for p in state.payins.values()] == [payin.code]


@pytest.mark.parametrize("lookup_fails", [False, True])
async def test_lost_payout_answer_moves_the_enterprise_balance_once(
    client: AirtmClient, state: AirtmState, faults: FaultRules, lookup_fails: bool
) -> None:
    faults.add("airtm", "POST", "/payouts", "applied_response_lost")
    if lookup_fails:
        faults.add("airtm", "GET", "/payouts/by-code/", "status:504")
        with pytest.raises(ProviderUnavailable):
            await client.create_payout(PAYOUT, commit=True)

    payout = await client.create_payout(PAYOUT, commit=True)

    assert payout.status is PayoutStatus.COMMITTED
    assert list(state.payouts) == [payout.id]
    assert [m.reason for m in state.movements] == ["fund", "payout.committed"]
    assert (state.available_minor, state.pending_minor) == (960 * UNIT_MINOR, 40 * UNIT_MINOR)


async def test_adopted_uncommitted_payout_is_committed(
    client: AirtmClient, state: AirtmState, faults: FaultRules
) -> None:
    created = await client.create_payout(PAYOUT, commit=False)

    payout = await client.create_payout(PAYOUT, commit=True)  # a retry that now wants commit

    assert payout.id == created.id
    assert payout.status is PayoutStatus.COMMITTED


async def test_lost_commit_answer_is_confirmed_on_retry(
    client: AirtmClient, state: AirtmState, faults: FaultRules
) -> None:
    created = await client.create_payout(PAYOUT, commit=False)
    faults.add("airtm", "POST", f"/payouts/{created.id}/commit", "applied_response_lost")
    with pytest.raises(ProviderUnavailable):
        await client.commit_payout(created.id)

    payout = await client.commit_payout(created.id)  # 415027, then read

    assert payout.status is PayoutStatus.COMMITTED
    assert [m.reason for m in state.movements].count("payout.committed") == 1


async def test_injected_status_faults_carry_retry_after(
    client: AirtmClient, faults: FaultRules
) -> None:
    faults.add("airtm", "GET", "/me/balance", "status:429:3")
    faults.add("airtm", "GET", "/me/balance", "status:502")

    with pytest.raises(ProviderUnavailable) as throttled:
        await client.me_balance()
    with pytest.raises(ProviderUnavailable) as bad_gateway:
        await client.me_balance()
    balance = await client.me_balance()

    assert (throttled.value.status_code, throttled.value.retry_after_s) == (429, 3.0)
    assert (bad_gateway.value.status_code, bad_gateway.value.retry_after_s) == (502, None)
    assert balance.available_minor == 1_000 * UNIT_MINOR


async def test_latency_fault_delays_the_answer(client: AirtmClient, faults: FaultRules) -> None:
    faults.add("airtm", "GET", "/me", "latency_ms:30")
    started = time.monotonic()

    await client.me_balance()

    assert time.monotonic() - started >= 0.03
