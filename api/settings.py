"""Settings read once from ``OFFERHUB_*`` environment variables, validated, failing fast."""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

from providers.airtm.webhooks import decode_secret

__all__ = ["Settings", "SettingsError", "load_settings"]


MASTER_KEY_MIN_LENGTH = 24
METRICS_TOKEN_MIN_LENGTH = 16


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the service needs to start. Tests build it directly."""

    database_url: str | None = None
    data_dir: Path = Path(".offerhub")
    host: str = "127.0.0.1"
    port: int = 4000
    # The sandbox chain (Horizon, Trustless Work, Airtm simulators) serves on its own port
    # whenever no real provider is configured, which is the only mode so far.
    sandbox_port: int = 4001
    pool_min_size: int = 2
    pool_max_size: int = 20
    # Group commit (ledger.group_commit): the most request transactions of one marketplace that
    # share one database transaction and COMMIT; 0 gives every request its own transaction.
    group_commit_max: int = 64
    # Bootstrap credential (api.md 1.2): belongs to no marketplace; None disables it.
    master_key: str | None = None
    # Which chain the installation runs on; API keys say `live` only on mainnet.
    network: Literal["sandbox", "testnet", "mainnet"] = "sandbox"
    body_limit_bytes: int = 1024 * 1024
    # Token bucket per API key (api.md 1.10); a rate of 0 turns rate limiting off.
    rate_limit_per_s: int = 100
    rate_limit_burst: int = 200
    # Creations per user and minute (api.md 1.10); 0 turns a limit off.
    topups_per_user_per_min: int = 10
    withdrawals_per_user_per_min: int = 5
    # Where the payer returns after Airtm's checkout when a top-up names no URL (api.md 3.7).
    topup_return_url: str | None = None
    topup_cancel_url: str | None = None
    idempotency_retention_hours: int = 168
    idempotency_lease_s: int = 60
    idempotency_purge_interval_s: int = 3600
    # Claim lease of a durable operation's step (flows.operations.WorkerSettings): the steps a
    # crashed process had claimed run again once it expires. Keep it above a step's worst case
    # (a Horizon submit waits up to 35 s); tests of crash recovery shorten it.
    operation_lease_s: int = 120
    # Wallet seed master keys "1:<base64>,2:<base64>"; unset: a key file in data_dir.
    wallet_master_keys: str | None = None
    # How long a request waits for its durable operation before answering 202 (api.md 1.9).
    operation_wait_s: int = 20
    # Event stream (api.md 3.9): heartbeat comment when idle, concurrent streams per API key
    # (per process), the safety-net poll beside LISTEN/NOTIFY, and event retention.
    sse_heartbeat_s: float = 15.0
    sse_max_streams_per_key: int = 5
    sse_poll_s: float = 5.0
    event_retention_days: int = 7
    event_purge_interval_s: int = 3600
    # Seconds between deposit monitor passes over the active wallets' Horizon payments;
    # 0 turns the monitor off in this process (another process may run it).
    deposit_poll_s: int = 5
    # Reconciliation (reconcile/): scheduled runs every interval (0 turns the schedule off), and
    # the ages after which a non-zero clearing account or a running operation is reported.
    reconcile_interval_s: int = 600
    reconcile_clearing_max_age_s: int = 3600
    reconcile_operation_max_age_s: int = 3600
    # Outbound webhooks (api.md 3.10). Insecure: http:// and loopback/private addresses are
    # accepted (tests, a local receiver); never in production. Backoff: base doubling, capped,
    # until max age after the first attempt. The worker polls besides its NOTIFY wake-up.
    webhook_allow_insecure_urls: bool = False
    webhook_backoff_base_s: float = 30.0
    webhook_backoff_max_s: float = 21600.0
    webhook_max_age_s: float = 259200.0
    webhook_poll_interval_s: float = 1.0
    # Bearer token GET /metrics requires; None: /metrics is public (api.md 3.1).
    metrics_token: str | None = None
    # Inbound webhook secrets (api.md 3.14); unset: every call to that webhook answers 401.
    # Airtm's is Svix-style "whsec_<base64>"; Trustless Work's keys a hex HMAC-SHA256.
    airtm_webhook_secret: str | None = None
    tw_webhook_secret: str | None = None

    def __repr__(self) -> str:
        # The master key and wallet keys are secrets: never print them with the settings.
        return (
            f"Settings(database_url={'set' if self.database_url else None}, "
            f"data_dir={str(self.data_dir)!r}, host={self.host!r}, port={self.port}, "
            f"network={self.network!r})"
        )

    @property
    def key_env(self) -> Literal["live", "test"]:
        """The ``env`` part of API keys issued here: ``live`` on mainnet, ``test`` elsewhere."""
        return "live" if self.network == "mainnet" else "test"


def _int(environ: Mapping[str, str], name: str, default: int, lowest: int, highest: int) -> int:
    raw = environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not lowest <= value <= highest:
        raise SettingsError(f"{name} must be between {lowest} and {highest}, got {value}")
    return value


def _https_setting(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name) or None
    if value is not None and not value.startswith("https://"):
        raise SettingsError(f"{name} must be an https:// URL, got {value!r}")
    return value


def _airtm_webhook_secret(environ: Mapping[str, str]) -> str | None:
    name = "OFFERHUB_AIRTM_WEBHOOK_SECRET"
    value = environ.get(name) or None
    if value is None:
        return None
    try:
        decode_secret(value)
    except ValueError:
        # The value is a secret: name the variable, never echo it.
        raise SettingsError(f"{name} must be whsec_ followed by base64") from None
    if not value.startswith("whsec_"):
        raise SettingsError(f"{name} must be whsec_ followed by base64")
    return value


def _metrics_token(environ: Mapping[str, str]) -> str | None:
    value = environ.get("OFFERHUB_METRICS_TOKEN") or None
    if value is not None and (len(value) < METRICS_TOKEN_MIN_LENGTH or " " in value):
        raise SettingsError(
            f"OFFERHUB_METRICS_TOKEN must be at least {METRICS_TOKEN_MIN_LENGTH} characters "
            "without spaces"
        )
    return value


def _flag(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "false").strip().lower()
    if raw not in ("true", "false", "1", "0"):
        raise SettingsError(f"{name} must be true or false, got {raw!r}")
    return raw in ("true", "1")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from the environment (``DATABASE_URL`` and ``OFFERHUB_*``)."""
    env = os.environ if environ is None else environ
    database_url = env.get("DATABASE_URL") or None
    if database_url is not None and not database_url.startswith(("postgres://", "postgresql://")):
        raise SettingsError("DATABASE_URL must be a postgresql:// URL")
    pool_min_size = _int(env, "OFFERHUB_POOL_MIN_SIZE", 2, 1, 1000)
    master_key = env.get("OFFERHUB_MASTER_KEY") or None
    if master_key is not None and len(master_key) < MASTER_KEY_MIN_LENGTH:
        raise SettingsError(
            f"OFFERHUB_MASTER_KEY must be at least {MASTER_KEY_MIN_LENGTH} characters"
        )
    network = env.get("OFFERHUB_NETWORK", "sandbox")
    if network not in ("sandbox", "testnet", "mainnet"):
        raise SettingsError(f"OFFERHUB_NETWORK must be sandbox, testnet or mainnet: {network!r}")
    return Settings(
        database_url=database_url,
        data_dir=Path(env.get("OFFERHUB_DATA_DIR", ".offerhub")),
        host=env.get("OFFERHUB_HOST", "127.0.0.1"),
        port=_int(env, "OFFERHUB_PORT", 4000, 1, 65535),
        sandbox_port=_int(env, "OFFERHUB_SANDBOX_PORT", 4001, 1, 65535),
        pool_min_size=pool_min_size,
        pool_max_size=_int(env, "OFFERHUB_POOL_MAX_SIZE", 20, pool_min_size, 1000),
        group_commit_max=_int(env, "OFFERHUB_GROUP_COMMIT_MAX", 64, 0, 1024),
        master_key=master_key,
        network=network,  # type: ignore[arg-type]
        body_limit_bytes=_int(env, "OFFERHUB_BODY_LIMIT_BYTES", 1024 * 1024, 1024, 2**30),
        rate_limit_per_s=_int(env, "OFFERHUB_RATE_LIMIT_PER_S", 100, 0, 1_000_000),
        rate_limit_burst=_int(env, "OFFERHUB_RATE_LIMIT_BURST", 200, 1, 1_000_000),
        topups_per_user_per_min=_int(env, "OFFERHUB_TOPUPS_PER_USER_PER_MIN", 10, 0, 1_000_000),
        withdrawals_per_user_per_min=_int(
            env, "OFFERHUB_WITHDRAWALS_PER_USER_PER_MIN", 5, 0, 1_000_000
        ),
        topup_return_url=_https_setting(env, "OFFERHUB_TOPUP_RETURN_URL"),
        topup_cancel_url=_https_setting(env, "OFFERHUB_TOPUP_CANCEL_URL"),
        idempotency_retention_hours=_int(env, "OFFERHUB_IDEMPOTENCY_RETENTION_HOURS", 168, 1, 8760),
        idempotency_lease_s=_int(env, "OFFERHUB_IDEMPOTENCY_LEASE_S", 60, 1, 3600),
        idempotency_purge_interval_s=_int(
            env, "OFFERHUB_IDEMPOTENCY_PURGE_INTERVAL_S", 3600, 1, 86400
        ),
        operation_lease_s=_int(env, "OFFERHUB_OPERATION_LEASE_S", 120, 1, 3600),
        wallet_master_keys=env.get("OFFERHUB_WALLET_MASTER_KEYS") or None,
        operation_wait_s=_int(env, "OFFERHUB_OPERATION_WAIT_S", 20, 0, 300),
        sse_heartbeat_s=_int(env, "OFFERHUB_SSE_HEARTBEAT_S", 15, 1, 3600),
        sse_max_streams_per_key=_int(env, "OFFERHUB_SSE_MAX_STREAMS_PER_KEY", 5, 1, 10_000),
        sse_poll_s=_int(env, "OFFERHUB_SSE_POLL_S", 5, 1, 3600),
        event_retention_days=_int(env, "OFFERHUB_EVENT_RETENTION_DAYS", 7, 1, 3650),
        event_purge_interval_s=_int(env, "OFFERHUB_EVENT_PURGE_INTERVAL_S", 3600, 1, 86400),
        deposit_poll_s=_int(env, "OFFERHUB_DEPOSIT_POLL_S", 5, 0, 3600),
        reconcile_interval_s=_int(env, "OFFERHUB_RECONCILE_INTERVAL_S", 600, 0, 86400 * 7),
        reconcile_clearing_max_age_s=_int(
            env, "OFFERHUB_RECONCILE_CLEARING_MAX_AGE_S", 3600, 0, 86400 * 90
        ),
        reconcile_operation_max_age_s=_int(
            env, "OFFERHUB_RECONCILE_OPERATION_MAX_AGE_S", 3600, 0, 86400 * 90
        ),
        webhook_allow_insecure_urls=_flag(env, "OFFERHUB_WEBHOOK_ALLOW_INSECURE_URLS"),
        webhook_backoff_base_s=_int(env, "OFFERHUB_WEBHOOK_BACKOFF_BASE_S", 30, 1, 86400),
        webhook_backoff_max_s=_int(env, "OFFERHUB_WEBHOOK_BACKOFF_MAX_S", 21600, 1, 604800),
        webhook_max_age_s=_int(env, "OFFERHUB_WEBHOOK_MAX_AGE_S", 259200, 60, 2592000),
        webhook_poll_interval_s=_int(env, "OFFERHUB_WEBHOOK_POLL_INTERVAL_S", 1, 1, 3600),
        metrics_token=_metrics_token(env),
        airtm_webhook_secret=_airtm_webhook_secret(env),
        tw_webhook_secret=env.get("OFFERHUB_TW_WEBHOOK_SECRET") or None,
    )
