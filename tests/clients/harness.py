"""Running real container clients hermetically, and private dockerd / containerd daemons.

Every client runs with its own HOME, XDG directories, TMPDIR, registries.conf (the registry
under test marked insecure, no search registries) and an empty DOCKER_CONFIG, so ambient
credentials or configuration of the machine never leak into a test. All state lives in one
short directory under /tmp (podman wants short run roots; unix sockets must stay under 108
bytes). The few global paths the tools insist on creating as root (blob-info cache, lock files)
are removed afterwards if they did not exist before.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from .layout import MANIFEST_TYPES, Blob, ImageSet

BASE_DIR = "/tmp"          # not $TMPDIR: podman's run root and unix sockets need short paths
BASE_PREFIX = "tgclients-"
SIDE_RECORD = "side-paths-before.json"
CALL_TIMEOUT = 120

# tool -> Debian package providing it
PACKAGES = {
    "skopeo": "skopeo",
    "podman": "podman",
    "buildah": "buildah",
    "docker": "docker.io",
    "dockerd": "docker.io",
    "containerd": "containerd",
    "ctr": "containerd",
}

# Global paths the tools create as root even when pointed elsewhere: blob-info cache of
# containers/image, netavark's run dir, dockerd's plugin dir and trust key.
SIDE_PATHS = ("/var/lib/containers", "/run/containers", "/etc/cni/net.d/cni.lock",
              "/etc/containers/networks", "/run/docker", "/etc/docker/key.json")

STRIP_ENV = ("REGISTRY_AUTH_FILE", "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CERT_PATH",
             "DOCKER_TLS_VERIFY", "CONTAINERS_STORAGE_CONF", "CONTAINERS_CONF",
             "CONTAINERS_REGISTRIES_CONF", "CONTAINERD_ADDRESS", "CONTAINERD_NAMESPACE",
             "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy",
             "no_proxy", "NO_PROXY", "KUBECONFIG")


def client_path() -> str:
    """PATH for the clients: the caller's, plus the sbin dirs where dockerd and runc live."""
    return os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"


def require(*tools: str) -> None:
    """Skip the calling test unless every tool is on PATH."""
    for tool in tools:
        if shutil.which(tool, path=client_path()) is None:
            pytest.skip(f"{tool} not installed: apt-get install {PACKAGES.get(tool, tool)}")


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"{what} needs root (private daemons / rootful storage); run the suite as root")


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def describe(self) -> str:
        tail = "\n".join(self.output.strip().splitlines()[-15:])
        return f"$ {' '.join(self.args)}\n(exit {self.returncode})\n{tail}"


class CommandFailed(AssertionError):
    pass


