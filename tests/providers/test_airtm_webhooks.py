"""Svix-style webhook signatures (vectors computed here with hmac/base64) and the sandbox sender."""

import base64
import hashlib
import hmac
import itertools
import json
from decimal import Decimal

import httpx
import pytest

from common.money import UNIT_MINOR
from providers.airtm import (
    Payin,
    PayinStatus,
    Payout,
    SignatureFailure,
    WebhookEvent,
    WebhookSignatureInvalid,
)
from providers.airtm.webhooks import sign, signature_headers, verify_webhook
from providers.errors import ProviderResponseInvalid
from providers.sandbox.airtm_records import PayinCreateBody, PayinItemBody
from providers.sandbox.airtm_state import DAY_S, AirtmState
from providers.sandbox.airtm_webhooks import RETRY_DELAYS_S, AirtmWebhookSender
from providers.sandbox.clock import SandboxClock
from providers.sandbox.faults import FaultRules

SECRET = "whsec_" + base64.b64encode(b"offerhub-test-webhook-key-32byte").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"the previous webhook key, rotated").decode()
NOW_S = 1_700_000_000
MESSAGE_ID = "msg_2aBcD3eFgH4iJkL5mNoP6qRsT7u"
PAYIN_DATA = {
    "id": "p-1",
    "code": "topup_1",
    "status": "CONFIRMED",
    "amount": 10.5,
    "netAmount": 10.2,
    "airtmFee": 0.3,
}
BODY = json.dumps({"type": "payin.confirmed", "data": PAYIN_DATA}).encode()


