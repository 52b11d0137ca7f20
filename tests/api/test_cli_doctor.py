"""``offerhub doctor`` on good and broken configurations, and ``offerhub migrate`` on a schema it
does not know. Providers are the sandbox served over real HTTP by uvicorn in a thread.
"""

import asyncio
import io
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import uvicorn
from stellar_sdk import Keypair

from api.cli import main
from api.cli_doctor import run_doctor
from providers.sandbox.app import Sandbox

pytestmark = pytest.mark.db


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def sandbox_env() -> Iterator[dict[str, str]]:
    """The sandbox on a real port, described by the real-provider variables."""
    sandbox = Sandbox(follow_wall_clock=True)
    port = _free_port()
    config = uvicorn.Config(sandbox.asgi_app(), host="127.0.0.1", port=port, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.02)
        assert thread.is_alive(), "the sandbox server did not start"
    providers = sandbox.provider_settings(f"http://127.0.0.1:{port}")
    try:
        yield {
            "OFFERHUB_HORIZON_URL": providers.horizon_url,
            "OFFERHUB_NETWORK_PASSPHRASE": providers.network_passphrase,
            "OFFERHUB_USDC_ISSUER": providers.usdc_issuer,
            "OFFERHUB_USDC_CONTRACT_ID": providers.usdc_contract_id,
            "OFFERHUB_TRUSTLESS_WORK_URL": providers.trustless_work.base_url,
            "OFFERHUB_TRUSTLESS_WORK_API_KEY": providers.trustless_work_api_key,
            "OFFERHUB_TRUSTLESS_WORK_DEPLOYER_ID": providers.deployer_contract_id,
            "OFFERHUB_TRUSTLESS_WORK_FEE_ADDRESS": providers.trustless_work_fee_address,
            "OFFERHUB_AIRTM_URL": providers.airtm.base_url,
            "OFFERHUB_AIRTM_API_KEY": providers.airtm.api_key,
            "OFFERHUB_AIRTM_API_SECRET": providers.airtm.api_secret,
            "OFFERHUB_PLATFORM_SECRET_SEED": sandbox.platform.secret,
        }
    finally:
        server.should_exit = True
        thread.join(10)


def doctor(environ: dict[str, str]) -> tuple[int, dict[str, str]]:
    """Run the doctor; its exit status and its lines by check name."""
    out = io.StringIO()
    status = run_doctor(environ, out=out)
    lines = out.getvalue().splitlines()
    by_check = {}
    for line in lines:
        verdict, name, message = line.split(": ", 2)
        assert verdict in ("ok", "FAIL"), line
        by_check[name] = f"{verdict}: {message}"
    assert len(by_check) == len(lines), "one line per check"
    return status, by_check


def data_dir(tmp_path: Path, key_mode: int = 0o600) -> Path:
    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    key_file = folder / "wallet-master-keys"
    key_file.write_text("1:" + "A" * 43 + "=\n")
    key_file.chmod(key_mode)
    return folder


def test_every_check_passes_on_a_good_configuration(
    db_dsn: str, sandbox_env: dict[str, str], tmp_path: Path
) -> None:
    environ = {"DATABASE_URL": db_dsn, "OFFERHUB_DATA_DIR": str(data_dir(tmp_path)), **sandbox_env}
    status, checks = doctor(environ)
    assert status == 0, checks
    assert set(checks) == {
        "settings",
        "database",
        "schema",
        "horizon",
        "trustless_work",
        "airtm",
        "data_dir",
        "key_files",
    }
    assert all(line.startswith("ok: ") for line in checks.values())
    assert "real providers" in checks["settings"]
    assert "platform account funded" in checks["horizon"]
    password = db_dsn.split("//", 1)[1].split("@", 1)[0].partition(":")[2]
    text = "\n".join(checks.values())
    for secret in (password, sandbox_env["OFFERHUB_TRUSTLESS_WORK_API_KEY"]):
        assert not secret or secret not in text


def test_each_broken_part_is_named_in_plain_words(
    sandbox_env: dict[str, str], tmp_path: Path
) -> None:
    environ = {
        **sandbox_env,
        "DATABASE_URL": f"postgresql://nobody:secret@127.0.0.1:{_free_port()}/offerhub",
        "OFFERHUB_DATA_DIR": str(data_dir(tmp_path, key_mode=0o644)),
        "OFFERHUB_TRUSTLESS_WORK_API_KEY": "not-the-key",
        "OFFERHUB_AIRTM_API_SECRET": "not-the-secret",
        "OFFERHUB_PLATFORM_SECRET_SEED": Keypair.random().secret,
    }
    status, checks = doctor(environ)
    assert status == 1
    assert checks["database"].startswith("FAIL: cannot connect to 127.0.0.1:")
    assert "secret" not in checks["database"]
    assert checks["schema"] == "FAIL: not checked: the database is unreachable"
    assert checks["trustless_work"] == "FAIL: the credentials were refused (HTTP 401)"
    assert checks["airtm"] == "FAIL: the credentials were refused (HTTP 401)"
    assert "does not exist on this network" in checks["horizon"]
    assert checks["key_files"].startswith("FAIL: ")
    assert "mode 0644; run `chmod 600" in checks["key_files"]
    assert checks["data_dir"].startswith("ok: ")


def test_bad_settings_are_named_and_nothing_else_is_tried(tmp_path: Path) -> None:
    status, checks = doctor({"OFFERHUB_PORT": "eighty", "OFFERHUB_DATA_DIR": str(tmp_path)})
    assert status == 1
    assert checks["settings"] == "FAIL: OFFERHUB_PORT must be an integer, got 'eighty'"
    assert checks["database"] == "FAIL: not checked: fix the settings"
    status, checks = doctor({"OFFERHUB_HORIZON_URL": "https://horizon.example"})
    assert status == 1
    assert checks["settings"].startswith("FAIL: real providers need OFFERHUB_NETWORK_PASSPHRASE")


def test_the_embedded_defaults_pass_before_the_first_start(tmp_path: Path) -> None:
    environ = {"OFFERHUB_DATA_DIR": str(tmp_path / "fresh"), "OFFERHUB_SANDBOX_PORT": "1"}
    status, checks = doctor(environ)
    assert status == 0, checks
    assert "is not running" in checks["database"]
    assert (
        checks["providers"]
        == "ok: sandbox chain on port 1: not running now (offerhub serve starts it)"
    )
    assert checks["data_dir"].endswith("does not exist yet (serve creates it)")


async def _set_schema_version(dsn: str, version: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE offerhub_schema SET version = $1", version)
    finally:
        await conn.close()


def test_a_schema_of_another_build_fails_doctor_and_migrate(
    db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_set_schema_version(db_dsn, "0123456789abcdef"))
    status, checks = doctor({"DATABASE_URL": db_dsn, "OFFERHUB_DATA_DIR": str(tmp_path)})
    assert status == 1
    assert checks["schema"].startswith("FAIL: the database has schema 0123456789abcdef")
    assert "refuse to start" in checks["schema"]
    monkeypatch.setenv("DATABASE_URL", db_dsn)
    monkeypatch.setenv("OFFERHUB_DATA_DIR", str(tmp_path))
    assert main(["migrate"]) == 1
    error = capsys.readouterr().err
    assert "refusing to start" in error
    assert "0123456789abcdef" in error
    assert main(["doctor"]) == 1
    assert "FAIL: schema:" in capsys.readouterr().out