def run(args: list[str], env: dict[str, str], *, check: bool = True, cwd: Path | None = None,
        timeout: float = CALL_TIMEOUT, input: str | None = None) -> Result:
    """Run a client command; on failure (check=True) raise with the client's own words.

    `input` is written to the command's stdin (e.g. `--password-stdin`); otherwise stdin is
    /dev/null, so that no client ever waits for a prompt.
    """
    stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    try:
        proc = subprocess.run([str(a) for a in args], env=env, cwd=cwd, capture_output=True,
                              text=True, timeout=timeout, **stdin)
    except subprocess.TimeoutExpired as e:
        raise CommandFailed(f"$ {' '.join(map(str, args))}\ntimed out after {timeout} s\n"
                            f"{e.stdout or ''}{e.stderr or ''}") from None
    res = Result([str(a) for a in args], proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise CommandFailed(res.describe())
    return res


def run_fails(args: list[str], env: dict[str, str], **kw: object) -> Result:
    res = run(args, env, check=False, **kw)
    assert res.returncode != 0, f"expected failure, but it succeeded:\n{res.describe()}"
    return res


# ------------------------------------------------------------------ hermetic environment

@dataclass
class ClientEnv:
    base: Path
    registry_url: str
    registry_host: str
    env: dict[str, str]
    _counter: int = 0

    def new_dir(self, prefix: str) -> Path:
        """A fresh, short directory under the session's base."""
        self._counter += 1
        d = self.base / f"{prefix}{self._counter}"
        d.mkdir(parents=True)
        return d


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    st = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return st.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def stop_pid(pid: int, timeout: float = 20) -> None:
    """TERM, wait, then KILL one process (only ever a pid we started or that names our dir)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)


DAEMON_NAMES = ("dockerd", "containerd", "docker-proxy")


def _daemon_pids_under(base: Path) -> list[int]:
    """Daemons (dockerd, containerd, shims) whose command line names a path under `base`."""
    needle = str(base) + "/"
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        cmd = _cmdline(int(p.name))
        if not cmd:
            continue
        name = os.path.basename(cmd[0])
        if (name in DAEMON_NAMES or name.startswith("containerd-shim")) and \
                any(needle in a or a == str(base) for a in cmd):
            pids.append(int(p.name))
    return pids


def _mounts_under(base: Path) -> list[str]:
    prefix = str(base) + "/"
    out = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp.startswith(prefix):
                out.append(mp)
    return sorted(out, reverse=True)


def teardown_base(base: Path) -> None:
    """Stop every daemon of ours under `base`, unmount what they left, remove the dir."""
    for pid in _daemon_pids_under(base):
        stop_pid(pid)
    for mp in _mounts_under(base):
        subprocess.run(["umount", "-l", mp], capture_output=True, check=False)
    for _ in range(3):
        shutil.rmtree(base, ignore_errors=True)
        if not base.exists():
            return
        time.sleep(0.5)


def cleanup_stale_bases() -> None:
    """Remove work dirs (daemons, mounts, side paths) of earlier sessions that died."""
    for d in Path(BASE_DIR).glob(BASE_PREFIX + "*"):
        try:
            owner = int((d / "owner.pid").read_text())
        except (OSError, ValueError):
            owner = 0
        if owner and owner != os.getpid() and _alive(owner) and \
                any("pytest" in a for a in _cmdline(owner)):
            continue
        try:
            before = set(json.loads((d / SIDE_RECORD).read_text()))
        except (OSError, ValueError):
            before = None
        teardown_base(d)
        if before is not None:
            _remove_side_paths(before)


def make_client_env(base: Path, registry_url: str, registry_host: str,
                    insecure: bool = True) -> ClientEnv:
    """`insecure=False`: the registry is not marked insecure, so clients speak HTTPS to it
    and check its certificate (for the TLS tests)."""
    for sub in ("home", "xdg", "cfg", "data", "tmp", "dockercfg"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "xdg").chmod(0o700)
    (base / "registries.conf").write_text(
        'unqualified-search-registries = []\n\n'
        f'[[registry]]\nlocation = "{registry_host}"\n'
        f'insecure = {"true" if insecure else "false"}\n')
    # containers/image reads $HOME/.config/containers/policy.json before /etc/containers
    policy = base / "home" / ".config" / "containers" / "policy.json"
    policy.parent.mkdir(parents=True, exist_ok=True)
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    (base / "containers.conf").write_text(
        '[engine]\nevents_logger = "file"\ncgroup_manager = "cgroupfs"\n')
    (base / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\nrunroot = "{base}/st-run"\ngraphroot = "{base}/st-root"\n')
    (base / "dockercfg" / "config.json").write_text("{}")
    env = {k: v for k, v in os.environ.items() if k not in STRIP_ENV}
    env.update(
        HOME=str(base / "home"), XDG_RUNTIME_DIR=str(base / "xdg"),
        XDG_CONFIG_HOME=str(base / "cfg"), XDG_DATA_HOME=str(base / "data"),
        TMPDIR=str(base / "tmp"), LC_ALL="C",
        CONTAINERS_REGISTRIES_CONF=str(base / "registries.conf"),
        CONTAINERS_CONF=str(base / "containers.conf"),
        CONTAINERS_STORAGE_CONF=str(base / "storage.conf"),
        DOCKER_CONFIG=str(base / "dockercfg"),
        KUBECONFIG=str(base / "nokubeconfig"),
    )
    env["PATH"] = client_path()
    return ClientEnv(base, registry_url, registry_host, env)


def _remove_side_paths(before: set[str]) -> None:
    for p in SIDE_PATHS:
        if p in before or not os.path.lexists(p):
            continue
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(p)


@contextlib.contextmanager
def side_path_guard(base: Path) -> Iterator[None]:
    """Remove the global side paths the tools created during the block.

    What existed before is also recorded under `base`, so that a later session can clean up
    after this one if it dies (cleanup_stale_bases).
    """
    before = {p for p in SIDE_PATHS if os.path.lexists(p)}
    (base / SIDE_RECORD).write_text(json.dumps(sorted(before)))
    try:
        yield
    finally:
        _remove_side_paths(before)


# ------------------------------------------------------------------ containers-storage tools

class StorageTool:
    """podman or buildah with a private vfs storage (root, runroot, tmp) under `d`."""

    def __init__(self, tool: str, d: Path, cenv: ClientEnv) -> None:
        self.tool, self.dir, self.cenv = tool, d, cenv
        if tool == "podman":
            self.base_cmd = [
                "podman", "--root", d / "root", "--runroot", d / "run",
                "--storage-driver", "vfs", "--tmpdir", d / "tmp", "--events-backend", "file",
                "--cgroup-manager", "cgroupfs", "--network-config-dir", d / "net",
            ]
        else:
            self.base_cmd = ["buildah", "--root", d / "root", "--runroot", d / "run",
                             "--storage-driver", "vfs"]

    def __call__(self, *args: object, check: bool = True, cwd: Path | None = None) -> Result:
        return run([*self.base_cmd, *args], self.cenv.env, check=check, cwd=cwd)

    def pull(self, ref: str, *args: object, check: bool = True) -> Result:
        extra = ["--policy", "always"] if self.tool == "buildah" else []
        return self("pull", "-q", "--tls-verify=false", *extra, *args, ref, check=check)

    def image_id(self, ref: str) -> str:
        if self.tool == "podman":
            out = self("image", "inspect", "--format", "{{.Id}}", ref).stdout
        else:
            out = self("inspect", "--type", "image", "--format", "{{.FromImageID}}", ref).stdout
        return "sha256:" + out.strip()

    def import_layout(self, layout: Path, ref: str, tag: str) -> str:
        """Pull `oci:<layout>:<ref>` into local storage and tag it `tag`; returns the id.

        The path is given relative on purpose: these tools name the image after the path.
        """
        res = self("pull", "-q", f"oci:{layout.name}:{ref}", cwd=layout.parent)
        image_id = res.stdout.strip().splitlines()[-1]
        self("tag", image_id, tag)
        return "sha256:" + image_id


# ------------------------------------------------------------------ private daemons

@dataclass
class Daemon:
    name: str
    dir: Path
    proc: subprocess.Popen | None = None
    log: Path | None = None
    extra: dict = field(default_factory=dict)

    def log_tail(self) -> str:
        if self.log and self.log.exists():
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        return ""

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc.pid, timeout=30)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        for pid in _daemon_pids_under(self.dir):
            stop_pid(pid)
        for mp in _mounts_under(self.dir):
            subprocess.run(["umount", "-l", mp], capture_output=True, check=False)


def _wait_ready(daemon: Daemon, probe: list[str], env: dict[str, str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.proc is not None and daemon.proc.poll() is not None:
            break
        r = run(probe, env, check=False, timeout=10)
        if r.returncode == 0:
            return
        time.sleep(0.3)
    tail = daemon.log_tail()
    daemon.stop()
    raise RuntimeError(f"{daemon.name} did not start:\n{tail}")


def start_dockerd(cenv: ClientEnv) -> Daemon:
    d = cenv.new_dir("docker")
    (d / "daemon.json").write_text("{}")
    sock = f"unix://{d}/docker.sock"
    daemon = Daemon("dockerd", d, log=d / "dockerd.log", extra={"host": sock})
    cmd = ["dockerd", "--config-file", d / "daemon.json", "--data-root", d / "data",
           "--exec-root", d / "exec", "--pidfile", d / "dockerd.pid", "-H", sock,
           "--storage-driver", "vfs", "--bridge", "none", "--iptables=false",
           "--ip6tables=false", "--ip-masq=false", "--insecure-registry", cenv.registry_host]
    with open(daemon.log, "wb") as log:
        daemon.proc = subprocess.Popen([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=cenv.env,
                                       start_new_session=True)
    _wait_ready(daemon, ["docker", "-H", sock, "version", "--format", "{{.Server.Version}}"],
                cenv.env, 60)
    return daemon


def start_containerd(cenv: ClientEnv) -> Daemon:
    d = cenv.new_dir("ctrd")
    sock = d / "containerd.sock"
    (d / "config.toml").write_text(f"""version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
""")
    daemon = Daemon("containerd", d, log=d / "containerd.log", extra={"address": str(sock)})
    with open(daemon.log, "wb") as log:
        daemon.proc = subprocess.Popen(["containerd", "--config", str(d / "config.toml")],
                                       stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=cenv.env,
                                       start_new_session=True)
    _wait_ready(daemon, ["ctr", "-a", str(sock), "version"], cenv.env, 30)
    return daemon


# ------------------------------------------------------------------ registry over HTTP

ACCEPT_ALL = ", ".join(MANIFEST_TYPES)


@dataclass
class Manifest:
    data: bytes
    media_type: str
    digest: str | None

    def json(self) -> dict:
        return json.loads(self.data)


def get_manifest(registry_url: str, repo: str, ref: str,
                 auth: httpx.Auth | None = None) -> Manifest | None:
    """The manifest exactly as stored (all manifest types accepted), or None if 404."""
    r = httpx.get(f"{registry_url}/v2/{repo}/manifests/{ref}",
                  headers={"Accept": ACCEPT_ALL}, timeout=30, auth=auth)
    if r.status_code == 404:
        return None
    r.raise_for_status()
    return Manifest(r.content, r.headers.get("content-type", "").split(";")[0],
                    r.headers.get("docker-content-digest"))


def blob_exists(registry_url: str, repo: str, digest: str) -> bool:
    return httpx.head(f"{registry_url}/v2/{repo}/blobs/{digest}", timeout=30).status_code == 200


def list_tags(registry_url: str, repo: str) -> list[str]:
    r = httpx.get(f"{registry_url}/v2/{repo}/tags/list", timeout=30)
    r.raise_for_status()
    return r.json().get("tags") or []


def _push_blob(c: httpx.Client, repo: str, blob: Blob) -> None:
    if c.head(f"/v2/{repo}/blobs/{blob.digest}").status_code == 200:
        return
    r = c.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, f"POST upload: {r.status_code} {r.text}"
    loc = r.headers["location"]
    sep = "&" if "?" in loc else "?"
    r = c.put(f"{loc}{sep}digest={blob.digest}", content=blob.data,
              headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, f"PUT upload {blob.digest}: {r.status_code} {r.text}"


def push_manifest(c: httpx.Client, repo: str, ref: str, m: Blob) -> None:
    r = c.put(f"/v2/{repo}/manifests/{ref}", content=m.data,
              headers={"Content-Type": m.media_type})
    assert r.status_code == 201, f"PUT manifest {repo}:{ref}: {r.status_code} {r.text}"


def seed_images(registry_url: str, images: ImageSet, single: str, multi: str,
                auth: httpx.Auth | None = None) -> None:
    """Push the test images over plain HTTP (independent of any client):

    single:v1 (OCI amd64), single:arm64 (OCI arm64), single:v2s2 (Docker amd64),
    multi:v1 (OCI index of both), multi:v2s2 (Docker manifest list of both).
    `auth` (e.g. RegistryAuth) for a registry that requires it.
    """
    with httpx.Client(base_url=registry_url, timeout=60, auth=auth) as c:
        for repo in (single, multi):
            for im in images.images:
                _push_blob(c, repo, im.layer)
                _push_blob(c, repo, im.config)
        push_manifest(c, single, "v1", images.amd64.manifest)
        push_manifest(c, single, "arm64", images.arm64.manifest)
        push_manifest(c, single, "v2s2", images.amd64.docker_manifest)
        for im in images.images:
            push_manifest(c, multi, im.manifest.digest, im.manifest)
            push_manifest(c, multi, im.docker_manifest.digest, im.docker_manifest)
        push_manifest(c, multi, "v1", images.index)
        push_manifest(c, multi, "v2s2", images.docker_list)


def digest_in_output(text: str) -> str | None:
    m = re.search(r"sha256:[0-9a-f]{64}", text)
    return m.group(0) if m else None


def index_platforms(m: Manifest) -> list[str]:
    out = []
    for d in m.json().get("manifests", []):
        p = d.get("platform") or {}
        out.append("/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant"))
                            if x))
    return sorted(out)


# ------------------------------------------------------------------ registries that require auth

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…"` -> ("bearer", {"realm": …, "service": …})."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest))


class RegistryAuth(httpx.Auth):
    """HTTP Basic or Docker token auth, whichever the registry's 401 challenge asks for.

    Every request goes out bare first; on a 401 the challenge decides: Basic credentials, or a
    token fetched from the Bearer realm (GET with Basic auth, the scope of the challenge) and
    cached per scope. Independent of every client under test.
    """

    requires_request_body = True

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        self._tokens: dict[tuple[str, str, str], str] = {}

    def auth_flow(self, request: httpx.Request):
        response = yield request
        if response.status_code != 401:
            return
        scheme, params = parse_challenge(response.headers.get("www-authenticate", ""))
        if scheme == "basic":
            request.headers["Authorization"] = httpx.BasicAuth(
                self.username, self.password)._auth_header
        elif scheme == "bearer":
            key = (params.get("realm", ""), params.get("service", ""), params.get("scope", ""))
            if key not in self._tokens:
                query = {k: v for k, v in (("service", key[1]), ("scope", key[2])) if v}
                r = httpx.get(key[0], params=query, auth=(self.username, self.password),
                              timeout=30)
                r.raise_for_status()
                body = r.json()
                self._tokens[key] = body.get("token") or body["access_token"]
            request.headers["Authorization"] = f"Bearer {self._tokens[key]}"
        else:
            return
        yield request


def dockerconfigjson(host: str, username: str, password: str) -> dict:
    """The `.dockerconfigjson` of a Kubernetes imagePullSecret, as
    `kubectl create secret docker-registry --docker-server=HOST …` writes it. The same JSON is a
    docker `config.json` and a containers-auth.json."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"auths": {host: {"username": username, "password": password, "auth": auth}}}


def tollgate_admin(data_dir: Path, *args: str, input: str | None = None) -> Result:
    """A Tollgate management command (`user add …`, `grant add …`) on a server's data dir."""
    return run([sys.executable, "-m", "registry", *args, "--data-dir", str(data_dir)],
               {**os.environ}, input=input, timeout=60)
