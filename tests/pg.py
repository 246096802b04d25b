"""A throwaway PostgreSQL server for the tests: `initdb` into a temporary directory, the
postmaster on a free loopback port, one fresh database per registry server.

Set TOLLGATE_TEST_POSTGRES_URL=postgresql+psycopg://USER[:PW]@HOST:PORT/postgres to use an
existing server instead (its user must be allowed to CREATE DATABASE).

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user that
Debian's package creates (or `nobody`), with the parent-death signal set after the switch so
that it stops if pytest is killed. The default collation is ICU's `en-US`, not C, so the tests
notice a column that should sort bytewise but lacks its "C" collation.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path

from registry.fixture.processes import die_with_parent, free_port

INSTALL_HINT = "PostgreSQL is not installed: apt-get install postgresql"
URL_ENV = "TOLLGATE_TEST_POSTGRES_URL"


class PostgresMissing(Exception):
    """No PostgreSQL binaries on this machine; the message says how to install them."""


def find_bin_dir() -> Path:
    """The directory holding initdb and postgres: on PATH, else Debian's newest version."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parent.parent.name)
                        if Path(p).parent.parent.name.isdigit() else 0)
    if not candidates:
        raise PostgresMissing(INSTALL_HINT)
    return Path(candidates[-1]).parent


def _run_as() -> str | None:
    """The unprivileged user to run PostgreSQL as, when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise PostgresMissing("running as root and there is no `postgres` or `nobody` user for "
                          "PostgreSQL to run as")


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class PostgresServer:
    """A PostgreSQL server the tests may create databases in."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url  # SQLAlchemy URL of the maintenance database
        self._counter = itertools.count()
        self._created: list[str] = []
        self._process: subprocess.Popen | None = None
        self._workdir: Path | None = None
        self.log_path: Path | None = None

    # -- databases -----------------------------------------------------------------------
    def _connect(self):  # noqa: ANN202 - a psycopg connection
        import psycopg

        return psycopg.connect(self.admin_url.replace("postgresql+psycopg://", "postgresql://"),
                               autocommit=True, connect_timeout=10)

    def create_database(self, hint: str = "t") -> str:
        """Create an empty database; its SQLAlchemy URL."""
        name = f"tollgate_{hint}_{os.getpid()}_{next(self._counter)}"[:63]
        with self._connect() as conn:
            conn.execute(f"CREATE DATABASE {_quote(name)} TEMPLATE template0")
        self._created.append(name)
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{name}"

    def drop_databases(self) -> None:
        with self._connect() as conn:
            for name in self._created:
                conn.execute(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)")
        self._created.clear()

    # -- a throwaway server --------------------------------------------------------------
    @classmethod
    def start_throwaway(cls) -> PostgresServer:
        bin_dir = find_bin_dir()
        user = _run_as()
        workdir = Path(tempfile.mkdtemp(prefix="tollgate-pg-"))
        if user:
            entry = pwd.getpwnam(user)
            os.chown(workdir, entry.pw_uid, entry.pw_gid)
        data = workdir / "data"
        port = free_port()
        server = cls(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres")
        server._workdir = workdir
        server.log_path = workdir / "postgres.log"
        try:
            initdb = subprocess.run(
                [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                 "--encoding=UTF8", "--locale=C.UTF-8", "--locale-provider=icu",
                 "--icu-locale=en-US", "--no-sync"],
                user=user, capture_output=True, text=True, timeout=120, cwd=workdir)
            if initdb.returncode != 0:
                raise RuntimeError(f"initdb failed ({initdb.returncode}):\n{initdb.stderr}")
            log = open(server.log_path, "wb")  # noqa: SIM115 - the server's lifetime
            server._process = subprocess.Popen(
                [str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1",
                 "-p", str(port), "-k", str(workdir),
                 # throwaway data: durability off, enough connections for many servers
                 "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=400",
                 "-c", "shared_buffers=64MB"],
                user=user, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
                # After Popen switches user (which clears the signal); SIGINT is
                # PostgreSQL's fast shutdown.
                preexec_fn=partial(die_with_parent, signal.SIGINT))
            log.close()
            server._wait_ready()
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, timeout: float = 30) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            if self._process and self._process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self._process.returncode}:\n"
                                   f"{self.log()}")
            try:
                with self._connect():
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not answer within {timeout} s:\n"
                                       f"{self.log()}") from None
                time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and \
            self.log_path.exists() else ""

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)  # fast shutdown: ends open sessions
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


def start() -> PostgresServer:
    """The server named by TOLLGATE_TEST_POSTGRES_URL, else a throwaway one."""
    external = os.environ.get(URL_ENV)
    if external:
        if external.startswith("postgresql://"):
            external = "postgresql+psycopg://" + external.removeprefix("postgresql://")
        return PostgresServer(external)
    return PostgresServer.start_throwaway()


def stop(server: PostgresServer) -> None:
    if server._process is None:  # an external server: remove what we made there
        server.drop_databases()
    else:
        server.stop()
