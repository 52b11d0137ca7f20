"""Settings read once from ``OFFERHUB_*`` environment variables, validated, failing fast."""

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

__all__ = ["Settings", "SettingsError", "load_settings"]


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


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from the environment (``DATABASE_URL`` and ``OFFERHUB_*``)."""
    env = os.environ if environ is None else environ
    database_url = env.get("DATABASE_URL") or None
    if database_url is not None and not database_url.startswith(("postgres://", "postgresql://")):
        raise SettingsError("DATABASE_URL must be a postgresql:// URL")
    pool_min_size = _int(env, "OFFERHUB_POOL_MIN_SIZE", 2, 1, 1000)
    return Settings(
        database_url=database_url,
        data_dir=Path(env.get("OFFERHUB_DATA_DIR", ".offerhub")),
        host=env.get("OFFERHUB_HOST", "127.0.0.1"),
        port=_int(env, "OFFERHUB_PORT", 4000, 1, 65535),
        sandbox_port=_int(env, "OFFERHUB_SANDBOX_PORT", 4001, 1, 65535),
        pool_min_size=pool_min_size,
        pool_max_size=_int(env, "OFFERHUB_POOL_MAX_SIZE", 20, pool_min_size, 1000),
    )
