"""`tollgate storage cleanup`: abort abandoned multipart uploads in the object store.

A writer that dies (a killed process, a client that never comes back) leaves its S3 multipart
upload behind, and the store keeps billing for the parts. Run this from cron or a Kubernetes
CronJob, with the same configuration as `serve`; it is safe while servers run: uploads still
being written are left alone.
"""

from __future__ import annotations

import argparse
import re
from datetime import timedelta

from registry.cli.common import add_common_options, fail
from registry.config import Settings
from registry.storage import StorageUnavailable

AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_commands(commands: argparse._SubParsersAction) -> None:
    storage = commands.add_parser("storage", help="maintain the blob storage").add_subparsers(
        dest="action", required=True)
    cleanup = storage.add_parser(
        "cleanup", help="abort multipart uploads abandoned for longer than --older-than")
    add_common_options(cleanup)
    cleanup.add_argument("--storage", metavar="URL",
                         help="as for `tollgate serve`: s3://BUCKET/PREFIX?endpoint=...")
    cleanup.add_argument("--older-than", default="24h", type=parse_age,
                         help="idle time after which an upload counts as abandoned, e.g. 90m, "
                              "24h, 7d (default 24h)")
    cleanup.set_defaults(handler=run_cleanup)


def parse_age(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"invalid age {text!r}: use e.g. 3600s, 90m, 24h, 7d")
    return timedelta(seconds=int(match[1]) * AGE_UNITS[match[2] or "s"])


def run_cleanup(args: argparse.Namespace, settings: Settings) -> int:
    from registry.app import make_storage

    storage = make_storage(settings)
    try:
        aborted = storage.cleanup_multipart(args.older_than)
    except StorageUnavailable as e:
        return fail(str(e))
    print(f"aborted {aborted} multipart upload{'' if aborted == 1 else 's'} idle for more than "
          f"{args.older_than} ({storage.name} storage)")
    return 0
