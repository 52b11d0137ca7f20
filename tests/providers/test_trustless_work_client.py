"""The Trustless Work client over httpx.MockTransport, with replies shaped like TW's (1.4, 1.5)."""

from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest

from providers.errors import ProviderResponseInvalid
from providers.trustless_work.client import TrustlessWorkClient
from providers.trustless_work.port import (
    ApproveMilestoneRequest,
    ChangeMilestoneStatusRequest,
    DeployMultiReleaseRequest,
    DeploySingleReleaseRequest,
    DisputeRequest,
    Distribution,
    EscrowProvider,
    EscrowRoles,
    FundRequest,
    MilestoneSpec,
    ReleaseMilestoneRequest,
    ReleaseRequest,
    ResolveDisputeRequest,
    WithdrawRemainingRequest,
)
from providers.trustless_work.settings import TrustlessWorkSettings
from tests.providers.trustless_work_doubles import Recorder, Reply, json_reply

BASE_URL = "https://dev.api.trustlesswork.com"
API_KEY = "key-id.key-secret"
BUYER = "GBUYERXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
SELLER = "GSELLERXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
PLATFORM = "GPLATFORMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
ISSUER = "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5"
CONTRACT = "CESCROWXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
UNSIGNED = {"status": "SUCCESS", "unsignedTransaction": "AAAAAgAAAAB..."}

SINGLE_ROLES = EscrowRoles(
    approver=BUYER,
    service_provider=SELLER,
    platform_address=PLATFORM,
    release_signer=BUYER,
    dispute_resolver=PLATFORM,
    receiver=SELLER,
)
MULTI_ROLES = SINGLE_ROLES.__replace__(receiver=None)

ClientFactory = Callable[..., tuple[TrustlessWorkClient, Recorder]]


@pytest.fixture
def make_client() -> ClientFactory:
    def factory(*replies: Reply | Exception) -> tuple[TrustlessWorkClient, Recorder]:
        recorder = Recorder(*replies)
        http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
        settings = TrustlessWorkSettings(base_url=BASE_URL)
        return TrustlessWorkClient(http, settings, api_key=API_KEY), recorder

    return factory


async def test_deploy_single_release_body(make_client: ClientFactory) -> None:
    client, recorder = make_client(json_reply(201, UNSIGNED))
    request = DeploySingleReleaseRequest(
        signer=PLATFORM,
        engagement_id="ord_123",
        title="Logo",
        description="Logo design",
        roles=SINGLE_ROLES,
        amount_minor=1_000_000_000,
        platform_fee_bps=500,
        milestone_descriptions=("Deliver the logo",),
        trustline_address=ISSUER,
    )
    unsigned = await client.build_deploy_single_release(request)
    assert unsigned.unsigned_xdr == "AAAAAgAAAAB..."
    assert unsigned.status == "SUCCESS"
    sent = recorder.requests[0]
    assert (sent.method, sent.url.path) == ("POST", "/deployer/single-release")
    assert sent.headers["x-api-key"] == API_KEY
    assert "authorization" not in sent.headers
    assert b'"amount":100.0000000' in sent.content
    assert recorder.body() == {
        "signer": PLATFORM,
        "engagementId": "ord_123",
        "title": "Logo",
        "description": "Logo design",
        "roles": {
            "approver": BUYER,
            "serviceProvider": SELLER,
            "platformAddress": PLATFORM,
            "releaseSigner": BUYER,
            "disputeResolver": PLATFORM,
            "receiver": SELLER,
        },
        "amount": Decimal("100.0000000"),
        "platformFee": 5,
        "milestones": [{"description": "Deliver the logo"}],
        "trustline": {"address": ISSUER, "symbol": "USDC"},
    }


async def test_deploy_multi_release_body(make_client: ClientFactory) -> None:
    client, recorder = make_client(json_reply(200, UNSIGNED))
    request = DeployMultiReleaseRequest(
        signer=PLATFORM,
        engagement_id="ord_124",
        title="Site",
        description="Two phases",
        roles=MULTI_ROLES,
        platform_fee_bps=0,
        milestones=(
            MilestoneSpec(description="Phase 1", amount_minor=123_456_789, receiver=SELLER),
        ),
        trustline_address=ISSUER,
        receiver_memo=7,
    )
    await client.build_deploy_multi_release(request)
    body = recorder.body()
    assert recorder.requests[0].url.path == "/deployer/multi-release"
    assert "amount" not in body
    assert "receiver" not in body["roles"]  # type: ignore[operator]
    assert body["milestones"] == [
        {"description": "Phase 1", "amount": Decimal("12.3456789"), "receiver": SELLER}
    ]
    assert body["receiverMemo"] == 7


async def test_fund_sends_exact_human_units(make_client: ClientFactory) -> None:
    client, recorder = make_client(json_reply(200, UNSIGNED))
    request = FundRequest(
        escrow_type="single-release", contract_id=CONTRACT, signer=BUYER, amount_minor=123_456_789
    )
    await client.build_fund(request)
    assert recorder.requests[0].url.path == "/escrow/single-release/fund-escrow"
    assert b'"amount":12.3456789' in recorder.requests[0].content
    assert recorder.body() == {
        "contractId": CONTRACT,
        "amount": Decimal("12.3456789"),
        "signer": BUYER,
    }


