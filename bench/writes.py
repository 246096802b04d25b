"""`python -m bench writes`: how fast this machine writes blob files, buffered vs direct I/O.

No registry involved: the kernel's side of a push, measured alone, to show why Tollgate's
filesystem driver writes blobs with O_DIRECT (registry/storage/appender.py). Each round writes
--files new files of --file-mib MiB in 1 MiB writes and fsyncs each, once through the page
cache and once with O_DIRECT (in alternating order), and reports MB/s and the writing
process's CPU seconds per GiB. The files stay until the end, as a registry keeps the blobs
pushed to it, so every buffered write needs pages the page cache has not held before (pages
freed by deleting files are reused at once, and hide the cost).
"""

from __future__ import annotations

import argparse
import mmap
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

MiB = 1024 * 1024


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write_files(directory: Path, files: int, file_mib: int, direct: bool) -> tuple[float, float]:
    """(MB/s, CPU seconds per GiB) for writing and fsyncing `files` new files in `directory`."""
    buffer = mmap.mmap(-1, MiB)  # page-aligned, as O_DIRECT needs
    buffer.write(os.urandom(MiB))
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_DIRECT if direct else 0)
    started, cpu = time.perf_counter(), _cpu()
    for index in range(files):
        descriptor = os.open(directory / f"blob-{index}", flags, 0o644)
        try:
            for _ in range(file_mib):
                os.write(descriptor, buffer)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    gib = files * file_mib / 1024
    return gib * 1024 * MiB / seconds / 1e6, cpu / gib


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench writes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--file-mib", type=int, default=64)
    parser.add_argument("--dir", help="where to write (default: a temporary directory)")
    args = parser.parse_args(argv)
    results: dict[str, list[tuple[float, float]]] = {"buffered": [], "direct": []}
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="tollgate-writes-") as directory:
        for round_number in range(1, args.rounds + 1):
            modes = ["buffered", "direct"] if round_number % 2 else ["direct", "buffered"]
            for mode in modes:
                into = Path(directory) / f"{round_number}-{mode}"
                into.mkdir()
                speed, cpu = write_files(into, args.files, args.file_mib,
                                         direct=mode == "direct")
                results[mode].append((speed, cpu))
                print(f"round {round_number} {mode:>8}: {speed:8.0f} MB/s "
                      f"{cpu:6.2f} cpu-s/GiB", flush=True)
    print(f"\nmedian of {args.rounds} rounds, {args.files} x {args.file_mib} MiB files each:")
    for mode, samples in results.items():
        print(f"  {mode:>8}: {statistics.median(s[0] for s in samples):8.0f} MB/s "
              f"{statistics.median(s[1] for s in samples):6.2f} cpu-s/GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
