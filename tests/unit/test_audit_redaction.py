"""What an audit summary may keep (``flows.audit_redaction``) and how transitions are named."""

import re
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.audit import transition_action
from flows.audit_redaction import REDACTED, is_secret_name, mask_emails, redact
from statemachines import (
    DisputeMachine,
    DisputeStatus,
    EscrowMachine,
    EscrowStatus,
    MilestoneMachine,
    MilestoneStatus,
    OrderMachine,
    OrderStatus,
    TopUpMachine,
    TopUpStatus,
    WithdrawalMachine,
    WithdrawalStatus,
    transition_table,
)

# The CHECK constraint on audit_log.action.
ACTION = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


@pytest.mark.parametrize(
    "name",
    [
        "secret",
        "webhook_secret",
        "sealed_secret",
        "key",
        "api_key",
        "apiKey",
        "x-api-key",
        "token",
        "access_token",
        "Authorization",
        "x-tw-signature",
        "svix-signature",
        "password",
        "seed",
        "platform_seed",
        "salt",
        "private_key",
        "passphrase",
    ],
)
def test_secret_names_are_dropped(name: str) -> None:
    assert is_secret_name(name)
    assert redact({name: "value", "kept": 1}) == {"kept": 1}


@pytest.mark.parametrize(
    "name", ["public_key", "idempotency_key", "key_id", "status", "hash", "keyword", "monkey_id"]
)
def test_other_names_are_kept(name: str) -> None:
    assert not is_secret_name(name)


def test_secrets_inside_text_are_replaced() -> None:
    api_key = "ohk_live_key_" + "Ab1" * 10 + "Zz" + "_" + "9f" * 24
    seed = "S" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" + "A" * 23
    text = f"used {api_key}, seed {seed}, whsec_c2VjcmV0 and Bearer abc.def in one line"
    assert redact(text) == (
        f"used {REDACTED}, seed {REDACTED}, {REDACTED} and {REDACTED} in one line"
    )
    # A Stellar public key (G...) and a contract (C...) are not secrets.
    public = "G" + "A" * 55
    assert redact({"destination": public}) == {"destination": public}


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("jane@example.com", "j***@example.com"),
        ("Ana.Maria+shop@mail.example.co", "A***@mail.example.co"),
        ("write to bob@x.io or eve@y.org", "write to b***@x.io or e***@y.org"),
        ("no address here @ all", "no address here @ all"),
    ],
)
def test_emails_are_masked(text: str, masked: str) -> None:
    assert mask_emails(text) == masked
    assert redact({"email": text}) == {"email": masked}


class _Colour(Enum):
    RED = "RED"


class _Row(msgspec.Struct):
    id: str
    sealed_secret: bytes
    amount: Decimal


def test_values_become_plain_json() -> None:
    moment = datetime(2026, 1, 12, 10, 0, 0, 123456, tzinfo=UTC)
    value = {
        "when": moment,
        "ratio": 0.1,
        "big": 2**70,
        "colour": _Colour.RED,
        "row": _Row(id="r1", sealed_secret=b"\x00", amount=Decimal("1.50")),
        "blob": b"\x01",
        "tags": {"b", "a"},
        "pair": (1, None),
        "nul": "a\x00b",
    }
    assert redact(value) == {
        "when": "2026-01-12T10:00:00.123Z",
        "ratio": "0.1",
        "big": str(2**70),
        "colour": "RED",
        "row": {"id": "r1", "amount": "1.50"},
        "blob": REDACTED,
        "tags": ["a", "b"],
        "pair": [1, None],
        "nul": "a\ufffdb",
    }


_ANY = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.decimals(allow_nan=False)
    | st.text()
    | st.binary(max_size=4),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=16), children, max_size=4)
        | st.tuples(children, children)
    ),
    max_leaves=16,
)


def _keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [*value, *(key for item in value.values() for key in _keys(item))]
    if isinstance(value, list):
        return [key for item in value for key in _keys(item)]
    return []


@given(_ANY)
def test_redaction_is_stable_json_without_secret_names(value: Any) -> None:
    redacted = redact(value)
    # What the hash chain relies on: redacting again and a JSON round trip change nothing.
    assert redact(redacted) == redacted
    assert msgspec.json.decode(msgspec.json.encode(redacted)) == redacted
    assert not any(is_secret_name(key) for key in _keys(redacted))


_MACHINES = [
    ("order", OrderMachine, OrderStatus),
    ("escrow", EscrowMachine, EscrowStatus),
    ("milestone", MilestoneMachine, MilestoneStatus),
    ("dispute", DisputeMachine, DisputeStatus),
    ("topup", TopUpMachine, TopUpStatus),
    ("withdrawal", WithdrawalMachine, WithdrawalStatus),
]


@pytest.mark.parametrize(("resource_type", "machine", "status"), _MACHINES)
def test_every_transition_has_a_well_formed_action(
    resource_type: str, machine: Any, status: Any
) -> None:
    for (_, event), target in transition_table(machine, status).items():
        assert ACTION.fullmatch(transition_action(resource_type, event, target.value))


def test_actions_of_the_contract() -> None:
    assert transition_action("order", "reserve", "FUNDS_RESERVED") == "FUNDS_RESERVED"
    assert transition_action("order", "cancel", "CLOSED") == "ORDER_CANCELED"
    assert transition_action("order", "request_release", "RELEASE_REQUESTED") == (
        "RELEASE_REQUESTED"
    )
    assert transition_action("order", "confirm_refund", "REFUNDED") == "REFUNDED"
    assert transition_action("escrow", "confirm_deploy", "CREATED") == "ESCROW_CREATED"
    assert transition_action("escrow", "confirm_funding", "FUNDED") == "ESCROW_FUNDED"
    assert transition_action("milestone", "complete", "COMPLETED") == "MILESTONE_COMPLETED"
    assert transition_action("dispute", "assign", "UNDER_REVIEW") == "DISPUTE_ASSIGNED"
    assert transition_action("dispute", "resolve", "RESOLVED") == "DISPUTE_RESOLVED"
    assert transition_action("topup", "confirm", "TOPUP_SUCCEEDED") == "TOPUP_STATUS_CHANGED"
    assert transition_action("withdrawal", "commit", "WITHDRAWAL_COMMITTED") == (
        "WITHDRAWAL_STATUS_CHANGED"
    )
