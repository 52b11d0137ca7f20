"""The simulated Airtm over raw HTTP: what it refuses, the shapes it answers, its outbox."""

import json
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest

from common.money import UNIT_MINOR
from providers.airtm.port import PayoutStatus
from providers.sandbox.airtm_app import AirtmSandboxSettings, create_airtm_app
from providers.sandbox.airtm_records import AirtmError, PayinCreateBody, PayoutCreateBody
from providers.sandbox.airtm_state import AirtmState
from providers.sandbox.clock import SandboxClock
from providers.sandbox.faults import FaultRules

AUTH = ("ak", "as")
AT_ROOT = AirtmSandboxSettings(api_key="ak", api_secret="as")
PAYIN: dict[str, Any] = {
    "code": "topup_1",
    "amount": 20.5,
    "description": "top-up",
    "items": [{"description": "a", "amount": 10.25, "quantity": 2}],
    "confirmationUri": "https://ok",
    "cancelUri": "https://no",
}


@pytest.fixture
def state() -> AirtmState:
    airtm = AirtmState(SandboxClock(1_700_000_000))
    airtm.fund(100 * UNIT_MINOR)
    airtm.add_user("bob@example.com")
    return airtm


@pytest.fixture
async def http(state: AirtmState) -> AsyncIterator[httpx.AsyncClient]:
    settings = AirtmSandboxSettings(path_prefix="/airtm", api_key="ak", api_secret="as")
    app = create_airtm_app(state, faults=FaultRules(), settings=settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://s/airtm", auth=AUTH) as c:
        yield c


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 20.51},
        {"amount": 20.505},
        {"amount": 0, "items": [{"description": "a", "amount": 0, "quantity": 1}]},
        {"items": []},
        {"items": [{"description": "a", "amount": 20.5, "quantity": 0}]},
        {"code": ""},
        {"amount": "many"},
    ],
)
async def test_malformed_payins_are_refused_with_415901(
    http: httpx.AsyncClient, state: AirtmState, change: dict[str, Any]
) -> None:
    response = await http.post("/payins", json=PAYIN | change)

    assert (response.status_code, response.json()["code"]) == (400, 415901)
    assert not state.payins


async def test_invalid_json_is_refused(http: httpx.AsyncClient) -> None:
    response = await http.post("/payins", content=b"{not json")

    assert (response.status_code, response.json()["code"]) == (400, 415901)


async def test_duplicate_code_is_409_415029(http: httpx.AsyncClient) -> None:
    first = await http.post("/payins", json=PAYIN)
    second = await http.post("/payins", json=PAYIN)

    assert first.status_code == 201
    assert (second.status_code, second.json()["code"]) == (409, 415029)


async def test_missing_or_wrong_basic_auth_is_401(http: httpx.AsyncClient) -> None:
    missing = await http.get("/me/balance", auth=None)
    wrong = await http.get("/me/balance", auth=("ak", "nope"))
    garbled = await http.get("/me/balance", headers={"authorization": "Basic !!!"}, auth=None)

    for response in (missing, wrong, garbled):
        assert (response.status_code, response.json()["code"]) == (401, 415904)


async def test_payin_shape_uses_camel_case_numbers(http: httpx.AsyncClient) -> None:
    created = (await http.post("/payins", json=PAYIN)).json()
    cancelled = await http.delete(f"/payins/{created['id']}")

    assert created["status"] == "CREATED"
    assert created["amount"] == 20.5
    assert {"netAmount", "airtmFee", "confirmationUri", "createdAt"} <= created.keys()
    assert b'"amount":20.50' in (await http.get(f"/payins/{created['id']}")).content
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "CANCELED")


async def test_payout_fees_and_events(http: httpx.AsyncClient, state: AirtmState) -> None:
    state.config = state.config.__class__(payout_fee_bps=100)
    body = {
        "code": "wd_1",
        "airtmUserEmail": "BOB@example.com",
        "amount": 50,
        "enterpriseFee": 1.5,
        "notes": "n",
        "commit": True,
    }

    payout = (await http.post("/payouts", json=body)).json()
    events = (await http.get(f"/payouts/{payout['id']}/events")).json()

    amounts = [payout[k] for k in ("grossAmount", "amount", "airtmFee", "netAmount")]
    assert amounts == [50, 48.5, 0.48, 48.02]
    assert [event["status"] for event in events] == ["CREATED", "COMMITTED"]
    assert (state.available_minor, state.pending_minor) == (515_000_000, 485_000_000)


async def test_commit_checks_the_balance_again(http: httpx.AsyncClient, state: AirtmState) -> None:
    body = {"code": "wd_1", "airtmUserEmail": "bob@example.com", "amount": 80, "notes": "n"}
    first = (await http.post("/payouts", json=body)).json()
    await http.post("/payouts", json=body | {"code": "wd_2", "commit": True})

    response = await http.post(f"/payouts/{first['id']}/commit")

    assert (response.status_code, response.json()["code"]) == (422, 415016)
    assert state.payouts[first["id"]].status is PayoutStatus.CREATED


async def test_routes_outside_the_prefix_do_not_exist(state: AirtmState) -> None:
    app = create_airtm_app(state, faults=FaultRules(), settings=AT_ROOT)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), auth=AUTH) as http:
        at_root = await http.get("http://s/me/balance")
        prefixed = await http.get("http://s/airtm/me/balance")

    assert at_root.json() == {"available": 100.0, "pending": 0.0}
    assert prefixed.status_code == 404


async def test_outbox_holds_type_and_data_snapshots(state: AirtmState) -> None:
    app = create_airtm_app(state, faults=FaultRules(), settings=AT_ROOT)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), auth=AUTH) as http:
        payin = (await http.post("http://s/payins", json=PAYIN)).json()
    state.payer_fails(payin["id"], "CARD_DECLINED")

    bodies = [json.loads(message.body) for message in state.outbox]

    assert [(b["type"], b["data"]["status"]) for b in bodies] == [
        ("payin.created", "CREATED"),
        ("payin.failed", "FAILED"),
    ]
    assert bodies[1]["data"]["failureReason"] == "CARD_DECLINED"
    assert len({message.message_id for message in state.outbox}) == 2


def test_state_refuses_illegal_transitions(state: AirtmState) -> None:
    body = msgspec.json.decode(json.dumps(PAYIN), type=PayinCreateBody)
    payin = state.create_payin(body)
    payout = state.create_payout(
        PayoutCreateBody(code="wd_1", airtm_user_email="bob@example.com", amount=Decimal(5))
    )
    state.add_user("us@example.com", country="US")

    refusals: list[tuple[Callable[[], object], int]] = [
        (lambda: state.payer_confirms("nope"), 415031),
        (lambda: state.payer_confirms(payin.id, "us@example.com"), 415053),
        (lambda: state.payout_completes(payout.id), 415027),
        (lambda: state.payout_fails("nope"), 415005),
    ]
    for action, code in refusals:
        with pytest.raises(AirtmError) as caught:
            action()
        assert caught.value.code == code
    state.payer_confirms(payin.id)
    with pytest.raises(AirtmError) as again:
        state.payer_cancels(payin.id)
    assert again.value.code == 415030


def test_ids_are_reproducible_from_the_seed() -> None:
    first = AirtmState(SandboxClock(0), seed=7).add_user("a@example.com").id
    second = AirtmState(SandboxClock(0), seed=7).add_user("a@example.com").id

    assert first == second
