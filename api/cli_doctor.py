"""``offerhub doctor``: check settings, database, providers and files; say what is wrong, plainly.

One line per check, ``ok: <check>: <what was found>`` or ``FAIL: <check>: <what is wrong and what
to do>``; exit status 0 when every check is ok, 1 otherwise. Nothing is changed: the schema is
not applied, no server is started, no provider is written to. Secrets never reach the output
(database URLs are printed without their password).

Checks: ``settings`` (the ``OFFERHUB_*`` variables, real-provider variables and the wallet
keyring), ``database`` (connects within 5 s; PostgreSQL 13 or newer), ``schema`` (this build's
version, or none yet), ``horizon``, ``trustless_work``, ``airtm`` (reachable within 5 s with the
configured credentials; Horizon on the configured network and the platform account funded; on
the sandbox, only whether ``offerhub serve`` is serving it), ``data_dir`` (usable and not writable
by others) and ``key_files`` (the wallet keyring and the embedded database password are 0600).

The embedded database is never started here: ``offerhub serve`` may be running on it, and a second
start would stop it. When it runs, doctor connects to it; when it does not, that is reported.
"""

import asyncio
import os
import stat
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Final, NamedTuple, TextIO
from urllib.parse import urlsplit

import asyncpg
import httpx

from api.provider_settings import load_provider_endpoints
from api.settings import Settings, SettingsError, load_settings
from flows.runtime import ProviderEndpoints
from ledger.schema import SCHEMA_VERSION
from providers.airtm.client import AirtmClient
from providers.errors import ProviderError, ProviderRejected, ProviderUnavailable
from providers.sandbox.app import HORIZON_PREFIX
from providers.stellar.horizon import HorizonClient
from providers.stellar.wallet_keys import MasterKeyring, SecretSeed, WalletKeyError

__all__ = ["Check", "run_doctor"]

_TIMEOUT_S: Final = 5.0
_MIN_SERVER_VERSION: Final = 130000
_KEYRING_FILE: Final = "wallet-master-keys"
_PASSWORD_FILE: Final = "postgres.password"  # noqa: S105 (a file name, not a password)


class Check(NamedTuple):
    """The outcome of one check: its name, whether it passed, and a sentence."""

    name: str
    ok: bool
    message: str

    def line(self) -> str:
        """The printed form."""
        return f"{'ok' if self.ok else 'FAIL'}: {self.name}: {self.message}"


def _without_password(dsn: str) -> str:
    parts = urlsplit(dsn)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path or '/'}"


def _embedded_dsn(data_dir: Path) -> str | None:
    """The URL of the embedded server ``offerhub serve`` runs on ``data_dir``, if it runs."""
    location = data_dir / "pgdata.location"
    cluster = Path(location.read_text().strip()) if location.is_file() else data_dir / "pgdata"
    try:
        lines = (cluster / "postmaster.pid").read_text().splitlines()
        password = (data_dir / _PASSWORD_FILE).read_text().strip()
        os.kill(int(lines[0]), 0)  # signal 0: is the postmaster alive?
        port = int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    return f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"


async def _database_checks(dsn: str) -> list[Check]:
    where = _without_password(dsn)
    try:
        async with asyncio.timeout(_TIMEOUT_S):
            conn = await asyncpg.connect(dsn)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        reason = str(error).split("\n", 1)[0] or type(error).__name__
        return [
            Check("database", False, f"cannot connect to {where}: {reason}"),
            Check("schema", False, "not checked: the database is unreachable"),
        ]
    try:
        version_num = int(await conn.fetchval("SHOW server_version_num"))
        version = await conn.fetchval("SHOW server_version")
        has_schema = await conn.fetchval("SELECT to_regclass('offerhub_schema') IS NOT NULL")
        schema = await conn.fetchval("SELECT version FROM offerhub_schema") if has_schema else None
    finally:
        await conn.close()
    if version_num < _MIN_SERVER_VERSION:
        database = Check("database", False, f"{where} runs PostgreSQL {version}; 13+ is needed")
    else:
        database = Check("database", True, f"connected to {where} (PostgreSQL {version})")
    if schema is None:
        return [database, Check("schema", True, "not applied yet: `offerhub migrate` applies it")]
    if schema != SCHEMA_VERSION:
        return [
            database,
            Check(
                "schema",
                False,
                f"the database has schema {schema}, this build knows {SCHEMA_VERSION}: it will "
                "refuse to start; run the offerhub version that wrote it, or migrate the data",
            ),
        ]
    return [database, Check("schema", True, f"current ({SCHEMA_VERSION})")]


async def _database(settings: Settings) -> list[Check]:
    if settings.database_url is not None:
        return await _database_checks(settings.database_url)
    data_dir = settings.data_dir.resolve()
    dsn = _embedded_dsn(data_dir / "postgres")
    if dsn is not None:
        return await _database_checks(dsn)
    message = f"embedded PostgreSQL in {data_dir / 'postgres'} is not running (serve starts it)"
    return [
        Check("database", True, message),
        Check("schema", True, "not checked: the embedded database is not running"),
    ]


async def _probe(name: str, call: Callable[[], Awaitable[str]]) -> Check:
    try:
        async with asyncio.timeout(_TIMEOUT_S):
            return Check(name, True, await call())
    except TimeoutError:
        return Check(name, False, f"no answer within {_TIMEOUT_S:.0f} s")
    except ProviderRejected as error:
        if error.status_code in (401, 403):
            return Check(name, False, f"the credentials were refused (HTTP {error.status_code})")
        return Check(name, False, f"refused the request: {error}")
    except (ProviderError, httpx.HTTPError) as error:
        return Check(name, False, f"unreachable: {error}")


