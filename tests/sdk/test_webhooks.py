"""``verify_webhook`` against the server's own signer (``flows.webhooks``), vector by vector.

The server signs deliveries with ``flows.webhooks.signature_header`` (one ``v1`` per secret,
newest first, during a rotation); the SDK must accept exactly what it produces and refuse
anything else: another secret, a changed byte, a stale or future timestamp, a malformed header.
"""

import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from offerhub_client import Event, WebhookVerificationError, sign_webhook, verify_webhook

from flows.webhooks import generate_secret, sign, signature_header

NOW = 1_800_000_000
BODY = json.dumps(
    {
        "id": "evt_" + "e" * 32,
        "sequence": 1042,
        "type": "order.escrow_funded",
        "occurred_at": "2027-01-15T08:00:00.000Z",
        "marketplace_id": "mkt_" + "m" * 32,
        "resource_type": "order",
        "resource_id": "ord_" + "o" * 32,
        "data": {"order_id": "ord_" + "o" * 32, "amount": "80.00"},
    },
    separators=(",", ":"),
).encode()

secrets_ = st.builds(lambda: generate_secret().reveal())
bodies = st.binary(max_size=512)
timestamps = st.integers(min_value=0, max_value=2**40)


@given(secret=secrets_, timestamp=timestamps, body=bodies)
def test_the_sdk_signs_exactly_as_the_server(secret: str, timestamp: int, body: bytes) -> None:
    assert sign_webhook(secret, timestamp, body) == sign(secret, timestamp, body)
    # Both are the HMAC of api.md 3.10, computed here independently.
    message = f"{timestamp}.".encode() + body
    assert (
        sign(secret, timestamp, body)
        == hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    )


def test_a_delivery_signed_by_the_server_verifies_and_decodes() -> None:
    secret = generate_secret().reveal()
    headers = {"OfferHub-Signature": signature_header([secret], NOW, BODY)}
    event = verify_webhook(secret, headers, BODY, now=NOW + 299)
    assert isinstance(event, Event)
    assert (event.sequence, event.type, event.data["amount"]) == (
        1042,
        "order.escrow_funded",
        "80.00",
    )
    # Header names are case-insensitive and the body may arrive as text.
    lower = {"offerhub-signature": headers["OfferHub-Signature"]}
    assert verify_webhook(secret, lower, BODY.decode(), now=NOW - 299).id == event.id


def test_during_a_rotation_either_secret_verifies() -> None:
    old, new = generate_secret().reveal(), generate_secret().reveal()
    header = signature_header([new, old], NOW, BODY)
    assert header.count("v1=") == 2
    assert header.startswith(f"t={NOW},v1={sign(new, NOW, BODY)}")
    for receiver_holds in ([old], [new], [old, new], old):
        verify_webhook(receiver_holds, {"OfferHub-Signature": header}, BODY, now=NOW)
    # A receiver that rotated its own copy first holds both and accepts the old signature too.
    only_old = signature_header([old], NOW, BODY)
    verify_webhook([new, old], {"OfferHub-Signature": only_old}, BODY, now=NOW)


@pytest.mark.parametrize(
    ("case", "header", "now"),
    [
        ("stale", f"t={NOW},v1={{sig}}", NOW + 301),
        ("future", f"t={NOW},v1={{sig}}", NOW - 301),
        ("no v1", f"t={NOW}", NOW),
        ("no t", "v1={sig}", NOW),
        ("not a number", "t=soon,v1={sig}", NOW),
        ("garbage", "garbage", NOW),
        ("empty", "", NOW),
        ("truncated", f"t={NOW},v1={{short}}", NOW),
    ],
)
def test_malformed_or_stale_signatures_are_refused(case: str, header: str, now: int) -> None:
    secret = generate_secret().reveal()
    signature = sign(secret, NOW, BODY)
    value = header.format(sig=signature, short=signature[:-2])
    with pytest.raises(WebhookVerificationError):
        verify_webhook(secret, {"OfferHub-Signature": value}, BODY, now=now)


def test_missing_header_wrong_secret_and_changed_body_are_refused() -> None:
    secret, other = generate_secret().reveal(), generate_secret().reveal()
    headers = {"OfferHub-Signature": signature_header([secret], NOW, BODY)}
    with pytest.raises(WebhookVerificationError):
        verify_webhook(secret, {}, BODY, now=NOW)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(other, headers, BODY, now=NOW)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(secret, headers, BODY.replace(b"80.00", b"80.01"), now=NOW)


@given(body=bodies, flip=st.integers(min_value=0, max_value=511))
def test_any_changed_byte_is_refused(body: bytes, flip: int) -> None:
    secret = generate_secret().reveal()
    headers = {"OfferHub-Signature": signature_header([secret], NOW, body)}
    if body:
        position = flip % len(body)
        changed = body[:position] + bytes([body[position] ^ 1]) + body[position + 1 :]
        with pytest.raises(WebhookVerificationError):
            verify_webhook(secret, headers, changed, now=NOW)


def test_a_signed_body_that_is_not_an_event_is_refused() -> None:
    secret = generate_secret().reveal()
    body = b'{"hello":"world"}'
    headers = {"OfferHub-Signature": signature_header([secret], NOW, body)}
    with pytest.raises(WebhookVerificationError, match="not an event"):
        verify_webhook(secret, headers, body, now=NOW)
