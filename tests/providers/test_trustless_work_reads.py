"""Client reads and send-transaction replies over httpx.MockTransport (providers.md 1.4, 1.5).

TW's numbers are JavaScript floats; the fixtures use literals such as 12.3456789,
0.30000000000000004 and 1e-7 that must decode to exact stroops.
"""

from collections.abc import Callable

import httpx
import pytest

from providers.errors import ProviderResponseInvalid, ProviderUnavailable
from providers.trustless_work.client import TrustlessWorkClient
from providers.trustless_work.port import SignedTransaction
from providers.trustless_work.settings import TrustlessWorkSettings
from tests.providers.trustless_work_doubles import Recorder, Reply, json_reply

BASE_URL = "https://dev.api.trustlesswork.com"
API_KEY = "key-id.key-secret"
BUYER = "GBUYERXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
SELLER = "GSELLERXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
PLATFORM = "GPLATFORMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
ISSUER = "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5"
CONTRACT = "CESCROWXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
TX_HASH = "ab" * 32

ClientFactory = Callable[..., tuple[TrustlessWorkClient, Recorder]]


@pytest.fixture
def make_client() -> ClientFactory:
    def factory(*replies: Reply | Exception) -> tuple[TrustlessWorkClient, Recorder]:
        recorder = Recorder(*replies)
        http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
        settings = TrustlessWorkSettings(base_url=BASE_URL)
        return TrustlessWorkClient(http, settings, api_key=API_KEY), recorder

    return factory


def _escrow_json(**overrides: object) -> dict[str, object]:
    escrow: dict[str, object] = {
        "contractId": CONTRACT,
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
        "amount": 12.3456789,
        "platformFee": 5,
        "balance": 12.3456789,
        "milestones": [
            {"description": "Deliver", "status": "pending", "evidence": "", "approved": False}
        ],
        "flags": {"disputed": False, "released": False, "resolved": False},
        "trustline": {"address": ISSUER, "symbol": "USDC"},
        "isActive": True,
        "user": PLATFORM,
        "type": "single-release",
        "createdAt": {"_seconds": 1750000000, "_nanoseconds": 123000000},
        "updatedAt": {"_seconds": 1750000100, "_nanoseconds": 0},
        "someFutureField": {"ignored": True},
    }
    escrow.update(overrides)
    # An override of None stands for a field TW left out.
    return {key: value for key, value in escrow.items() if value is not None}


async def test_send_transaction_after_deploy(make_client: ClientFactory) -> None:
    reply = {
        "status": "SUCCESS",
        "message": "The transaction has been successfully sent to the Stellar network",
        "contractId": CONTRACT,
        "escrow": _escrow_json(contractId=None, balance=0),
    }
    client, recorder = make_client(json_reply(200, reply))
    result = await client.send_transaction(SignedTransaction(tx_hash=TX_HASH, signed_xdr="AAAA"))
    assert recorder.requests[0].url.path == "/helper/send-transaction"
    assert recorder.body() == {"signedXdr": "AAAA"}
    assert result.tx_hash == TX_HASH
    assert result.contract_id == CONTRACT
    assert result.escrow is not None
    assert result.escrow.contract_id == CONTRACT
    assert result.escrow.amount_minor == 123_456_789
    assert result.escrow.status == "working"


async def test_send_without_success_status_is_outcome_unknown(make_client: ClientFactory) -> None:
    client, _ = make_client(json_reply(200, {"status": "FAILED", "message": "tx_failed"}))
    with pytest.raises(ProviderUnavailable) as caught:
        await client.send_transaction(SignedTransaction(tx_hash=TX_HASH, signed_xdr="AAAA"))
    assert caught.value.reason == "outcome_unknown"
    assert TX_HASH in caught.value.message


async def test_get_escrows_decodes_float_looking_numbers_exactly(
    make_client: ClientFactory,
) -> None:
    multi = _escrow_json(
        contractId="CMULTI",
        type="multi-release",
        amount=None,
        flags=None,
        balance=0.30000000000000004,
        milestones=[
            {
                "description": "Phase 1",
                "status": "completed",
                "evidence": "https://example.org/proof",
                "amount": 0.30000000000000004,
                "receiver": SELLER,
                "flags": {
                    "disputed": False,
                    "released": False,
                    "resolved": False,
                    "approved": True,
                },
            },
            {
                "description": "Phase 2",
                "status": "pending",
                "evidence": "",
                "amount": 1e-7,
                "receiver": SELLER,
                "flags": {
                    "disputed": True,
                    "released": False,
                    "resolved": False,
                    "approved": False,
                },
            },
        ],
    )
    client, recorder = make_client(json_reply(200, [_escrow_json(), multi]))
    single, multiple = await client.get_escrows([CONTRACT, "CMULTI"])
    params = recorder.requests[0].url.params
    assert recorder.requests[0].url.path == "/helper/get-escrow-by-contract-ids"
    assert params.get_list("contractIds[]") == [CONTRACT, "CMULTI"]
    assert params["validateOnChain"] == "true"
    assert (single.amount_minor, single.balance_minor) == (123_456_789, 123_456_789)
    assert single.platform_fee_bps == 500
    assert single.status == "funded"
    assert single.roles.receiver == SELLER
    assert multiple.escrow_type == "multi-release"
    assert [m.amount_minor for m in multiple.milestones] == [3_000_000, 1]
    assert multiple.amount_minor == 3_000_001
    assert multiple.balance_minor == 3_000_000
    assert multiple.milestones[0].is_approved
    assert multiple.status == "disputed"


async def test_get_escrows_without_ids_makes_no_request(make_client: ClientFactory) -> None:
    client, recorder = make_client()
    assert await client.get_escrows([]) == ()
    assert recorder.requests == []


async def test_get_balances_in_batches_of_twenty(make_client: ClientFactory) -> None:
    ids = [f"C{i:03d}" for i in range(25)]
    first = [{"address": i, "balance": 0.1} for i in ids[:20]]
    second = [{"address": i, "balance": 1e-7} for i in ids[20:]]
    client, recorder = make_client(json_reply(200, first), json_reply(200, second))
    balances = await client.get_balances(ids)
    assert [len(r.url.params.get_list("addresses[]")) for r in recorder.requests] == [20, 5]
    assert recorder.requests[0].url.path == "/helper/get-multiple-escrow-balance"
    assert [b.balance_minor for b in balances] == [1_000_000] * 20 + [1] * 5
    assert balances[0].contract_id == "C000"


async def test_update_from_tx_hash(make_client: ClientFactory) -> None:
    client, recorder = make_client(json_reply(200, {"status": "SUCCESS", "message": "updated"}))
    update = await client.update_from_tx_hash(TX_HASH)
    assert recorder.requests[0].url.path == "/indexer/update-from-txHash"
    assert recorder.body() == {"txHash": TX_HASH}
    assert (update.status, update.message) == ("SUCCESS", "updated")


@pytest.mark.parametrize(
    "escrow",
    [
        _escrow_json(balance=-1),
        _escrow_json(balance="lots"),
        _escrow_json(platformFee=0.125),
        _escrow_json(type="time-based"),
        _escrow_json(amount=None),
        _escrow_json(roles=None),
    ],
)
async def test_undecodable_escrow_reads_are_invalid(
    make_client: ClientFactory, escrow: dict[str, object]
) -> None:
    client, _ = make_client(json_reply(200, [escrow]))
    with pytest.raises(ProviderResponseInvalid) as caught:
        await client.get_escrows([CONTRACT])
    assert caught.value.reason == "undecodable"
