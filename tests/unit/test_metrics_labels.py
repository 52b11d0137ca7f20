"""Label values of ``common.metrics`` stay bounded: ids never become label values."""

import uuid
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from stellar_sdk import Keypair

from common.ids import new_id
from common.metrics import path_template, provider_call

PREFIXES = st.sampled_from(["usr_", "ord_", "wd_", "top_", "op_", "evt_", "key_", "mkt_"])


@given(PREFIXES, st.sampled_from(["/payouts/{}", "/payins/by-code/{}", "/payouts/{}/commit"]))
def test_our_ids_become_a_placeholder(prefix: str, path: str) -> None:
    template = path_template(path.format(new_id(prefix)))
    assert template == path.format("{id}")


@given(st.binary(min_size=32, max_size=32))
def test_stellar_accounts_and_hashes_become_a_placeholder(raw: bytes) -> None:
    account = Keypair.from_raw_ed25519_seed(raw).public_key
    assert path_template(f"/accounts/{account}/payments") == "/accounts/{id}/payments"
    assert path_template(f"/transactions/{raw.hex()}") == "/transactions/{id}"


@given(st.uuids(), st.emails())
def test_uuids_and_emails_become_a_placeholder(value: uuid.UUID, email: str) -> None:
    assert path_template(f"/payins/{value}") == "/payins/{id}"
    # The Airtm client quotes the email into one segment (safe=""), as here.
    assert path_template(f"/users/{quote(email, safe='')}") == "/users/{id}"


@pytest.mark.parametrize(
    "path",
    [
        "/ledgers",
        "/fee_stats",
        "/me/balance",
        "/helper/get-escrow-by-contract-ids",
        "/indexer/update-from-txHash",
        "/escrow/multi-release/release-milestone-funds",
    ],
)
def test_plain_route_words_are_kept(path: str) -> None:
    assert path_template(path + "?limit=1") == path


def _count(operation: str, outcome: str) -> float:
    labels = {"provider": "unit_test", "operation": operation, "outcome": outcome}
    return REGISTRY.get_sample_value("offerhub_provider_requests_total", labels) or 0.0


def test_provider_calls_are_counted_by_outcome() -> None:
    operation = "GET /accounts/{id}"
    before = {o: _count(operation, o) for o in ("ok", "rate_limited", "timeout", "server_error")}
    with provider_call("unit_test", "get", f"/accounts/{new_id('usr_')}") as call:
        call.answered(200)
    with provider_call("unit_test", "GET", "/accounts/x1") as call:
        call.answered(429)
    with provider_call("unit_test", "GET", "/accounts/x2") as call:
        call.answered(503)
    with pytest.raises(TimeoutError), provider_call("unit_test", "GET", "/accounts/x3"):
        raise TimeoutError
    for outcome, counted in before.items():
        assert _count(operation, outcome) - counted == 1, outcome
