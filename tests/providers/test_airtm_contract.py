"""The real Airtm client against the sandbox app, in process through httpx.ASGITransport."""

from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from common.money import UNIT_MINOR
from providers.airtm import (
    AirtmClient,
    AirtmSettings,
    FiatProvider,
    PayinCreate,
    PayinStatus,
    PayoutCreate,
    PayoutStatus,
)
from providers.airtm.client import is_not_found
from providers.errors import ProviderRejected, ProviderUnavailable
from providers.sandbox.airtm_app import AirtmSandboxSettings, create_airtm_app
from providers.sandbox.airtm_state import DAY_S, AirtmState
from providers.sandbox.clock import SandboxClock
from providers.sandbox.faults import FaultRules

PREFIX = "/_sandbox/airtm"
SANDBOX = AirtmSandboxSettings(path_prefix=PREFIX, api_key="ak", api_secret="as")
SETTINGS = AirtmSettings(base_url=f"http://sandbox.test{PREFIX}", api_key="ak", api_secret="as")
BOB = "bob@example.com"


@pytest.fixture
def state() -> AirtmState:
    airtm = AirtmState(SandboxClock(1_700_000_000))
    airtm.fund(1_000 * UNIT_MINOR)
    airtm.add_user(BOB)
    return airtm


@pytest.fixture
def faults() -> FaultRules:
    return FaultRules()


@pytest.fixture
async def http(state: AirtmState, faults: FaultRules) -> AsyncIterator[httpx.AsyncClient]:
    app = create_airtm_app(state, faults=faults, settings=SANDBOX)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient) -> AirtmClient:
    return AirtmClient(http, SETTINGS)


def test_client_implements_the_port(client: AirtmClient) -> None:
    provider: FiatProvider = client  # mypy checks the structural match

    assert isinstance(provider, AirtmClient)


def payin_request(code: str = "topup_1", amount_minor: int = 25 * UNIT_MINOR) -> PayinCreate:
    return PayinCreate(
        code=code,
        amount_minor=amount_minor,
        description="Wallet top-up",
        confirmation_uri="https://market.example/ok",
        cancel_uri="https://market.example/cancel",
    )


def payout_request(
    code: str = "wd_1", amount_minor: int = 40 * UNIT_MINOR, email: str = BOB
) -> PayoutCreate:
    return PayoutCreate(code=code, recipient_email=email, amount_minor=amount_minor, notes="n")


async def test_payin_create_get_by_code_and_confirm(client: AirtmClient, state: AirtmState) -> None:
    created = await client.create_payin(payin_request())
    state.payer_confirms(created.id)

    by_id = await client.get_payin(created.id)
    by_code = await client.get_payin_by_code("topup_1")

    assert created.status is PayinStatus.CREATED
    assert by_id == by_code
    assert by_id.status is PayinStatus.CONFIRMED
    assert by_id.airtm_user_email == "payer@example.com"
    assert (await client.me_balance()).available_minor == 1_025 * UNIT_MINOR


async def test_payin_fee_is_reported_exactly(client: AirtmClient, state: AirtmState) -> None:
    state.config = msgspec.structs.replace(state.config, payin_fee_bps=299)

    payin = await client.create_payin(payin_request(amount_minor=1_234_500_000))

    assert payin.airtm_fee_minor == 36_900_000  # 2.99 % of 123.45 is 3.691..., rounded down
    assert payin.net_amount_minor == payin.amount_minor - payin.airtm_fee_minor


async def test_payin_cancel_is_idempotent(client: AirtmClient) -> None:
    created = await client.create_payin(payin_request())

    first = await client.cancel_payin(created.id)
    second = await client.cancel_payin(created.id)

    assert first.status is second.status is PayinStatus.CANCELED


async def test_confirmed_payin_cannot_be_cancelled(client: AirtmClient, state: AirtmState) -> None:
    created = await client.create_payin(payin_request())
    state.payer_confirms(created.id)

    with pytest.raises(ProviderRejected) as caught:
        await client.cancel_payin(created.id)

    assert caught.value.reason == "415030"


async def test_unknown_payin_is_rejected_as_not_found(client: AirtmClient) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await client.get_payin_by_code("topup_missing")

    assert (caught.value.status_code, caught.value.reason) == (404, "415031")


