"""The world a crash test kills a server in: a sandbox that outlives it, and the server process.

``offerhub serve`` normally runs the sandbox chain inside its own process, so a SIGKILL would
take the chain's state with it. Here the sandbox (Horizon, Trustless Work and Airtm simulators)
is served by uvicorn in the test's event loop, and the server subprocess is started with the
real-provider variables of ``api/provider_settings.py`` pointing at it, as it would point at
testnet. ``DATABASE_URL`` names the test's database. Both survive every kill.
"""

import asyncio
import base64
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Final

import httpx

from providers.sandbox.app import Sandbox
from tests.serving import free_port, serving

__all__ = ["ServerProcess", "free_port", "provider_environment", "serving_sandbox"]

_READY_PATH: Final = "/api/v1/health/ready"
_KEY_LINE: Final = re.compile(r"API key: (ohk_\S+)")
# Fixed wallet master keys: every incarnation of the server must open the seeds it sealed.
_MASTER_KEYS: Final = "1:" + base64.b64encode(bytes(range(32))).decode()


@contextlib.asynccontextmanager
async def serving_sandbox(sandbox: Sandbox) -> AsyncIterator[str]:
    """Serve ``sandbox`` over real HTTP from this event loop; yields its base URL."""
    async with serving(sandbox.asgi_app()) as base_url:
        yield base_url


def provider_environment(sandbox: Sandbox, base_url: str) -> dict[str, str]:
    """The ``OFFERHUB_*`` provider variables that make a server use ``sandbox`` at ``base_url``."""
    providers = sandbox.provider_settings(base_url)
    return {
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
        "OFFERHUB_WALLET_MASTER_KEYS": _MASTER_KEYS,
    }


def _spawn(command: list[str], environ: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` with its output appended to ``log_path``."""
    with log_path.open("ab") as log:
        return subprocess.Popen(command, env=environ, stdout=log, stderr=subprocess.STDOUT)


class ServerProcess:
    """``python -m api serve`` as a child process: start, SIGKILL, restart, stop.

    Every incarnation listens on the same port and appends its output to one log file, which
    the first start's bootstrap key is read from.
    """

    def __init__(self, environ: Mapping[str, str], data_dir: Path, log_path: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._environ = {**os.environ, **environ}
        self._data_dir = data_dir
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    @property
    def running(self) -> bool:
        """A process was started and has not been reaped."""
        return self._process is not None

    def bootstrap_key(self) -> str:
        """The all-scopes key the first start printed."""
        found = _KEY_LINE.search(self.log())
        assert found is not None, "the first start printed no API key:\n" + self.log()[-3000:]
        return found.group(1)

    def log(self) -> str:
        """Everything every incarnation wrote so far."""
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    async def start(self, ready_within_s: float = 60.0) -> None:
        """Start an incarnation and wait until ``/health/ready`` answers 200."""
        assert self._process is None, "the server is already running"
        command = [sys.executable, "-m", "api", "serve", "--data-dir", str(self._data_dir)]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        self._process = await asyncio.to_thread(_spawn, command, self._environ, self._log_path)
        self.starts += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ready_within_s
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as probe:
            while True:
                exited = self._process.poll()
                assert exited is None, f"serve exited with {exited}:\n{self.log()[-3000:]}"
                with contextlib.suppress(httpx.TransportError):
                    if (await probe.get(_READY_PATH)).status_code == 200:
                        return
                assert loop.time() < deadline, "serve never became ready:\n" + self.log()[-3000:]
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """SIGKILL the incarnation (no shutdown code runs) and reap it."""
        process = self._take()
        process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait)
        self.kills += 1

    async def stop(self, timeout_s: float = 15.0) -> int:
        """Stop the incarnation with SIGTERM (SIGKILL after ``timeout_s``); its exit code."""
        process = self._take()
        process.terminate()
        try:
            return await asyncio.to_thread(process.wait, timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            return await asyncio.to_thread(process.wait)

    def _take(self) -> subprocess.Popen[bytes]:
        process, self._process = self._process, None
        assert process is not None, "the server is not running"
        return process
