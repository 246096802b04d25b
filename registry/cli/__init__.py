"""The `tollgate` command. Each module here adds one group of subcommands with
`add_commands(subparsers)`; every subcommand sets `handler(args, settings) -> exit code`."""

from __future__ import annotations

import argparse
import sys

from registry.cli import accounts, fixture, images, kube, serve, storage, tls
from registry.cli.common import settings_from_args
from registry.config import ConfigError

COMMAND_MODULES = [serve, accounts, kube, images, storage, fixture, tls]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tollgate", description="Tollgate container registry")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ConfigError as e:
        print(f"tollgate: {e}", file=sys.stderr)
        return 2
    return args.handler(args, settings)
