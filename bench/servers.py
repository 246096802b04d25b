"""The registries a benchmark measures, as processes on free loopback ports: Tollgate from this
checkout (driven only through its CLI and HTTP API) and CNCF distribution."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from registry.fixture.processes import free_port, stop_process

PROJECT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "/usr/bin/docker-registry"


@dataclass
class Server:
    """One registry process the harness started; `url` is its base URL."""

    name: str
    url: str
    process: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        stop_process(self.process)


def wait_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Until `GET /v2/` answers 200, or 401 (a registry with auth on is ready too)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args[0]} exited; see {log}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/v2/", timeout=1) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as e:
            if e.code == 401:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout:g}s; see {log}")


def start_distribution(work: Path) -> Server:
    """Configured as shared/tools/bench/distribution.sh does it (filesystem, in-memory blob
    descriptor cache, access log off), on a free port."""
    if not Path(DISTRIBUTION).exists():
        raise SystemExit(f"{DISTRIBUTION} not found: apt-get install docker-registry")
    port = free_port()
    (work / "data").mkdir(parents=True)
    config = work / "config.yml"
    config.write_text(f"""version: 0.1
log: {{level: warn, formatter: text, accesslog: {{disabled: true}}}}
storage:
  filesystem: {{rootdirectory: {work / "data"}}}
  cache: {{blobdescriptor: inmemory}}
  delete: {{enabled: true}}
  maintenance: {{uploadpurging: {{enabled: false}}}}
http: {{addr: "127.0.0.1:{port}", secret: regbench-local-secret}}
health: {{storagedriver: {{enabled: false}}}}
""")
    log = work / "registry.log"
    process = subprocess.Popen([DISTRIBUTION, "serve", str(config)], stdout=log.open("wb"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, process, log)
    return Server("distribution", url, process, log)


class Tollgate:
    """One Tollgate configuration in its own directory: `cli()` runs management commands on its
    database (before or while it serves), `start()` runs `tollgate serve`."""

    def __init__(self, name: str, work: Path, *, workers: int = 1, auth: str = "none",
                 storage: str | None = None, database_url: str | None = None,
                 env: dict[str, str] | None = None, server_args: list[str] | None = None):
        self.name = name
        self.work = work
        self.workers = workers
        self.auth = auth
        self.storage = storage
        self.database_url = database_url
        self.server_args = server_args or []
        work.mkdir(parents=True, exist_ok=True)
        self.config = work / "tollgate.yaml"
        self.config.write_text(f"data_dir: {work / 'data'}\n"
                               "log: {access: false, level: warning}\n")
        # The checkout first on PYTHONPATH (it wins over an installed copy); no TOLLGATE_*
        # of the caller's shell leaks into the measured configuration.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(PROJECT), *filter(None, [os.environ.get("PYTHONPATH")])])
        self.env.update(env or {})

    def _common_args(self) -> list[str]:
        args = ["--config", str(self.config)]
        if self.database_url:
            args += ["--database-url", self.database_url]
        return args

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """`tollgate ARGS --config ...`; its output, or SystemExit with its error."""
        done = subprocess.run([sys.executable, "-m", "registry", *args, *self._common_args()],
                              input=stdin, capture_output=True, text=True, cwd=self.work,
                              env=self.env, timeout=120)
        if done.returncode != 0:
            raise SystemExit(f"tollgate {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def start(self) -> Server:
        port = free_port()
        command = [sys.executable, "-m", "registry", "serve", *self._common_args(),
                   "--host", "127.0.0.1", "--port", str(port), "--workers", str(self.workers),
                   "--auth", self.auth]
        if self.storage:
            command += ["--storage", self.storage]
        log = self.work / "tollgate.log"
        process = subprocess.Popen([*command, *self.server_args], cwd=self.work, env=self.env,
                                   stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                   start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process, log)
        return Server(self.name, url, process, log)

    def add_user(self, user: str, password: str, pattern: str = "**",
                 actions: str = "pull,push,delete,catalog") -> None:
        """A non-admin user with one grant: what a CI robot or a puller has."""
        self.cli("user", "add", user, "--password-stdin", stdin=password + "\n")
        self.cli("grant", "add", user, pattern, actions)