async def _horizon(http: httpx.AsyncClient, endpoints: ProviderEndpoints, seed: SecretSeed) -> str:
    root = await http.get(endpoints.horizon_url.rstrip("/") + "/")
    if root.status_code == 200:
        served = root.json().get("network_passphrase")
        if served is not None and served != endpoints.network_passphrase:
            raise ProviderRejected(
                f"Horizon serves {served!r}, OFFERHUB_NETWORK_PASSPHRASE says "
                f"{endpoints.network_passphrase!r}",
                provider="stellar",
            )
    async with httpx.AsyncClient(base_url=endpoints.horizon_url, timeout=_TIMEOUT_S) as horizon:
        client = HorizonClient(horizon, usdc_issuer=endpoints.usdc_issuer)
        ledger = await client.latest_ledger()
        platform = seed.keypair().public_key
        account = await client.get_account(platform)
    if not account.exists:
        raise ProviderRejected(
            f"the platform account {platform} does not exist on this network: fund it with XLM",
            provider="stellar",
        )
    return f"{endpoints.horizon_url} at ledger {ledger.sequence}; platform account funded"


async def _trustless_work(http: httpx.AsyncClient, endpoints: ProviderEndpoints) -> str:
    base_url = endpoints.trustless_work.base_url
    response = await http.get(base_url, headers={"x-api-key": endpoints.trustless_work_api_key})
    if response.status_code in (401, 403):
        raise ProviderRejected(
            "the API key was refused", provider="trustless_work", status_code=response.status_code
        )
    if response.status_code >= 500:
        raise ProviderUnavailable(f"answers HTTP {response.status_code}", provider="trustless_work")
    return f"{base_url} answers (HTTP {response.status_code})"


async def _airtm(http: httpx.AsyncClient, endpoints: ProviderEndpoints) -> str:
    await AirtmClient(http, endpoints.airtm).me_balance()
    return f"{endpoints.airtm.base_url} accepted the API key and secret"


async def _providers(settings: Settings, environ: Mapping[str, str]) -> list[Check]:
    real = load_provider_endpoints(environ)
    if real is None:
        url = f"http://{settings.host}:{settings.sandbox_port}{HORIZON_PREFIX}/ledgers"
        async with httpx.AsyncClient(timeout=_TIMEOUT_S) as http:
            try:
                await http.get(url, params={"limit": "1"})
            except httpx.HTTPError:
                state = "not running now (offerhub serve starts it)"
            else:
                state = "served by a running offerhub serve"
        return [Check("providers", True, f"sandbox chain on port {settings.sandbox_port}: {state}")]
    endpoints, seed = real
    async with httpx.AsyncClient(timeout=_TIMEOUT_S) as http:
        return list(
            await asyncio.gather(
                _probe("horizon", lambda: _horizon(http, endpoints, seed)),
                _probe("trustless_work", lambda: _trustless_work(http, endpoints)),
                _probe("airtm", lambda: _airtm(http, endpoints)),
            )
        )


def _mode_problem(path: Path) -> str | None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return f"{path} has mode {mode:04o}; run `chmod 600 {path}`"
    return None


def _files(settings: Settings) -> list[Check]:
    data_dir = settings.data_dir.resolve()
    if not data_dir.exists():
        return [
            Check("data_dir", True, f"{data_dir} does not exist yet (serve creates it)"),
            Check("key_files", True, "none yet"),
        ]
    if not data_dir.is_dir() or not os.access(data_dir, os.R_OK | os.W_OK | os.X_OK):
        data = Check("data_dir", False, f"{data_dir} is not a folder this user can write to")
    elif stat.S_IMODE(data_dir.stat().st_mode) & 0o002:
        data = Check("data_dir", False, f"{data_dir} is writable by everyone; `chmod o-w` it")
    else:
        data = Check("data_dir", True, str(data_dir))
    keys = [data_dir / _KEYRING_FILE, data_dir / "postgres" / _PASSWORD_FILE]
    problems = [problem for path in keys if path.exists() and (problem := _mode_problem(path))]
    found = [path.name for path in keys if path.exists()]
    if problems:
        return [data, Check("key_files", False, "; ".join(problems))]
    return [data, Check("key_files", True, f"mode 0600: {', '.join(found) or 'none yet'}")]


def _settings(environ: Mapping[str, str]) -> tuple[Settings | None, Check]:
    try:
        settings = load_settings(environ)
        real = load_provider_endpoints(environ)
        if settings.wallet_master_keys:
            MasterKeyring.from_text(settings.wallet_master_keys)
    except (SettingsError, WalletKeyError) as error:
        return None, Check("settings", False, str(error))
    database = "DATABASE_URL" if settings.database_url else "embedded database"
    providers = "real providers" if real is not None else "sandbox providers"
    summary = f"network {settings.network}, {database}, {providers}"
    return settings, Check("settings", True, summary)


async def _all_checks(environ: Mapping[str, str]) -> list[Check]:
    settings, loaded = _settings(environ)
    if settings is None:
        skipped = ("database", "providers", "data_dir")
        return [loaded, *(Check(name, False, "not checked: fix the settings") for name in skipped)]
    return [
        loaded,
        *await _database(settings),
        *await _providers(settings, environ),
        *_files(settings),
    ]


def run_doctor(environ: Mapping[str, str] | None = None, out: TextIO | None = None) -> int:
    """Run every check, print one line each; 0 when all are ok, 1 otherwise."""
    checks = asyncio.run(_all_checks(os.environ if environ is None else environ))
    stream = sys.stdout if out is None else out
    for check in checks:
        print(check.line(), file=stream)
    return 0 if all(check.ok for check in checks) else 1
