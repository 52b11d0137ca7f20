"""Real-provider settings: absent means sandbox; present means complete and well-formed."""

import pytest
from stellar_sdk import Keypair, StrKey

from api.provider_settings import REQUIRED, load_provider_endpoints
from api.settings import SettingsError


def _complete() -> dict[str, str]:
    account = Keypair.random().public_key
    contract = StrKey.encode_contract(bytes(32))
    return {
        "OFFERHUB_HORIZON_URL": "https://horizon-testnet.stellar.org",
        "OFFERHUB_NETWORK_PASSPHRASE": "Test SDF Network ; September 2015",
        "OFFERHUB_USDC_ISSUER": account,
        "OFFERHUB_USDC_CONTRACT_ID": contract,
        "OFFERHUB_TRUSTLESS_WORK_URL": "https://dev.api.trustlesswork.com",
        "OFFERHUB_TRUSTLESS_WORK_API_KEY": "tw-secret-key",
        "OFFERHUB_TRUSTLESS_WORK_DEPLOYER_ID": contract,
        "OFFERHUB_TRUSTLESS_WORK_FEE_ADDRESS": account,
        "OFFERHUB_AIRTM_URL": "https://enterprise.airtm.com",
        "OFFERHUB_AIRTM_API_KEY": "airtm-key",
        "OFFERHUB_AIRTM_API_SECRET": "airtm-secret",
        "OFFERHUB_PLATFORM_SECRET_SEED": Keypair.random().secret,
    }


def test_no_horizon_url_means_the_sandbox() -> None:
    assert load_provider_endpoints({}) is None


def test_a_complete_set_builds_endpoints_without_printing_secrets() -> None:
    env = _complete()
    loaded = load_provider_endpoints(env)
    assert loaded is not None
    endpoints, seed = loaded
    assert endpoints.horizon_url == env["OFFERHUB_HORIZON_URL"]
    assert seed.keypair().secret == env["OFFERHUB_PLATFORM_SECRET_SEED"]
    shown = repr(endpoints) + repr(endpoints.airtm)
    for secret in ("tw-secret-key", "airtm-secret", env["OFFERHUB_PLATFORM_SECRET_SEED"]):
        assert secret not in shown


@pytest.mark.parametrize("name", REQUIRED[1:])
def test_a_missing_variable_is_named(name: str) -> None:
    env = _complete()
    del env[name]
    with pytest.raises(SettingsError, match=name):
        load_provider_endpoints(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OFFERHUB_USDC_ISSUER", "not-an-account"),
        ("OFFERHUB_TRUSTLESS_WORK_DEPLOYER_ID", Keypair.random().public_key),
        ("OFFERHUB_PLATFORM_SECRET_SEED", "SNOTASEED"),
        ("OFFERHUB_AIRTM_CHECKOUT_URL", "https://checkout.example/pay"),
        ("OFFERHUB_AIRTM_CHECKOUT_URL", "http://checkout.example/{payin_id}"),
    ],
)
def test_a_malformed_value_is_named(name: str, value: str) -> None:
    env = {**_complete(), name: value}
    with pytest.raises(SettingsError, match=name):
        load_provider_endpoints(env)


def test_the_checkout_template_is_optional_and_kept() -> None:
    loaded = load_provider_endpoints(_complete())
    assert loaded is not None
    assert loaded[0].airtm.checkout_url_template is None
    template = "https://checkout.example/pay/{payin_id}"
    loaded = load_provider_endpoints({**_complete(), "OFFERHUB_AIRTM_CHECKOUT_URL": template})
    assert loaded is not None
    assert loaded[0].airtm.checkout_url_template == template
