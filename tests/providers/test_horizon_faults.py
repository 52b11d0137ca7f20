"""Fault injection on the sandbox Horizon, and how the client converts each failure (one place)."""

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from providers.errors import ProviderResponseInvalid, ProviderUnavailable
from providers.sandbox.chain import SandboxChain
from providers.sandbox.clock import SandboxClock
from providers.sandbox.faults import FaultRules
from providers.sandbox.horizon_app import HorizonSandboxSettings, create_horizon_app
from providers.stellar.horizon import HorizonClient
from providers.stellar.keys import SignedTx, build_usdc_payment

USDC = 10_000_000


@pytest.fixture
def chain() -> SandboxChain:
    return SandboxChain(SandboxClock(1_700_000_000), seed=4)


@pytest.fixture
def faults() -> FaultRules:
    return FaultRules()


@pytest.fixture
async def horizon(chain: SandboxChain, faults: FaultRules) -> AsyncIterator[HorizonClient]:
    settings = HorizonSandboxSettings(path_prefix="/_sandbox/horizon", hang_s=30)
    # Litestar's ASGI types are narrower than httpx's generic ones; the app is a plain ASGI app.
    app: Any = create_horizon_app(chain, faults=faults, settings=settings)
    transport = httpx.ASGITransport(app=app)
    base_url = "http://sandbox.test/_sandbox/horizon"
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
        yield HorizonClient(
            http, usdc_issuer=chain.issuer.public_key, get_timeout_s=0.3, post_timeout_s=0.3
        )


def _payment(chain: SandboxChain, amount: int = 1 * USDC) -> tuple[SignedTx, str]:
    payer = chain.activate(usdc=5 * USDC)
    entry = chain.account(payer.public_key)
    assert entry is not None
    signed = build_usdc_payment(
        source=payer,
        sequence=entry.sequence,
        destination=chain.outside.public_key,
        amount=amount,
        usdc_issuer=chain.issuer.public_key,
        passphrase=chain.passphrase,
        now_s=chain.clock.now_s(),
    )
    return signed, payer.public_key


async def test_applied_response_lost_then_hash_lookup_shows_success(
    horizon: HorizonClient, chain: SandboxChain, faults: FaultRules
) -> None:
    signed, payer = _payment(chain)
    faults.add("horizon", "POST", "/transactions", "applied_response_lost")
    with pytest.raises(ProviderUnavailable) as lost:
        await horizon.submit_transaction(signed.envelope_xdr, tx_hash=signed.hash)
    assert lost.value.reason == "outcome_unknown"
    assert lost.value.status_code == 504
    info = await horizon.get_transaction(signed.hash)
    assert info.found
    assert info.successful
    assert chain.usdc_balance(payer) == 4 * USDC
    again = await horizon.submit_transaction(signed.envelope_xdr, tx_hash=signed.hash)
    assert again.ledger == info.ledger
    assert chain.usdc_balance(payer) == 4 * USDC


async def test_fail_before_apply_then_lookup_misses_and_resubmit_lands(
    horizon: HorizonClient, chain: SandboxChain, faults: FaultRules
) -> None:
    signed, payer = _payment(chain)
    faults.add("horizon", "POST", "/transactions", "fail_before_apply")
    with pytest.raises(ProviderUnavailable) as failed:
        await horizon.submit_transaction(signed.envelope_xdr, tx_hash=signed.hash)
    assert failed.value.reason == "outcome_unknown"
    assert not (await horizon.get_transaction(signed.hash)).found
    await horizon.submit_transaction(signed.envelope_xdr, tx_hash=signed.hash)
    assert chain.usdc_balance(payer) == 4 * USDC


@pytest.mark.parametrize(
    ("fault", "reason", "retry_after_s"),
    [
        ("status:429:2", "rate_limited", 2.0),
        ("status:429", "rate_limited", None),
        ("status:500", "server_error", None),
        ("status:503", "server_error", None),
        ("status:504", "server_error", None),
    ],
)
async def test_read_faults_are_unavailable(
    horizon: HorizonClient,
    chain: SandboxChain,
    faults: FaultRules,
    fault: str,
    reason: str,
    retry_after_s: float | None,
) -> None:
    faults.add("horizon", "GET", "/accounts/", fault)
    with pytest.raises(ProviderUnavailable) as failure:
        await horizon.get_account(chain.outside.public_key)
    assert (failure.value.reason, failure.value.retry_after_s) == (reason, retry_after_s)
    assert (await horizon.get_account(chain.outside.public_key)).exists  # the rule fired once