async def test_code_reused_for_another_amount_is_rejected(client: AirtmClient) -> None:
    await client.create_payin(payin_request())

    with pytest.raises(ProviderRejected) as caught:
        await client.create_payin(payin_request(amount_minor=26 * UNIT_MINOR))

    assert caught.value.reason == "415029"


async def test_same_create_twice_returns_the_same_payin(
    client: AirtmClient, state: AirtmState
) -> None:
    first = await client.create_payin(payin_request())
    second = await client.create_payin(payin_request())

    assert first.id == second.id
    assert len(state.payins) == 1


async def test_payout_create_commit_events_and_complete(
    client: AirtmClient, state: AirtmState
) -> None:
    created = await client.create_payout(payout_request(), commit=False)
    committed = await client.commit_payout(created.id)
    balance = await client.me_balance()
    state.payout_completes(created.id)

    assert created.status is PayoutStatus.CREATED
    assert committed.status is PayoutStatus.COMMITTED
    assert (balance.available_minor, balance.pending_minor) == (960 * UNIT_MINOR, 40 * UNIT_MINOR)
    assert (await client.get_payout_by_code("wd_1")).status is PayoutStatus.COMPLETED
    events = await client.get_payout_events(created.id)
    assert [event.status for event in events] == [
        PayoutStatus.CREATED,
        PayoutStatus.COMMITTED,
        PayoutStatus.COMPLETED,
    ]
    assert (await client.me_balance()).pending_minor == 0


async def test_commit_answers_204_with_an_empty_body(
    client: AirtmClient, http: httpx.AsyncClient
) -> None:
    created = await client.create_payout(payout_request(), commit=False)

    response = await http.post(
        f"{SETTINGS.base_url}/payouts/{created.id}/commit", auth=("ak", "as")
    )

    assert response.status_code == 204
    assert response.content == b""


async def test_repeated_commit_is_confirmed_by_reading(
    client: AirtmClient, state: AirtmState
) -> None:
    created = await client.create_payout(payout_request(), commit=True)

    again = await client.commit_payout(created.id)

    assert again.status is PayoutStatus.COMMITTED
    assert [m.reason for m in state.movements].count("payout.committed") == 1


async def test_payout_to_a_new_user_waits_for_sign_up(
    client: AirtmClient, state: AirtmState
) -> None:
    created = await client.create_payout(payout_request(email="new@example.com"), commit=True)
    state.sign_up("new@example.com")

    assert created.status is PayoutStatus.PENDING
    assert (await client.get_payout(created.id)).status is PayoutStatus.COMMITTED


async def test_pending_payout_cancel_returns_the_funds(client: AirtmClient) -> None:
    created = await client.create_payout(payout_request(email="new@example.com"), commit=True)

    cancelled = await client.cancel_payout(created.id)
    again = await client.cancel_payout(created.id)

    assert cancelled.status is again.status is PayoutStatus.CANCELED
    balance = await client.me_balance()
    assert (balance.available_minor, balance.pending_minor) == (1_000 * UNIT_MINOR, 0)


async def test_committed_payout_cannot_be_cancelled(client: AirtmClient) -> None:
    created = await client.create_payout(payout_request(), commit=True)

    with pytest.raises(ProviderRejected) as caught:
        await client.cancel_payout(created.id)

    assert caught.value.reason == "415055"


async def test_failed_payout_returns_the_funds(client: AirtmClient, state: AirtmState) -> None:
    created = await client.create_payout(payout_request(), commit=True)
    state.payout_fails(created.id, "ACCOUNT_BLOCKED", "blocked")

    failed = await client.get_payout(created.id)

    assert failed.status is PayoutStatus.FAILED
    assert failed.reason_code == "ACCOUNT_BLOCKED"
    assert (await client.me_balance()).available_minor == 1_000 * UNIT_MINOR


