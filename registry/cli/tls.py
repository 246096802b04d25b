"""`tollgate tls init`: a private CA and a server certificate signed by it, and how to make
docker, containerd, podman, skopeo and Kubernetes nodes trust it."""

from __future__ import annotations

import argparse
from pathlib import Path

from registry.cli.common import fail
from registry.config import Settings


def add_commands(commands: argparse._SubParsersAction) -> None:
    tls = commands.add_parser("tls", help="certificates for HTTPS").add_subparsers(
        dest="action", required=True)
    init = tls.add_parser(
        "init", help="make a private CA (ca.crt, ca.key) and a server certificate "
                     "(server.crt, server.key) for the host names; an existing CA in --out "
                     "is kept and signs the new certificate")
    init.add_argument("--hostname", action="append", required=True, metavar="NAME",
                      help="a DNS name or IP address clients use to reach the registry "
                           "(repeat for several; the first is the certificate's CN)")
    init.add_argument("--out", required=True, metavar="DIR", help="where to write the files")
    init.add_argument("--days", type=int, default=None,
                      help="validity of the server certificate (default 825)")
    init.add_argument("--config", help="YAML configuration file: its port goes into the "
                                       "printed instructions")
    init.add_argument("--port", help="the port clients use, for the printed instructions "
                                     "(default: the configured port, 5000)")
    init.set_defaults(handler=run_init)


def run_init(args: argparse.Namespace, settings: Settings) -> int:
    from registry import tls

    if args.days is not None and args.days < 1:
        return fail("--days: must be at least 1", 2)
    try:
        result = tls.init(Path(args.out), args.hostname, days=args.days or tls.CERT_DAYS)
    except ValueError as e:
        return fail(f"tls init: {e}", 2)
    except OSError as e:
        return fail(f"tls init: {e.filename or args.out}: {e.strerror or e}")
    print(tls.trust_instructions(result, args.hostname, settings.port), end="")
    return 0
