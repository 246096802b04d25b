"""`python -m bench`: Tollgate and CNCF distribution side by side, results in bench/RESULTS.md.

Starts both registries on free loopback ports in a temporary directory (Tollgate from this
checkout: `tollgate serve`, filesystem storage, SQLite, access log off; distribution: Debian's
`docker-registry`, filesystem storage, access log off), runs bench/regbench.py against them
round by round with distribution as the baseline, stops them and writes the report.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import regbench

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
DISTRIBUTION = "/usr/bin/docker-registry"

# The targets of issue 5, as ratios Tollgate / distribution: (at least, at most).
TARGETS: list[tuple[str, float | None, float | None]] = [
    ("pull.manifest_by_", 2.0, None),
    ("pull.blob_head", 2.0, None),
    ("pull.tags_list", 2.0, None),
    ("pull.catalog", 2.0, None),
    ("latency.", None, None),  # p99: no worse, below
    ("push.", 1.5, None),
    ("pull.blob_", 1.0, None),
    ("cpu.pull.blob_", None, 1.0),
    ("memory.peak_rss_sampled", None, 1.5),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args[0]} exited; see {log}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/v2/", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout:g}s; see {log}")


def start_distribution(work: Path) -> tuple[subprocess.Popen, str]:
    """Adapted from shared/tools/bench/distribution.sh: the same configuration (filesystem,
    in-memory blob descriptor cache, access log off), on a free port."""
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
    return process, url


def start_tollgate(work: Path, workers: int,
                   server_args: list[str]) -> tuple[subprocess.Popen, str]:
    """`tollgate serve` from this checkout (PYTHONPATH wins over an installed copy)."""
    port = free_port()
    work.mkdir(parents=True)
    config = work / "tollgate.yaml"
    config.write_text(f"data_dir: {work / 'data'}\nlog: {{access: false, level: warning}}\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(PROJECT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    for key in [k for k in env if k.startswith("TOLLGATE_")]:
        del env[key]
    log = work / "tollgate.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "registry", "serve", "--config", str(config),
         "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), *server_args],
        cwd=work, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, process, log)
    return process, url


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory_kib = next(int(line.split()[1]) for line in
                          Path("/proc/meminfo").read_text().splitlines()
                          if line.startswith("MemTotal:"))
    except (OSError, StopIteration):
        memory_kib = 0
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": memory_kib / 1024 / 1024,
            "kernel": platform.release(), "python": platform.python_version(),
            "distribution": _distribution_version()}


def _distribution_version() -> str:
    try:
        out = subprocess.run([DISTRIBUTION, "--version"], capture_output=True, text=True,
                             timeout=10)
        return (out.stdout or out.stderr).strip()
    except OSError:
        return "unknown"


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PROJECT, capture_output=True,
                              text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "registry", "pyproject.toml")
    return commit + (" + uncommitted changes in registry/" if dirty else "")


def target_for(metric: str) -> tuple[float | None, float | None]:
    if metric.startswith("latency.") and metric.endswith(".p99"):
        return None, 1.0
    for prefix, at_least, at_most in TARGETS:
        if metric.startswith(prefix):
            return at_least, at_most
    return None, None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(doc: dict, before: dict | None) -> str:
    summary = doc["summary"]
    meta = doc["bench"]
    host = meta["machine"]
    order = ["push", "pull", "latency", "memory", "cpu"]
    metrics = sorted(summary, key=lambda m: (order.index(m.split(".")[0])
                                             if m.split(".")[0] in order else 9, m))
    lines = [
        "# Tollgate vs CNCF distribution",
        "",
        "Written by `python -m bench` (bench/README.md explains every metric). Ratio = "
        "Tollgate / distribution, the median over rounds of the same-round ratio; for "
        "`latency`, `memory` and `cpu` rows lower is better, so a ratio below 1 means "
        "Tollgate wins.",
        "",
        f"- date: {meta['date']}",
        f"- commit: {meta['commit']}",
        f"- machine: {host['nproc']} CPUs ({host['cpu']}), {host['memory_gib']:.1f} GiB memory, "
        f"Linux {host['kernel']}, Python {host['python']}",
        f"- distribution: {host['distribution']}",
        f"- Tollgate: {meta['workers']} worker(s) {' '.join(meta['server_args'])}".rstrip(),
        f"- rounds: {meta['rounds']}, {meta['duration']:g} s per sub-benchmark; "
        f"load average before {meta['load_before']}, after {meta['load_after']}",
        f"- noise: {meta['noise']}",
    ]
    if before:
        lines.append(f"- before: ratio column from {before['bench']['date']}, commit "
                     f"{before['bench']['commit']}")
    lines += ["", "| metric | unit | distribution | Tollgate | ratio |"
              + (" ratio before |" if before else "") + " target | met |",
              "|---|---|---:|---:|---:|" + ("---:|" if before else "") + "---|---|"]
    for metric in metrics:
        row = summary[metric]
        dist = row["registries"].get("distribution")
        toll = row["registries"].get("tollgate")
        ratio = toll.get("paired_ratio_median") if toll else None
        if ratio is None and toll:
            ratio = toll.get("ratio_to_first")
        at_least, at_most = target_for(metric)
        target = (f">= {at_least:g}" if at_least else f"<= {at_most:g}" if at_most else "")
        met = ""
        if ratio is not None and target:
            met = "yes" if (at_least and ratio >= at_least) or (at_most and ratio <= at_most) \
                else "no"
        cells = [f"`{metric}`", row["unit"], _fmt(dist and dist["median"]),
                 _fmt(toll and toll["median"]), _fmt(ratio, 3)]
        if before:
            old = before["summary"].get(metric, {}).get("registries", {}).get("tollgate")
            cells.append(_fmt(old and (old.get("paired_ratio_median")
                                       or old.get("ratio_to_first")), 3))
        lines.append("| " + " | ".join([*cells, target, met]) + " |")
    if doc.get("errors"):
        lines += ["", "Errors:", ""]
        lines += [f"- round {e['round']} {e['registry']} {e['metric']}: {e['error'][:200]}"
                  for e in doc["errors"]]
    return "\n".join(lines) + "\n"


def noise_note(doc: dict) -> str:
    notes = []
    for name in ("distribution", "tollgate"):
        kept = [r for r in doc["raw"] if r["registry"] == name and not r.get("discarded")
                and "foreign_pct" in r]
        if kept:
            foreign = sorted(r["foreign_pct"] for r in kept)
            notes.append(f"other processes used median {foreign[len(foreign) // 2]:.0f}% "
                         f"(max {foreign[-1]:.0f}%) of the CPUs while {name} was measured")
    return "; ".join(notes) or "not measured"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0,
                        help="seconds per timed sub-benchmark (default 3)")
    parser.add_argument("--workers", type=int, default=1, help="Tollgate worker processes")
    parser.add_argument("--only", help="regbench --only: metric name prefixes/substrings")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"),
                        help="the Markdown report (default bench/RESULTS.md)")
    parser.add_argument("--json", default=str(HERE / "results.json"),
                        help="the full results (default bench/results.json)")
    parser.add_argument("--compare", metavar="JSON",
                        help="an earlier results.json: its ratios become a 'before' column")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra argument for `tollgate serve` (repeatable)")
    parser.add_argument("regbench_args", nargs=argparse.REMAINDER,
                        help="after --: more bench/regbench.py options (see its --help)")
    args = parser.parse_args(argv)
    extra = [a for a in args.regbench_args if a != "--"]
    for tool in ("wrk", "hey"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: apt-get install wrk hey")
    before = json.loads(Path(args.compare).read_text()) if args.compare else None

    work = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    processes: list[subprocess.Popen] = []
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        distribution, distribution_url = start_distribution(work / "distribution")
        processes.append(distribution)
        tollgate, tollgate_url = start_tollgate(work / "tollgate", args.workers, args.server_arg)
        processes.append(tollgate)
        results = work / "regbench.json"
        regbench_argv = [
            "--registry", f"distribution={distribution_url}", "--pid",
            f"distribution={distribution.pid}",
            "--registry", f"tollgate={tollgate_url}", "--pid", f"tollgate={tollgate.pid}",
            "--rounds", str(args.rounds), "--duration", str(args.duration),
            "--json", str(results), *(["--only", args.only] if args.only else []), *extra]
        status = regbench.main(regbench_argv)
        doc = json.loads(results.read_text())
    finally:
        for process in processes:
            stop(process)
    doc["bench"] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(), "machine": machine(), "rounds": args.rounds,
        "duration": args.duration, "workers": args.workers, "server_args": args.server_arg,
        "load_before": load_before,
        "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    doc["bench"]["noise"] = noise_note(doc)
    Path(args.json).write_text(json.dumps(doc, indent=1))
    Path(args.output).write_text(render(doc, before))
    print(f"wrote {args.output} and {args.json}", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