def expected_signature(secret: str, message_id: str, timestamp_s: int, body: bytes) -> str:
    """Svix's scheme written out independently of the module under test."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = message_id.encode() + b"." + str(timestamp_s).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers_for(
    body: bytes = BODY, timestamp_s: int = NOW_S, secret: str = SECRET
) -> dict[str, str]:
    return {
        "svix-id": MESSAGE_ID,
        "svix-timestamp": str(timestamp_s),
        "svix-signature": expected_signature(secret, MESSAGE_ID, timestamp_s, body),
    }


def verify(
    headers: dict[str, str], body: bytes = BODY, secrets: tuple[str, ...] = (SECRET,)
) -> WebhookEvent:
    return verify_webhook(body, headers, secrets=secrets, now_s=NOW_S)


def test_sign_matches_the_published_svix_example() -> None:
    # The worked example from Svix's documentation; a fact, not our own output.
    signature = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_sign_matches_the_independent_computation() -> None:
    assert sign(SECRET, MESSAGE_ID, NOW_S, BODY) == expected_signature(
        SECRET, MESSAGE_ID, NOW_S, BODY
    )
    assert signature_headers([SECRET], MESSAGE_ID, NOW_S, BODY) == headers_for()


def test_valid_webhook_is_parsed_into_a_payin() -> None:
    upper = {name.upper(): value for name, value in headers_for().items()}

    event = verify(upper)

    assert (event.message_id, event.timestamp_s, event.type) == (
        MESSAGE_ID,
        NOW_S,
        "payin.confirmed",
    )
    assert isinstance(event.data, Payin)
    assert event.data.status is PayinStatus.CONFIRMED
    assert event.data.amount_minor == 105_000_000


def test_tampered_body_is_refused() -> None:
    tampered = BODY.replace(b"10.5", b"99.5")

    with pytest.raises(WebhookSignatureInvalid) as caught:
        verify(headers_for(), tampered)

    assert caught.value.reason is SignatureFailure.NO_MATCHING_SIGNATURE


@pytest.mark.parametrize(
    ("offset_s", "is_accepted"), [(300, True), (-300, True), (301, False), (-301, False)]
)
def test_timestamp_tolerance_is_300_seconds(offset_s: int, is_accepted: bool) -> None:
    headers = headers_for(timestamp_s=NOW_S + offset_s)

    if is_accepted:
        assert verify(headers).message_id == MESSAGE_ID
    else:
        with pytest.raises(WebhookSignatureInvalid) as caught:
            verify(headers)
        assert caught.value.reason is SignatureFailure.STALE_TIMESTAMP


@pytest.mark.parametrize("missing", ["svix-id", "svix-timestamp", "svix-signature"])
def test_missing_header_is_refused(missing: str) -> None:
    headers = headers_for()
    del headers[missing]

    with pytest.raises(WebhookSignatureInvalid) as caught:
        verify(headers)

    assert caught.value.reason is SignatureFailure.MISSING_HEADER


def test_unreadable_timestamp_is_refused() -> None:
    headers = headers_for() | {"svix-timestamp": "17e8"}

    with pytest.raises(WebhookSignatureInvalid) as caught:
        verify(headers)

    assert caught.value.reason is SignatureFailure.BAD_TIMESTAMP


def test_rotation_sends_two_signatures_and_either_secret_verifies() -> None:
    both = " ".join(
        [
            expected_signature(OLD_SECRET, MESSAGE_ID, NOW_S, BODY),
            expected_signature(SECRET, MESSAGE_ID, NOW_S, BODY),
        ]
    )
    headers = headers_for() | {"svix-signature": both}
    assert signature_headers([OLD_SECRET, SECRET], MESSAGE_ID, NOW_S, BODY) == headers

    assert verify(headers, secrets=(SECRET,)).message_id == MESSAGE_ID
    assert verify(headers, secrets=(OLD_SECRET,)).message_id == MESSAGE_ID
    assert verify(headers_for(secret=OLD_SECRET), secrets=(SECRET, OLD_SECRET)).type


def test_signature_from_another_secret_or_version_is_refused() -> None:
    other = "whsec_" + base64.b64encode(b"somebody else's key").decode()
    forged = expected_signature(other, MESSAGE_ID, NOW_S, BODY)
    wrong_version = forged.replace("v1,", "v2,") + " v1,not-base64!"

    for signature in (forged, wrong_version):
        with pytest.raises(WebhookSignatureInvalid):
            verify(headers_for() | {"svix-signature": signature})


def test_unknown_event_type_has_no_data_and_bad_payload_is_invalid() -> None:
    body = b'{"type": "payin.refunded", "data": {"anything": 1}}'
    assert verify(headers_for(body), body).data is None

    garbage = b'{"type": "payout.completed", "data": {"id": 3}}'
    with pytest.raises(ProviderResponseInvalid):
        verify(headers_for(garbage), garbage)


# -- the sandbox sender -------------------------------------------------------------------


class Receiver:
    """The orchestrator's webhook endpoint, played by a MockTransport that verifies."""

    def __init__(self, clock: SandboxClock, statuses: list[int] | None = None) -> None:
        self.clock = clock
        self.statuses = statuses or []
        self.accepted: list[tuple[str, str]] = []
        self.refused: list[SignatureFailure] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        try:
            event = verify_webhook(
                request.content, request.headers, secrets=(SECRET,), now_s=self.clock.now_s()
            )
        except WebhookSignatureInvalid as error:
            self.refused.append(error.reason)
            return httpx.Response(401)
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.accepted.append((event.message_id, event.type))
        return httpx.Response(status)


def new_payin(state: AirtmState, code: str) -> str:
    item = PayinItemBody(description="d", amount=Decimal("5"), quantity=1)
    body = PayinCreateBody(
        code=code,
        amount=item.amount,
        description="d",
        items=[item],
        confirmation_uri="https://ok",
        cancel_uri="https://no",
    )
    return state.create_payin(body).id


def build(
    statuses: list[int] | None = None,
) -> tuple[AirtmState, FaultRules, AirtmWebhookSender, Receiver]:
    clock = SandboxClock(NOW_S)
    state, faults = AirtmState(clock), FaultRules()
    url = "https://hub.test/webhooks/airtm"
    sender = AirtmWebhookSender(state, faults, url=url, secrets=[SECRET])
    return state, faults, sender, Receiver(clock, statuses)


async def test_sender_posts_signed_events_that_parse() -> None:
    state, _, sender, receiver = build()
    payin_id = new_payin(state, "topup_1")
    state.payer_confirms(payin_id)

    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as http:
        attempts = await sender.deliver_due(http)

    assert [a.status_code for a in attempts] == [200, 200]
    assert [kind for _, kind in receiver.accepted] == ["payin.created", "payin.confirmed"]
    assert sender.undelivered() == ()
    assert state.available_minor == 5 * UNIT_MINOR


