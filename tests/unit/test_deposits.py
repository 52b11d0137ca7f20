"""Which Horizon payment records are deposits (flows.deposits.is_incoming_usdc), and the ids.

A record is a deposit only when every condition holds; the properties change one field of a
genuine deposit at a time and check that each change alone disqualifies it.
"""

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from stellar_sdk import Keypair

from api.settings import SettingsError, load_settings
from common.ids import is_valid_id
from flows.deposits import deposit_id, deposit_transfer_id, is_incoming_usdc
from providers.stellar.port import PaymentRecord

WALLET = Keypair.from_raw_ed25519_seed(bytes(32)).public_key
ISSUER = Keypair.from_raw_ed25519_seed(bytes([1]) * 32).public_key
OTHER = Keypair.from_raw_ed25519_seed(bytes([2]) * 32).public_key


def _deposit(**fields: Any) -> PaymentRecord:
    record = PaymentRecord(
        id="1234",
        paging_token="1234",
        type="payment",
        created_at="2026-01-12T10:00:00Z",
        transaction_hash="ab" * 32,
        transaction_successful=True,
        source_account=OTHER,
        from_address=OTHER,
        to_address=WALLET,
        amount=10_000_000,
        asset_type="credit_alphanum4",
        asset_code="USDC",
        asset_issuer=ISSUER,
    )
    return msgspec.structs.replace(record, **fields)


def _is_deposit(record: PaymentRecord) -> bool:
    return is_incoming_usdc(record, address=WALLET, usdc_issuer=ISSUER)


@given(
    kind=st.sampled_from(["payment", "path_payment_strict_send", "path_payment_strict_receive"]),
    amount=st.integers(min_value=1, max_value=2**63 - 1),
)
def test_incoming_usdc_payments_and_path_payments_are_deposits(kind: str, amount: int) -> None:
    assert _is_deposit(_deposit(type=kind, amount=amount))


@given(
    change=st.sampled_from(
        [
            {"type": "create_account", "asset_type": "native", "asset_code": None},
            {"type": "invoke_host_function"},  # escrow movements
            {"type": "account_merge"},
            {"transaction_successful": False},
            {"to_address": OTHER},  # outgoing, seen from the sender's wallet
            {"from_address": WALLET},  # the wallet paying itself
            {"asset_type": "native", "asset_code": None, "asset_issuer": None},  # XLM
            {"asset_issuer": OTHER},  # a look-alike USDC from another issuer
            {"asset_code": "USDT"},
            {"asset_type": "credit_alphanum12", "asset_code": "USDC"},
            {"amount": 0},
            {"amount": None},
        ]
    )
)
def test_one_disqualifying_field_is_enough(change: dict[str, Any]) -> None:
    assert not _is_deposit(_deposit(**change))


@given(
    marketplace=st.text(min_size=1, max_size=40),
    operation=st.integers(min_value=1, max_value=2**63 - 1).map(str),
    other=st.integers(min_value=1, max_value=2**63 - 1).map(str),
)
def test_ids_are_derived_from_marketplace_and_operation(
    marketplace: str, operation: str, other: str
) -> None:
    transfer_id = deposit_transfer_id(marketplace, operation)
    assert is_valid_id(transfer_id, "trf_")
    assert is_valid_id(deposit_id(marketplace, operation), "dep_")
    # A replay derives the same id; another operation another one.
    assert deposit_transfer_id(marketplace, operation) == transfer_id
    assert (deposit_transfer_id(marketplace, other) == transfer_id) == (other == operation)


def test_the_poll_interval_setting() -> None:
    assert load_settings({}).deposit_poll_s == 5
    assert load_settings({"OFFERHUB_DEPOSIT_POLL_S": "0"}).deposit_poll_s == 0  # monitor off
    for wrong in ("abc", "-1", "3601"):
        with pytest.raises(SettingsError, match="OFFERHUB_DEPOSIT_POLL_S"):
            load_settings({"OFFERHUB_DEPOSIT_POLL_S": wrong})
