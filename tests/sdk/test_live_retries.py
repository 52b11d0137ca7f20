"""Safe retries against the real server: an answer lost after the server acted.

The transport wrapper lets the server execute ``POST /orders/{id}/reserve`` and answer, then
throws the answer away and raises a read timeout, as a dropped connection would. The SDK
retries with the same Idempotency-Key; the server replays the stored answer, and the ledger
shows exactly one reservation. Blocking and asyncio clients both.
"""

from decimal import Decimal

import pytest
from offerhub_client import AsyncOfferHub, IdempotencyKeyReused, OfferHub, RetryPolicy

from tests.sdk.live import AsyncLoseFirstAnswer, LoseFirstAnswer, live_server

pytestmark = pytest.mark.db

D = Decimal


def _funded_parties(client: OfferHub, amount: str) -> tuple[str, str]:
    buyer = client.users.create(external_user_id="buyer").id
    seller = client.users.create(external_user_id="seller").id
    client.balances.adjust(
        buyer,
        direction="CREDIT",
        amount=amount,
        reason="on-chain deposit",
        counter_account="external:stellar",
    )
    return buyer, seller


def _reservations(client: OfferHub, order_id: str) -> list[str]:
    transfers = client.ledger.transfers_all(order_id=order_id)
    return [transfer.id for transfer in transfers if transfer.code == "order_reserve"]


async def test_a_lost_reserve_answer_is_retried_with_its_key_and_reserves_once(
    db_dsn: str,
) -> None:
    with live_server(db_dsn, deposit_poll_s=None) as server:
        key = server.tenant("retries")
        with OfferHub(server.base_url, key) as plain:
            buyer, seller = _funded_parties(plain, "50")
            first = plain.orders.create(buyer_id=buyer, seller_id=seller, amount="30", title="A")
            second = plain.orders.create(buyer_id=buyer, seller_id=seller, amount="20", title="B")

        lossy = LoseFirstAnswer("POST", "/reserve")
        with OfferHub(server.base_url, key, transport=lossy) as client:
            reserved = client.orders.reserve(first.id, amount="30")
        assert (reserved.id, reserved.status) == (first.id, "FUNDS_RESERVED")
        calls = [entry for entry in lossy.log if entry[1].endswith("/reserve")]
        assert [status for *_, status in calls] == [None, 200]
        assert len({key for _, _, key, _ in calls}) == 1

        async_lossy = AsyncLoseFirstAnswer("POST", "/reserve")
        policy = RetryPolicy(base_delay_s=0.05)
        async with AsyncOfferHub(
            server.base_url, key, transport=async_lossy, retry=policy
        ) as aclient:
            again = await aclient.orders.reserve(second.id)
        assert again.status == "FUNDS_RESERVED"
        async_calls = [entry for entry in async_lossy.log if entry[1].endswith("/reserve")]
        assert [status for *_, status in async_calls] == [None, 200]
        assert len({key for _, _, key, _ in async_calls}) == 1

        with OfferHub(server.base_url, key) as client:
            # Exactly one reservation per order, whatever the retries.
            assert len(_reservations(client, first.id)) == 1
            assert len(_reservations(client, second.id)) == 1
            balance = client.balances.get(buyer)
            assert (balance.available, balance.reserved) == (D(0), D(50))
            # The key stays bound to its request: another body under it is refused, not run.
            used_key = calls[0][2]
            assert used_key is not None
            with pytest.raises(IdempotencyKeyReused) as refused:
                client.orders.reserve(second.id, idempotency_key=used_key)
            assert refused.value.details["idempotency_key"] == used_key
            assert refused.value.request_id
            assert client.balances.get(buyer).reserved == D(50)