async def test_sender_follows_the_retry_schedule_on_the_clock() -> None:
    state, _, sender, receiver = build([500] * 8)
    new_payin(state, "topup_1")
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as http:
        times = [a.at_s for a in await sender.deliver_due(http)]
        for delay_s in RETRY_DELAYS_S:
            state.clock.advance(delay_s - 1)
            assert await sender.deliver_due(http) == []  # not due yet
            state.clock.advance(1)
            times.extend(a.at_s for a in await sender.deliver_due(http))
        state.clock.advance(DAY_S)
        assert await sender.deliver_due(http) == []

    assert [t - NOW_S for t in times] == list(itertools.accumulate((0, *RETRY_DELAYS_S)))
    assert sender.undelivered() == ()  # given up after 1 + 7 attempts
    assert receiver.accepted == []


async def test_a_retry_succeeds_after_failures() -> None:
    state, _, sender, receiver = build([503, 500])
    new_payin(state, "topup_1")
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as http:
        await sender.deliver_due(http)
        state.clock.advance(RETRY_DELAYS_S[0])
        await sender.deliver_due(http)
        state.clock.advance(RETRY_DELAYS_S[1])
        await sender.deliver_due(http)

    assert [a.status_code for a in sender.attempts] == [503, 500, 200]
    assert len(receiver.accepted) == 1
    assert sender.next_due_s() is None


async def test_endpoint_is_disabled_after_five_days_of_failures() -> None:
    state, _, sender, receiver = build([500] * 100)
    new_payin(state, "topup_1")
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as http:
        await sender.deliver_due(http)
        state.clock.advance(5 * DAY_S)
        new_payin(state, "topup_2")
        await sender.deliver_due(http)
        new_payin(state, "topup_3")
        assert await sender.deliver_due(http) == []

    assert sender.is_disabled


async def test_duplicate_and_reordered_webhooks() -> None:
    state, faults, sender, receiver = build()
    faults.add("airtm", "WEBHOOK", "payin.created", "duplicate_webhook")
    faults.add("airtm", "WEBHOOK", "payin.", "reorder_webhooks")
    for n in range(3):
        new_payin(state, f"topup_{n}")
    first, second, third = (m.message_id for m in state.outbox)

    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as http:
        await sender.deliver_due(http)

    assert [message_id for message_id, _ in receiver.accepted] == [first, first, third, second]
    assert [a.fault for a in sender.attempts] == [
        "duplicate_webhook",
        "duplicate_webhook",
        None,
        "reorder_webhooks",
    ]


async def test_bad_signature_and_stale_timestamp_are_refused_then_retried() -> None:
    state, faults, sender, receiver = build()
    faults.add("airtm", "WEBHOOK", "payin.", "bad_signature")
    faults.add("airtm", "WEBHOOK", "payin.", "stale_timestamp")
    new_payin(state, "topup_1")
    new_payin(state, "topup_2")

    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as http:
        await sender.deliver_due(http)
        assert receiver.accepted == []
        state.clock.advance(RETRY_DELAYS_S[0])
        await sender.deliver_due(http)

    assert receiver.refused == [
        SignatureFailure.NO_MATCHING_SIGNATURE,
        SignatureFailure.STALE_TIMESTAMP,
    ]
    assert [message_id for message_id, _ in receiver.accepted] == [
        m.message_id for m in state.outbox
    ]


def test_payout_webhook_data_is_a_payout() -> None:
    data = {
        "id": "o-1",
        "code": "wd_1",
        "status": "COMPLETED",
        "grossAmount": 5,
        "amount": 5,
        "netAmount": 4.9,
        "airtmFee": 0.1,
        "airtmUserEmail": "bob@example.com",
    }
    body = json.dumps({"type": "payout.completed", "data": data}).encode()

    event = verify(headers_for(body), body)

    assert isinstance(event.data, Payout)
    assert event.data.net_amount_minor == 49_000_000
