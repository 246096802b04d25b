"""A throwaway PostgreSQL for the replica benchmark: `initdb` into a directory, the postmaster
on a free loopback port, durability off (the data is thrown away). As root it runs as the
`postgres` user (or `nobody`), since PostgreSQL refuses to run as root."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bench.servers import free_port


def bin_dir() -> Path | None:
    """The directory of initdb and postgres: on PATH, else Debian's newest version."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name)
                   if Path(p).parent.parent.name.isdigit() else 0)
    return Path(found[-1]).parent if found else None


class Postgres:
    def __init__(self) -> None:
        binaries = bin_dir()
        if binaries is None:
            raise SystemExit("PostgreSQL is not installed: apt-get install postgresql")
        # A directory of its own, directly under /tmp: the server's user must reach it.
        self.work = work = Path(tempfile.mkdtemp(prefix="tollgate-bench-pg-"))
        self.port = free_port()
        user = None
        if os.geteuid() == 0:
            user = next(name for name in ("postgres", "nobody") if _user_exists(name))
            entry = pwd.getpwnam(user)
            os.chown(work, entry.pw_uid, entry.pw_gid)
        done = subprocess.run([str(binaries / "initdb"), "-D", str(work / "data"), "-U",
                               "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"],
                              user=user, capture_output=True, text=True, timeout=120, cwd=work)
        if done.returncode != 0:
            raise SystemExit(f"initdb failed: {done.stderr}")
        self.log = work / "postgres.log"
        self.process = subprocess.Popen(
            [str(binaries / "postgres"), "-D", str(work / "data"), "-h", "127.0.0.1",
             "-p", str(self.port), "-k", str(work), "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200"],
            user=user, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, cwd=work,
            start_new_session=True)
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"postgres exited:\n{self.log.read_text()[-2000:]}")
            try:
                with psycopg.connect(self.url.replace("+psycopg", ""), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"postgres did not answer within {timeout:g}s") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: ends open sessions
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.work, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
