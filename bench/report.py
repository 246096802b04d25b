"""Markdown reports of a regbench run: where and when it ran, and a table of medians with
same-run paired ratios between any two of the registries measured."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.servers import DISTRIBUTION, PROJECT

Target = tuple[float | None, float | None]  # (at least, at most), either may be None
ORDER = ["push", "pull", "latency", "memory", "cpu"]


def no_target(metric: str) -> Target:
    return None, None


@dataclass
class Ratio:
    """A ratio column: `numerator / denominator`, paired by round, checked against `target`."""

    label: str
    numerator: str
    denominator: str
    target: Callable[[str], Target] = no_target


def paired_ratio(doc: dict, metric: str, numerator: str, denominator: str) -> float | None:
    """The median over rounds of the same-round ratio (rounds measure both back to back)."""
    rounds = doc.get("by_round", {}).get(metric, {})
    top, bottom = rounds.get(numerator, {}), rounds.get(denominator, {})
    ratios = [top[r] / bottom[r] for r in top if bottom.get(r)]
    return statistics.median(ratios) if ratios else None


def median(doc: dict, metric: str, registry: str) -> float | None:
    row = doc["summary"].get(metric, {}).get("registries", {}).get(registry)
    return row["median"] if row else None


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def verdict(ratio: float | None, target: Target) -> tuple[str, str]:
    at_least, at_most = target
    text = f">= {at_least:g}" if at_least else f"<= {at_most:g}" if at_most else ""
    if ratio is None or not text:
        return text, ""
    met = (at_least is not None and ratio >= at_least) or (at_most is not None
                                                           and ratio <= at_most)
    return text, "yes" if met else "no"


def table(doc: dict, registries: list[str], ratios: list[Ratio],
          before: dict | None = None) -> list[str]:
    """Medians per registry, then each ratio with its target and whether it is met. `before`
    (an earlier run's JSON) adds the first ratio as it was then."""
    metrics = sorted(doc["summary"], key=lambda m: (
        ORDER.index(m.split(".")[0]) if m.split(".")[0] in ORDER else 9, m))
    head = ["metric", "unit", *registries]
    align = ["---", "---", *["---:"] * len(registries)]
    for i, ratio in enumerate(ratios):
        head += [ratio.label] + (["before"] if before and i == 0 else [])
        align += ["---:"] + (["---:"] if before and i == 0 else [])
        if any(ratio.target(m) != (None, None) for m in metrics):
            head += ["target", "met"]
            align += ["---", "---"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for metric in metrics:
        cells = [f"`{metric}`", doc["summary"][metric]["unit"]]
        cells += [fmt(median(doc, metric, name)) for name in registries]
        for i, ratio in enumerate(ratios):
            value = paired_ratio(doc, metric, ratio.numerator, ratio.denominator)
            cells.append(fmt(value, 3))
            if before and i == 0:
                cells.append(fmt(_before_ratio(before, metric, ratio), 3))
            if any(ratio.target(m) != (None, None) for m in metrics):
                cells += list(verdict(value, ratio.target(metric)))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _before_ratio(before: dict, metric: str, ratio: Ratio) -> float | None:
    if "by_round" in before:
        return paired_ratio(before, metric, ratio.numerator, ratio.denominator)
    # results.json from before by_round existed: the ratio to its first registry
    row = before["summary"].get(metric, {}).get("registries", {}).get(ratio.numerator)
    return row and (row.get("paired_ratio_median") or row.get("ratio_to_first"))


def errors(doc: dict) -> list[str]:
    if not doc.get("errors"):
        return []
    return ["", "Errors:", ""] + [
        f"- round {e['round']} {e['registry']} {e['metric']}: {e['error'][:200]}"
        for e in doc["errors"]]


# -- where and when ------------------------------------------------------------------------

def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    memory_kib = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory_kib = next(int(line.split()[1]) for line in
                          Path("/proc/meminfo").read_text().splitlines()
                          if line.startswith("MemTotal:"))
    except (OSError, StopIteration):
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": memory_kib / 1024 / 1024,
            "kernel": platform.release(), "python": platform.python_version(),
            "distribution": distribution_version()}


def machine_line(host: dict) -> str:
    return (f"{host['nproc']} CPUs ({host['cpu']}), {host['memory_gib']:.1f} GiB memory, "
            f"Linux {host['kernel']}, Python {host['python']}")


def distribution_version() -> str:
    try:
        out = subprocess.run([DISTRIBUTION, "--version"], capture_output=True, text=True,
                             timeout=10)
        return (out.stdout or out.stderr).strip()
    except OSError:
        return "not installed"


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PROJECT, capture_output=True,
                              text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "registry", "pyproject.toml")
    return commit + (" + uncommitted changes in registry/" if dirty else "")


def noise_note(doc: dict) -> str:
    """How much CPU other processes used while each registry was measured (the machine is
    shared; regbench re-measures samples above its threshold)."""
    notes = []
    for name in [r["name"] for r in doc.get("registries", [])]:
        kept = sorted(r["foreign_pct"] for r in doc["raw"] if r["registry"] == name
                      and not r.get("discarded") and "foreign_pct" in r)
        if kept:
            notes.append(f"other processes used median {kept[len(kept) // 2]:.0f}% "
                         f"(max {kept[-1]:.0f}%) of the CPUs while {name} was measured")
    return "; ".join(notes) or "not measured"