@pytest.mark.parametrize(
    ("setup", "request_", "reason"),
    [
        (None, payout_request(amount_minor=1_001 * UNIT_MINOR), "415016"),
        ("inactive", payout_request(email="idle@example.com"), "415060"),
        ("restricted", payout_request(email="far@example.com"), "415061"),
        ("strict", payout_request(email="nobody@example.com"), "415059"),
    ],
)
async def test_payout_refusals(
    client: AirtmClient,
    state: AirtmState,
    setup: str | None,
    request_: PayoutCreate,
    reason: str,
) -> None:
    if setup == "inactive":
        state.add_user("idle@example.com", status="inactive")
    if setup == "restricted":
        state.add_user("far@example.com", country="KP")
    if setup == "strict":
        state.config = msgspec.structs.replace(state.config, reject_unknown_recipients=True)

    with pytest.raises(ProviderRejected) as caught:
        await client.create_payout(request_, commit=True)

    assert caught.value.reason == reason
    assert not state.payouts


async def test_wrong_credentials_are_rejected(http: httpx.AsyncClient) -> None:
    wrong = AirtmClient(
        http, AirtmSettings(base_url=SETTINGS.base_url, api_key="ak", api_secret="x")
    )

    with pytest.raises(ProviderRejected) as caught:
        await wrong.me_balance()

    assert (caught.value.status_code, caught.value.reason) == (401, "415904")


async def test_rate_limit_answers_429_with_retry_after(state: AirtmState) -> None:
    limited = AirtmSandboxSettings(
        path_prefix=PREFIX, api_key="ak", api_secret="as", rate_limit_rps=2
    )
    app = create_airtm_app(state, faults=FaultRules(), settings=limited)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        client = AirtmClient(http, SETTINGS)
        await client.me_balance()
        await client.me_balance()
        with pytest.raises(ProviderUnavailable) as caught:
            await client.me_balance()
        state.clock.advance(1)
        await client.me_balance()

    assert (caught.value.status_code, caught.value.retry_after_s) == (429, 1.0)


async def test_unpaid_payin_expires_after_15_days(client: AirtmClient, state: AirtmState) -> None:
    created = await client.create_payin(payin_request())
    state.clock.advance(15 * DAY_S - 1)
    assert (await client.get_payin(created.id)).status is PayinStatus.CREATED

    state.clock.advance(1)

    expired = await client.get_payin(created.id)
    assert (expired.status, expired.failure_reason) == (PayinStatus.CANCELED, "EXPIRED")


async def test_pending_payout_expires_after_90_days(client: AirtmClient, state: AirtmState) -> None:
    created = await client.create_payout(payout_request(email="new@example.com"), commit=True)

    state.clock.advance(90 * DAY_S)

    assert (await client.get_payout(created.id)).status is PayoutStatus.CANCELED
    assert (await client.me_balance()).available_minor == 1_000 * UNIT_MINOR


async def test_user_lookup_finds_the_account_case_insensitively(
    client: AirtmClient, state: AirtmState
) -> None:
    stored = state.users[BOB]

    user = await client.get_user_by_email("Bob@Example.COM")

    assert (user.id, user.email, user.status) == (stored.id, BOB, "active")
    assert (user.is_verified, user.country) == (True, "AR")


async def test_user_lookup_of_an_unknown_email_is_not_found(client: AirtmClient) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await client.get_user_by_email("nobody@example.com")

    assert (caught.value.status_code, caught.value.reason) == (404, "415059")
    assert is_not_found(caught.value)


@pytest.mark.parametrize(
    ("email", "status", "is_verified"),
    [
        ("idle@example.com", "inactive", True),
        ("anon@example.com", "active", False),
        ("a+b@example.com", "active", True),
        ("o'neil.x%y@example.com", "active", True),
        ("a/b?c#d e@example.com", "active", True),
    ],
)
async def test_user_lookup_reports_status_verification_and_encodes_the_email(
    client: AirtmClient, state: AirtmState, email: str, status: str, is_verified: bool
) -> None:
    state.add_user("a@example.com")  # "+" must not turn into a space or match a neighbour
    stored = state.add_user(email, status=status, is_verified=is_verified, country="UY")

    user = await client.get_user_by_email(email)

    assert (user.id, user.email, user.status) == (stored.id, email, status)
    assert (user.is_verified, user.country) == (is_verified, "UY")


async def test_user_lookup_goes_through_the_fault_gate(
    client: AirtmClient, faults: FaultRules
) -> None:
    faults.add("airtm", "GET", "/users/", "status:503")

    with pytest.raises(ProviderUnavailable) as caught:
        await client.get_user_by_email(BOB)

    assert caught.value.status_code == 503
    assert (await client.get_user_by_email(BOB)).email == BOB
