"""`tollgate secret dockerconfigjson` and `tollgate creds match`: pull secrets for Kubernetes
users (the logic is in registry.kubernetes)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from registry import kubernetes
from registry.cli.common import add_common_options, fail
from registry.config import Settings


def add_commands(commands: argparse._SubParsersAction) -> None:
    secret = commands.add_parser("secret", help="print pull credentials for other tools")
    secret_commands = secret.add_subparsers(dest="secret_command", required=True)
    dcj = secret_commands.add_parser(
        "dockerconfigjson",
        help="print a .dockerconfigjson payload or a kubernetes.io/dockerconfigjson Secret",
        description="Print the .dockerconfigjson payload for a user, byte for byte what "
                    "`kubectl create secret docker-registry` puts in the Secret; with "
                    "--kubernetes, the Secret manifest as `kubectl ... --dry-run=client -o yaml` "
                    "prints it. The password is asked for (no echo) or read from stdin.")
    add_common_options(dcj)
    dcj.add_argument("--user", required=True, help="registry user name")
    dcj.add_argument("--server", help="registry address as image names spell it, HOST:PORT "
                                      "(default: this registry's host and port from the "
                                      "settings, 127.0.0.1 for 0.0.0.0)")
    dcj.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input")
    dcj.add_argument("--email", default="", help="optional e-mail, as kubectl's --docker-email")
    dcj.add_argument("--kubernetes", action="store_true",
                     help="print the Secret manifest instead of the payload")
    dcj.add_argument("--name", help="Secret name (required with --kubernetes)")
    dcj.add_argument("--namespace", help="Secret namespace (omitted from the manifest when not "
                                         "given, as kubectl does without -n)")
    dcj.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml",
                     help="manifest format with --kubernetes (default yaml)")
    dcj.add_argument("--kubectl-version", default=None, metavar="MAJOR.MINOR",
                     help="print what this kubectl release prints (default: 1.34 and later; "
                          "1.33 and earlier add `creationTimestamp: null`)")
    dcj.set_defaults(handler=run_secret_dockerconfigjson)

    creds = commands.add_parser("creds", help="inspect pull credentials")
    creds_commands = creds.add_subparsers(dest="creds_command", required=True)
    # --config here names the Docker config.json (as in the issue); it replaces the common
    # --config (Tollgate's YAML), which this offline command has no use for.
    match = creds_commands.add_parser(
        "match", conflict_handler="resolve",
        help="show which auths entries a kubelet tries for an image, in order",
        description="Show which `auths` entries of a Docker config.json (a node's, or a pod's "
                    "pull secrets' .dockerconfigjson) the kubelet tries for IMAGE, in the order "
                    "it tries them, with the kubelet's own matching rules. Exit 1 when none "
                    "matches (the kubelet then pulls without credentials).")
    add_common_options(match)
    match.add_argument("--config", dest="docker_configs", action="append", required=True,
                       metavar="CONFIG_JSON",
                       help="Docker config.json / .dockerconfigjson; repeat for several pull "
                            "secrets, in the pod's order (they share one keyring, as in the "
                            "kubelet); a file named .dockercfg is read in the legacy format")
    match.add_argument("image", help="image as written in the pod spec, e.g. nginx:1.27 or "
                                     "registry.example.com:5000/team/app@sha256:...")
    match.set_defaults(handler=run_creds_match)


# ------------------------------------------------------------------------------------------
# secret dockerconfigjson


def run_secret_dockerconfigjson(args: argparse.Namespace, settings: Settings) -> int:
    if not args.user or ":" in args.user:
        return fail("--user must be a non-empty user name without ':' (the auth field is "
                    "base64(user:password))", 2)
    if args.kubernetes and not args.name:
        return fail("--kubernetes needs --name (and usually --namespace)", 2)
    if not args.kubernetes and (args.name or args.namespace):
        return fail("--name and --namespace only apply with --kubernetes", 2)
    try:
        kubectl_version = (kubernetes.parse_kubectl_version(args.kubectl_version)
                           if args.kubectl_version else kubernetes.DEFAULT_KUBECTL_VERSION)
        if args.kubernetes:  # check before asking for the password
            kubernetes.validate_secret_name(args.name)
            if args.namespace is not None:
                kubernetes.validate_namespace(args.namespace)
    except kubernetes.SecretError as e:
        return fail(str(e), 2)
    server = args.server or kubernetes.registry_address(settings.host, settings.port)

    password = _read_password(args)
    if password is None:
        return 2
    payload = kubernetes.docker_config_json(server, args.user, password, args.email)
    if not args.kubernetes:
        sys.stdout.buffer.write(payload + b"\n")
        sys.stdout.flush()
        return 0
    sys.stdout.write(kubernetes.secret_manifest(args.name, payload, args.namespace,
                                                args.output, kubectl_version))
    return 0


def _read_password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            fail("--password-stdin: nothing on standard input")
            return None
        password = line.removesuffix("\n").removesuffix("\r")
    else:
        if not sys.stdin.isatty():
            fail("cannot ask for the password without a terminal; use --password-stdin")
            return None
        try:
            password = getpass.getpass(f"Password for {args.user}: ")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            fail("no password given")
            return None
    if not password:
        fail("the password must not be empty")
        return None
    return password


# ------------------------------------------------------------------------------------------
# creds match


def _show(text: str) -> str:
    """Printable form of text that may hold bytes that were not UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _quoted(text: str) -> str:
    return _show(json.dumps(text, ensure_ascii=False))