async def test_milestone_actions_send_the_index_as_a_string(make_client: ClientFactory) -> None:
    client, recorder = make_client(json_reply(200, UNSIGNED), json_reply(200, UNSIGNED))
    await client.build_change_milestone_status(
        ChangeMilestoneStatusRequest(
            escrow_type="single-release",
            contract_id=CONTRACT,
            milestone_index=0,
            new_status="completed",
            service_provider=SELLER,
        )
    )
    await client.build_approve_milestone(
        ApproveMilestoneRequest(
            escrow_type="multi-release", contract_id=CONTRACT, milestone_index=2, approver=BUYER
        )
    )
    assert recorder.requests[0].url.path == "/escrow/single-release/change-milestone-status"
    assert recorder.body(0) == {
        "contractId": CONTRACT,
        "milestoneIndex": "0",
        "newStatus": "completed",
        "newEvidence": "",
        "serviceProvider": SELLER,
    }
    assert recorder.requests[1].url.path == "/escrow/multi-release/approve-milestone"
    assert recorder.body(1) == {"contractId": CONTRACT, "milestoneIndex": "2", "approver": BUYER}


async def test_release_and_dispute_paths_per_type(make_client: ClientFactory) -> None:
    client, recorder = make_client(*[json_reply(200, UNSIGNED)] * 4)
    await client.build_release(ReleaseRequest(contract_id=CONTRACT, release_signer=BUYER))
    await client.build_release_milestone(
        ReleaseMilestoneRequest(contract_id=CONTRACT, milestone_index=1, release_signer=BUYER)
    )
    await client.build_dispute(
        DisputeRequest(escrow_type="single-release", contract_id=CONTRACT, signer=BUYER)
    )
    await client.build_dispute(
        DisputeRequest(
            escrow_type="multi-release", contract_id=CONTRACT, signer=SELLER, milestone_index=0
        )
    )
    assert [r.url.path for r in recorder.requests] == [
        "/escrow/single-release/release-funds",
        "/escrow/multi-release/release-milestone-funds",
        "/escrow/single-release/dispute-escrow",
        "/escrow/multi-release/dispute-milestone",
    ]
    assert recorder.body(0) == {"contractId": CONTRACT, "releaseSigner": BUYER}
    assert recorder.body(1)["milestoneIndex"] == "1"
    assert recorder.body(2) == {"contractId": CONTRACT, "signer": BUYER}
    assert recorder.body(3) == {"contractId": CONTRACT, "signer": SELLER, "milestoneIndex": "0"}


async def test_resolve_and_withdraw_distributions(make_client: ClientFactory) -> None:
    client, recorder = make_client(json_reply(200, UNSIGNED), json_reply(200, UNSIGNED))
    distributions = (
        Distribution(address=SELLER, amount_minor=70_000_001),
        Distribution(address=BUYER, amount_minor=53_456_788),
    )
    await client.build_resolve_dispute(
        ResolveDisputeRequest(
            escrow_type="single-release",
            contract_id=CONTRACT,
            dispute_resolver=PLATFORM,
            distributions=distributions,
        )
    )
    await client.build_withdraw_remaining(
        WithdrawRemainingRequest(
            contract_id=CONTRACT, dispute_resolver=PLATFORM, distributions=distributions[:1]
        )
    )
    assert recorder.requests[0].url.path == "/escrow/single-release/resolve-dispute"
    assert recorder.body(0) == {
        "contractId": CONTRACT,
        "disputeResolver": PLATFORM,
        "distributions": [
            {"address": SELLER, "amount": Decimal("7.0000001")},
            {"address": BUYER, "amount": Decimal("5.3456788")},
        ],
    }
    assert recorder.requests[1].url.path == "/escrow/multi-release/withdraw-remaining-funds"
    assert recorder.body(1)["distributions"] == [
        {"address": SELLER, "amount": Decimal("7.0000001")}
    ]


@pytest.mark.parametrize(
    "reply", [(200, b"<html>", {}), json_reply(200, {"status": "SUCCESS"}), json_reply(200, ["x"])]
)
async def test_undecodable_build_replies_are_invalid(
    make_client: ClientFactory, reply: Reply
) -> None:
    client, _ = make_client(reply)
    release = ReleaseRequest(contract_id=CONTRACT, release_signer=BUYER)
    with pytest.raises(ProviderResponseInvalid) as caught:
        await client.build_release(release)
    assert caught.value.reason == "undecodable"


def test_api_key_stays_out_of_repr() -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(Recorder()))
    # Annotated as the port: mypy proves the client implements EscrowProvider.
    client: EscrowProvider = TrustlessWorkClient(
        http, TrustlessWorkSettings(base_url=BASE_URL), api_key=API_KEY
    )
    assert API_KEY not in repr(client)
    with pytest.raises(ValueError, match="API key"):
        TrustlessWorkClient(http, TrustlessWorkSettings(base_url=BASE_URL), api_key="")