@pytest.mark.parametrize("fault", ["status:500", "status:502", "status:504"])
async def test_submit_5xx_means_outcome_unknown(
    horizon: HorizonClient, chain: SandboxChain, faults: FaultRules, fault: str
) -> None:
    signed, _ = _payment(chain)
    faults.add("horizon", "POST", "/transactions", fault)
    with pytest.raises(ProviderUnavailable) as failure:
        await horizon.submit_transaction(signed.envelope_xdr, tx_hash=signed.hash)
    assert failure.value.reason == "outcome_unknown"


async def test_hang_times_out(
    horizon: HorizonClient, chain: SandboxChain, faults: FaultRules
) -> None:
    signed, _ = _payment(chain)
    faults.add("horizon", "*", "/", "hang", count=2)
    with pytest.raises(ProviderUnavailable) as read:
        await horizon.latest_ledger()
    assert read.value.reason == "timeout"
    with pytest.raises(ProviderUnavailable) as submit:
        await horizon.submit_transaction(signed.envelope_xdr, tx_hash=signed.hash)
    assert submit.value.reason == "outcome_unknown"
    assert not (await horizon.get_transaction(signed.hash)).found


async def test_latency_only_delays(
    horizon: HorizonClient, chain: SandboxChain, faults: FaultRules
) -> None:
    faults.add("horizon", "GET", "/ledgers", "latency_ms:20")
    assert (await horizon.latest_ledger()).sequence == chain.ledger


def _mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> HorizonClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://h.test")
    return HorizonClient(http, usdc_issuer="G" + "A" * 55)


async def test_undecodable_answers_are_invalid() -> None:
    client = _mock_client(lambda request: httpx.Response(200, content=b"<html>"))
    with pytest.raises(ProviderResponseInvalid):
        await client.get_account("GABC")


async def test_inexact_amounts_are_invalid() -> None:
    account = {
        "account_id": "GABC",
        "sequence": "12",
        "balances": [{"balance": "1.00000001", "asset_type": "native"}],
    }
    client = _mock_client(lambda request: httpx.Response(200, json=account))
    with pytest.raises(ProviderResponseInvalid):
        await client.get_account("GABC")


async def test_amount_strings_parse_to_exact_stroops() -> None:
    account = {
        "account_id": "GABC",
        "sequence": "12",
        "balances": [
            {"balance": "922337203685.4775807", "asset_type": "native"},
            {
                "balance": "10.0000001",
                "limit": "100.0000000",
                "asset_type": "credit_alphanum4",
                "asset_code": "USDC",
                "asset_issuer": "G" + "A" * 55,
                "is_authorized": True,
            },
        ],
    }
    client = _mock_client(lambda request: httpx.Response(200, json=account))
    state = await client.get_account("GABC")
    assert (state.xlm, state.usdc, state.usdc_limit, state.sequence) == (
        2**63 - 1,
        100_000_001,
        1_000_000_000,
        12,
    )


async def test_submit_answer_for_another_hash_is_invalid(chain: SandboxChain) -> None:
    signed, _ = _payment(chain)
    stored = chain.submit(signed.envelope_xdr).tx
    assert stored is not None
    document = {
        "hash": "ff" * 32,
        "ledger": stored.ledger,
        "successful": True,
        "created_at": stored.created_at,
        "source_account": stored.source_account,
        "source_account_sequence": "1",
        "fee_charged": "100",
        "result_xdr": stored.result_xdr,
    }
    client = _mock_client(lambda request: httpx.Response(200, json=document))
    with pytest.raises(ProviderResponseInvalid):
        await client.submit_transaction(signed.envelope_xdr, tx_hash=signed.hash)


@pytest.mark.parametrize(
    ("error", "submit", "reason"),
    [
        (httpx.ConnectError("refused"), True, "connection"),
        (httpx.ReadError("reset"), True, "outcome_unknown"),
        (httpx.ReadTimeout("slow"), False, "timeout"),
    ],
)
async def test_transport_errors_are_unavailable(
    error: httpx.TransportError, submit: bool, reason: str
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    client = _mock_client(fail)
    call = client.submit_transaction("AAAA", tx_hash="00" * 32) if submit else client.fee_stats()
    with pytest.raises(ProviderUnavailable) as failure:
        await call
    assert failure.value.reason == reason
