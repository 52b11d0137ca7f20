"""Start and stop what the API benchmarks measure: PostgreSQL, ``offerhub serve``, the bare app.

:func:`running_service` starts one durable PostgreSQL from the embedded binaries (fsync and
synchronous_commit on; as root it runs as the unprivileged ``offerhub-postgres`` user, which is
why the folder is made traversable), then ``offerhub serve`` on it through ``DATABASE_URL`` in a
subprocess, and optionally the bare baseline (``bench/bare.py``) on the same server: every figure
of a run and its baseline then share one PostgreSQL, one disk and one machine.
"""

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger.local_postgres import LocalPostgres  # noqa: E402

_KEY = re.compile(r"API key: (ohk_\S+)")
_SANDBOX = re.compile(r"Sandbox chain on (http://\S+)")
# Per-key rate limiting would cap the one benchmark key at 100 requests/s.
BENCH_ENV: Mapping[str, str] = {"OFFERHUB_RATE_LIMIT_PER_S": "0"}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Service:
    """A running ``offerhub serve`` (and maybe the bare app) and where to reach them."""

    dsn: str
    port: int
    key: str
    sandbox_url: str
    bare_port: int | None


def _start(
    command: list[str], env: Mapping[str, str], ready: str, log: Path
) -> tuple["subprocess.Popen[bytes]", list[str]]:
    """Start ``command`` with its output in ``log``; wait for a line containing ``ready``."""
    with log.open("wb") as sink:
        # A file, not a pipe: nobody has to drain it, and it is there to read after a failure.
        # From the repository root: ``python -m api`` must find the package, not bench/api.py.
        process = subprocess.Popen(
            command, env=dict(env), cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        lines = log.read_text(errors="replace").splitlines()
        if any(ready in line for line in lines):
            return process, lines
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{command[2:4]} did not start:\n{tail(log)}")


def tail(log: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file."""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def stop(process: "subprocess.Popen[bytes]", name: str) -> None:
    """SIGTERM, then SIGKILL after 30 s."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        print(f"{name} ignored SIGTERM for 30 s; killed", file=sys.stderr)
        process.kill()
        process.wait()


@contextlib.contextmanager
def running_service(
    *, bare: bool = False, env: Mapping[str, str] | None = None
) -> Iterator[Service]:
    """PostgreSQL, ``offerhub serve`` on it and (with ``bare``) the bare app, until exit.

    On an error, the end of each server's output is printed to stderr.
    """
    with tempfile.TemporaryDirectory(prefix="offerhub-bench-") as folder:
        os.chmod(folder, 0o755)  # the embedded server user must traverse it
        database = LocalPostgres(Path(folder) / "postgres", durable=True)
        dsn = database.start()
        started: list[tuple[subprocess.Popen[bytes], str, Path]] = []
        try:
            port, sandbox_port = free_port(), free_port()
            command = [sys.executable, "-m", "api", "serve", "--data-dir", f"{folder}/data"]
            command += ["--port", str(port), "--sandbox-port", str(sandbox_port)]
            service_env = {**os.environ, **BENCH_ENV, **(env or {}), "DATABASE_URL": dsn}
            log = Path(folder) / "serve.log"
            process, seen = _start(command, service_env, "listening on", log)
            started.append((process, "offerhub serve", log))
            keys = [found.group(1) for line in seen if (found := _KEY.search(line))]
            sandboxes = [found.group(1) for line in seen if (found := _SANDBOX.search(line))]
            if not keys or not sandboxes:
                raise RuntimeError("offerhub serve printed no key or no sandbox URL")
            bare_port = None
            if bare:
                bare_port = free_port()
                bare_command = [sys.executable, str(ROOT / "bench" / "bare.py"), "--dsn", dsn]
                bare_command += ["--port", str(bare_port)]
                log = Path(folder) / "bare.log"
                bare_process, _ = _start(bare_command, os.environ, "bare listening on", log)
                started.append((bare_process, "bench/bare.py", log))
            yield Service(dsn, port, keys[0], sandboxes[0], bare_port)
        except BaseException:
            for _, name, log in started:
                print(f"--- the end of {name}'s output:\n{tail(log)}", file=sys.stderr)
            raise
        finally:
            for process, name, _ in reversed(started):
                stop(process, name)
            database.stop()