def run_creds_match(args: argparse.Namespace, settings: Settings) -> int:
    configs = []
    for path in args.docker_configs:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            return fail(f"cannot read {path}: {e.strerror}", 2)
        legacy = os.path.basename(path) == ".dockercfg"
        try:
            entries = kubernetes.read_docker_config(data, path, legacy=legacy)
        except kubernetes.DockerConfigError as e:
            return fail(f"{e}\nthe kubelet cannot read this file: as a pull secret it fails "
                        "the pull, as a node config.json it is skipped", 2)
        if not entries:
            hint = ("" if legacy or b'"auths"' in data.lower() else
                    " (no \"auths\" object: the kubelet reads the bare legacy format only "
                    "from a file named .dockercfg)")
            print(f"tollgate: {path}: no auths entries{hint}", file=sys.stderr)
        configs.append(entries)
    try:
        result, warnings = kubernetes.match_image(args.image, configs)
    except kubernetes.ImageReferenceError as e:
        return fail(f"couldn't parse image name {_quoted(args.image)}: {_show(str(e))} (the "
                    "kubelet refuses it the same way)", 2)
    for warning in warnings:
        print(f"tollgate: {_show(warning)}", file=sys.stderr)
    for auth in (auth for entries in configs for auth in entries):
        if "?" in auth.written_as:
            print(f"tollgate: {auth.source}: in auths key {_quoted(auth.written_as)} the "
                  "kubelet reads '?' as the start of a URL query, not as a wildcard",
                  file=sys.stderr)

    files = ", ".join(args.docker_configs)
    image, name = _show(args.image), _show(result.name)
    if not result.entries:
        return fail(f"no auths entry in {files} matches {image} (the kubelet looks up "
                    f"{name}): the kubelet would pull it without credentials (anonymously)")
    print(f"{image}: the kubelet looks up {name} and tries these credentials in order, "
          "stopping at the first pull that succeeds:")
    if result.docker_hub_fallback:
        print(f"(no key matches {name}; on Docker Hub the kubelet falls back to the "
              f"{kubernetes.DEFAULT_REGISTRY_HOST} entries)")
    keys = [_show(e.key) for e in result.entries]
    width = max(len(key) for key in keys)
    for i, entry in enumerate(result.entries):
        auth = entry.auth
        user = _quoted(auth.username) if auth.username else "(no user name: empty credentials)"
        origin = f"auths key {_quoted(auth.written_as)}"
        if len(args.docker_configs) > 1:
            origin += f" in {auth.source}"
        print(f"{i + 1:>3}. {keys[i]:<{width}}  user {user}  ({origin})")
        if result.random_order(i):
            print(f"     (entries {i} and {i + 1} share a key in one file: the kubelet tries "
                  "them in either order)")
    return 0
