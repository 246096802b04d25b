"""docker-compose.yml's topology as processes on loopback ports: the shipped files, rendered
for this machine.

Only addresses change: the replicas get compose's environment with the database, the S3
endpoint and its credentials pointed at the test's servers, and nginx gets deploy/nginx.conf
with its upstreams, listen address and file paths replaced, every other directive as shipped.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import yaml

from registry.fixture.processes import die_with_parent

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
CREATE_BUCKET = ROOT / "deploy" / "create_bucket.py"
REPLICAS = ("tollgate-a", "tollgate-b")
NGINX_HINT = "nginx is not installed: apt-get install nginx-light"


def interpolate(text: str) -> str:
    """Compose's `${NAME:-default}` with nothing set: the defaults."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", text)


def load_compose() -> dict:
    return yaml.safe_load(interpolate(COMPOSE_FILE.read_text()))


def replica_environment(database_url: str, s3_endpoint: str, s3_public_endpoint: str,
                        access_key: str, secret_key: str) -> dict[str, str]:
    """The TOLLGATE_* environment compose gives its replicas, for these servers."""
    env = {k: str(v) for k, v in load_compose()["services"][REPLICAS[0]]["environment"].items()}
    local = {
        "TOLLGATE_DATABASE_URL": database_url,
        "TOLLGATE_STORAGE_S3_ENDPOINT_URL": s3_endpoint,
        "TOLLGATE_STORAGE_S3_PUBLIC_ENDPOINT_URL": s3_public_endpoint,
        "TOLLGATE_STORAGE_S3_ACCESS_KEY_ID": access_key,
        "TOLLGATE_STORAGE_S3_SECRET_ACCESS_KEY": secret_key,
    }
    missing = set(local) - set(env)
    assert not missing, f"docker-compose.yml no longer sets {sorted(missing)}"
    return {**env, **local}


def _replace_once(text: str, old: str, new: str) -> str:
    """A change of the shipped file fails here rather than leave a test of something else."""
    assert text.count(old) == 1, f"{NGINX_CONF.name}: expected one {old!r}"
    return text.replace(old, new)


def render_nginx_conf(upstreams: list[str], listen: str, work: Path) -> str:
    """deploy/nginx.conf with the replicas at `upstreams`, listening on `listen`, its pid
    file and temporary files under `work` (Debian's nginx keeps them in /var/lib/nginx)."""
    conf = NGINX_CONF.read_text()
    for name, address in zip(REPLICAS, upstreams, strict=True):
        conf = _replace_once(conf, f"server {name}:5000 ", f"server {address} ")
    conf = _replace_once(conf, "listen 80;", f"listen {listen};")
    conf = _replace_once(conf, "pid /tmp/nginx.pid;", f"pid {work / 'nginx.pid'};")
    temp = "".join(f"    {kind}_temp_path {work / kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return _replace_once(conf, "http {\n", "http {\n" + temp)


def nginx_binary() -> str | None:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    return found if Path(found).exists() else None


class Nginx:
    """nginx in the foreground, a child of the test run; its access and error log in `log`."""

    def __init__(self, conf: str, work: Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        (work / "nginx.conf").write_text(conf)
        self.log_path = work / "nginx.log"
        directives = "daemon off;"
        if os.geteuid() == 0:  # else the workers would switch to an unprivileged user
            directives += " user root;"
        command = [nginx_binary() or "nginx", "-p", str(work), "-c", str(work / "nginx.conf"),
                   "-e", str(self.log_path), "-g", directives]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            preexec_fn=die_with_parent)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_until_ready(self, url: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}:\n{self.log()}")
            try:
                httpx.get(url + "/health", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not answer within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
