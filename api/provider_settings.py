"""Real provider endpoints from ``OFFERHUB_*`` variables (testnet or mainnet).

With ``OFFERHUB_HORIZON_URL`` unset, ``offerhub serve`` runs the sandbox chain. With it set,
every variable below is required, and a missing or malformed one stops the start with a
message naming it (design.md 9). Secrets (the TW key, Airtm credentials, the platform seed) are
read here and never printed.
"""

from collections.abc import Mapping
from typing import Final

from stellar_sdk import Keypair, StrKey
from stellar_sdk.exceptions import Ed25519SecretSeedInvalidError

from api.settings import SettingsError
from flows.operations import EscrowNetwork
from flows.runtime import ProviderEndpoints
from providers.airtm.client import AirtmSettings
from providers.stellar.wallet_keys import SecretSeed
from providers.trustless_work.settings import TrustlessWorkSettings
from providers.trustless_work.xdr_check import XdrPolicy

__all__ = ["REQUIRED", "load_provider_endpoints"]

REQUIRED: Final = (
    "OFFERHUB_HORIZON_URL",
    "OFFERHUB_NETWORK_PASSPHRASE",
    "OFFERHUB_USDC_ISSUER",
    "OFFERHUB_USDC_CONTRACT_ID",
    "OFFERHUB_TRUSTLESS_WORK_URL",
    "OFFERHUB_TRUSTLESS_WORK_API_KEY",
    "OFFERHUB_TRUSTLESS_WORK_DEPLOYER_ID",
    "OFFERHUB_TRUSTLESS_WORK_FEE_ADDRESS",
    "OFFERHUB_AIRTM_URL",
    "OFFERHUB_AIRTM_API_KEY",
    "OFFERHUB_AIRTM_API_SECRET",
    "OFFERHUB_PLATFORM_SECRET_SEED",
)


def _checked_address(env: Mapping[str, str], name: str, *, contract: bool = False) -> str:
    value = env[name]
    valid = (
        StrKey.is_valid_contract(value) if contract else StrKey.is_valid_ed25519_public_key(value)
    )
    if not valid:
        kind = "a contract id (C...)" if contract else "a Stellar account (G...)"
        raise SettingsError(f"{name} must be {kind}")
    return value


def _checkout_template(env: Mapping[str, str]) -> str | None:
    """``OFFERHUB_AIRTM_CHECKOUT_URL``: Airtm's payer checkout, with a ``{payin_id}`` slot."""
    template = env.get("OFFERHUB_AIRTM_CHECKOUT_URL") or None
    if template is not None and (
        "{payin_id}" not in template or not template.startswith("https://")
    ):
        raise SettingsError(
            "OFFERHUB_AIRTM_CHECKOUT_URL must be an https:// URL containing {payin_id}"
        )
    return template


def load_provider_endpoints(
    env: Mapping[str, str],
) -> tuple[ProviderEndpoints, SecretSeed] | None:
    """The configured real providers and the platform seed; ``None`` means "use the sandbox".

    Raises:
        SettingsError: a required variable is missing or malformed (the message names it).
    """
    if not env.get("OFFERHUB_HORIZON_URL"):
        return None
    missing = [name for name in REQUIRED if not env.get(name)]
    if missing:
        raise SettingsError("real providers need " + ", ".join(missing))
    try:
        keypair = Keypair.from_secret(env["OFFERHUB_PLATFORM_SECRET_SEED"])
    except (Ed25519SecretSeedInvalidError, ValueError):
        raise SettingsError("OFFERHUB_PLATFORM_SECRET_SEED is not a Stellar secret seed") from None
    platform_seed = SecretSeed.from_keypair(keypair)
    passphrase = env["OFFERHUB_NETWORK_PASSPHRASE"]
    endpoints = ProviderEndpoints(
        horizon_url=env["OFFERHUB_HORIZON_URL"],
        network_passphrase=passphrase,
        usdc_issuer=_checked_address(env, "OFFERHUB_USDC_ISSUER"),
        trustless_work=TrustlessWorkSettings(base_url=env["OFFERHUB_TRUSTLESS_WORK_URL"]),
        trustless_work_api_key=env["OFFERHUB_TRUSTLESS_WORK_API_KEY"],
        airtm=AirtmSettings(
            base_url=env["OFFERHUB_AIRTM_URL"],
            api_key=env["OFFERHUB_AIRTM_API_KEY"],
            api_secret=env["OFFERHUB_AIRTM_API_SECRET"],
            checkout_url_template=_checkout_template(env),
        ),
        escrow_network=EscrowNetwork(
            deployer_contract_id=_checked_address(
                env, "OFFERHUB_TRUSTLESS_WORK_DEPLOYER_ID", contract=True
            ),
            trustless_work_fee_address=_checked_address(env, "OFFERHUB_TRUSTLESS_WORK_FEE_ADDRESS"),
            policy=XdrPolicy(
                network_passphrase=passphrase,
                token_contract_id=_checked_address(env, "OFFERHUB_USDC_CONTRACT_ID", contract=True),
            ),
        ),
    )
    return endpoints, platform_seed
