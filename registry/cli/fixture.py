"""`tollgate journal` and `tollgate fault`: the request journal and fault rules of a running
registry, through its admin API."""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

from registry.cli.common import add_common_options, fail
from registry.config import Settings


def add_commands(commands: argparse._SubParsersAction) -> None:
    journal = commands.add_parser("journal", help="show the requests a running registry saw")
    _connection_options(journal)
    journal.add_argument("filters", nargs="*", metavar="KEY=VALUE",
                         help="e.g. method=HEAD kind=manifest repository=team/app user=ci")
    journal.add_argument("--json", action="store_true", help="one JSON object per line")
    journal.add_argument("--clear", action="store_true", help="empty the journal instead")
    journal.set_defaults(handler=run_journal)

    fault = commands.add_parser("fault", help="manage fault rules of a running registry")
    actions = fault.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add a rule, e.g. kind=manifest status=503 times=2")
    _connection_options(add)
    add.add_argument("rule", nargs="+", metavar="KEY=VALUE")
    add.set_defaults(handler=run_fault)
    for name, help_text in (("list", "list the rules"), ("clear", "remove every rule")):
        parser = actions.add_parser(name, help=help_text)
        _connection_options(parser)
        parser.set_defaults(handler=run_fault)
    remove = actions.add_parser("remove", help="remove one rule")
    _connection_options(remove)
    remove.add_argument("id", type=int)
    remove.set_defaults(handler=run_fault)


def _connection_options(parser: argparse.ArgumentParser) -> None:
    add_common_options(parser)
    parser.add_argument("--url", help="the registry (default: this config's host and port)")
    parser.add_argument("--user", help="an administrator (needed unless auth.mode is none)")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the administrator's password from standard input")


def _pairs(items: list[str]) -> dict[str, object]:
    """KEY=VALUE words; values that read as JSON (503, 0.5, true) keep their type."""
    values: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        try:
            values[key] = json.loads(value)
        except ValueError:
            values[key] = value
    return values


def _call(args: argparse.Namespace, settings: Settings, method: str, path: str,
          body: object = None) -> object:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = (args.url or f"http://{host}:{settings.port}").rstrip("/") + path
    request = urllib.request.Request(url, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    if args.user:
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = getpass.getpass(f"Password for {args.user}: ")
        token = base64.b64encode(f"{args.user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = response.read()
    return json.loads(payload) if payload else None


def _guarded(function):  # noqa: ANN001, ANN202
    def run(args: argparse.Namespace, settings: Settings) -> int:
        try:
            return function(args, settings)
        except ValueError as e:
            return fail(str(e), 2)
        except urllib.error.HTTPError as e:
            errors = json.loads(e.read() or b"{}").get("errors") or [{}]
            return fail(f"{e.code}: {errors[0].get('message', e.reason)}")
        except urllib.error.URLError as e:
            return fail(f"cannot reach the registry: {e.reason}")
    return run


@_guarded
def run_journal(args: argparse.Namespace, settings: Settings) -> int:
    if args.clear:
        _call(args, settings, "DELETE", "/admin/journal")
        return 0
    query = urllib.parse.urlencode({k: str(v) for k, v in _pairs(args.filters).items()})
    for entry in _call(args, settings, "GET", "/admin/journal" + (f"?{query}" if query else "")):
        if args.json:
            print(json.dumps(entry))
        else:
            print(f"{entry['time']}  {entry['status']:>3}  {entry['method']:<6} "
                  f"{entry['path']}  user={entry['user'] or '-'}  bytes={entry['bytes']}  "
                  f"{entry['duration_ms']} ms  {entry['user_agent']}")
    return 0


@_guarded
def run_fault(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "add":
        print(json.dumps(_call(args, settings, "POST", "/admin/faults", _pairs(args.rule))))
    elif args.action == "list":
        for rule in _call(args, settings, "GET", "/admin/faults"):
            print(json.dumps(rule))
    elif args.action == "clear":
        _call(args, settings, "DELETE", "/admin/faults")
    else:
        _call(args, settings, "DELETE", f"/admin/faults/{args.id}")
    return 0
