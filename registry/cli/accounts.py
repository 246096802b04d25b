"""`tollgate user`, `tollgate grant` and `tollgate token`: accounts, grants and access tokens.
They work on the same database as a running server, which sees changes at once."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from registry.auth.accounts import AccountError, Accounts
from registry.auth.passwords import PasswordRejected
from registry.cli.common import add_common_options, engine_for, fail
from registry.config import Settings
from registry.db.accounts import AccessTokenRecord, AccountStore, AlreadyExists
from registry.db.engine import Database

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_commands(commands: argparse._SubParsersAction) -> None:
    user = commands.add_parser("user", help="manage users").add_subparsers(
        dest="action", required=True)
    for action, help_text in [("add", "add a user"), ("passwd", "change a user's password")]:
        parser = user.add_parser(action, help=help_text)
        add_common_options(parser)
        parser.add_argument("name")
        parser.add_argument("--password-stdin", action="store_true",
                            help="read the password from standard input")
        if action == "add":
            parser.add_argument("--admin", action="store_true", help="an administrator")
        parser.set_defaults(handler=run_user_password)
    for action, help_text in [("disable", "stop a user signing in"),
                              ("enable", "let a disabled user sign in again"),
                              ("remove", "delete a user, their grants and access tokens")]:
        parser = user.add_parser(action, help=help_text)
        add_common_options(parser)
        parser.add_argument("name")
        parser.set_defaults(handler=run_user_change)
    parser = user.add_parser("list", help="list users")
    add_common_options(parser)
    parser.set_defaults(handler=run_user_list)
    parser = user.add_parser("import-htpasswd", help="add the users of an Apache htpasswd file")
    add_common_options(parser)
    parser.add_argument("file")
    parser.set_defaults(handler=run_import_htpasswd)

    grant = commands.add_parser("grant", help="manage grants").add_subparsers(
        dest="action", required=True)
    for action in ("add", "remove"):
        parser = grant.add_parser(action, help=f"{action} a grant")
        add_common_options(parser)
        parser.add_argument("subject", help="a user name, `anonymous`, or `*` (any signed-in "
                                            "user)")
        parser.add_argument("pattern", help="repository glob: `*` within one path component, "
                                            "`**` across components")
        parser.add_argument("actions", nargs="?" if action == "remove" else None,
                            help="comma-separated: pull, push, delete, catalog")
        parser.set_defaults(handler=run_grant_change)
    parser = grant.add_parser("list", help="list grants")
    add_common_options(parser)
    parser.set_defaults(handler=run_grant_list)

    token = commands.add_parser("token", help="manage access tokens (robot and CI "
                                              "credentials)").add_subparsers(
        dest="action", required=True)
    parser = token.add_parser("create", help="make an access token; prints its secret once")
    add_common_options(parser)
    parser.add_argument("user")
    parser.add_argument("name")
    parser.add_argument("--pattern", help="narrow the token to repositories matching this glob")
    parser.add_argument("--actions", help="narrow the token to these actions")
    parser.add_argument("--expires-in", help="lifetime, e.g. 3600s, 90m, 12h, 30d")
    parser.set_defaults(handler=run_token_create)
    parser = token.add_parser("revoke", help="revoke an access token")
    add_common_options(parser)
    parser.add_argument("user")
    parser.add_argument("name")
    parser.set_defaults(handler=run_token_revoke)
    parser = token.add_parser("list", help="list access tokens")
    add_common_options(parser)
    parser.add_argument("user", nargs="?")
    parser.set_defaults(handler=run_token_list)


def open_accounts(settings: Settings) -> Accounts:
    from registry.db.migrate import ensure_schema

    engine = engine_for(settings)
    try:
        ensure_schema(engine)
    finally:
        engine.dispose()
    return Accounts(AccountStore(Database(settings.effective_database_url)),
                    settings.auth.lockout)


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != password:
        raise AccountError("the passwords do not match")
    return password


def _guarded(function):  # noqa: ANN001, ANN202
    """Run a command, turning the errors a user can cause into one line and exit code 1."""
    def run(args: argparse.Namespace, settings: Settings) -> int:
        try:
            return function(args, open_accounts(settings))
        except (AccountError, PasswordRejected) as e:
            return fail(str(e))
        except AlreadyExists as e:
            return fail(f"{e} already exists")
    return run


@_guarded
def run_user_password(args: argparse.Namespace, accounts: Accounts) -> int:
    password = read_password(args.password_stdin)
    if args.action == "add":
        accounts.add_user(args.name, password, admin=args.admin)
        print(f"added user {args.name}" + (" (admin)" if args.admin else ""))
    else:
        accounts.set_password(args.name, password)
        print(f"changed the password of {args.name}")
    return 0


@_guarded
def run_user_change(args: argparse.Namespace, accounts: Accounts) -> int:
    if args.action == "remove":
        accounts.remove_user(args.name)
    else:
        accounts.update(args.name, disabled=args.action == "disable")
    print(f"{args.action}d user {args.name}")
    return 0


@_guarded
def run_user_list(args: argparse.Namespace, accounts: Accounts) -> int:
    for user in accounts.list_users():
        flags = [f for f, on in (("admin", user.admin), ("disabled", user.disabled)) if on]
        print(user.name + (f"\t{','.join(flags)}" if flags else ""))
    return 0


@_guarded
def run_import_htpasswd(args: argparse.Namespace, accounts: Accounts) -> int:
    try:
        text = Path(args.file).read_text()
    except OSError as e:
        raise AccountError(f"cannot read {args.file}: {e.strerror}") from None
    names = accounts.import_htpasswd(text)
    print(f"imported {len(names)} users: {', '.join(names)}")
    return 0


@_guarded
def run_grant_change(args: argparse.Namespace, accounts: Accounts) -> int:
    if args.action == "add":
        grant = accounts.add_grant(args.subject, args.pattern, args.actions)
        print(f"{grant.subject}\t{grant.pattern}\t{','.join(grant.actions)}")
    else:
        accounts.remove_grant(args.subject, args.pattern, args.actions)
        print(f"removed {args.actions or 'all actions'} on {args.pattern} from {args.subject}")
    return 0


@_guarded
def run_grant_list(args: argparse.Namespace, accounts: Accounts) -> int:
    for grant in accounts.list_grants():
        print(f"{grant.subject}\t{grant.pattern}\t{','.join(grant.actions)}")
    return 0


def parse_duration(text: str) -> timedelta:
    unit = text[-1:] if text[-1:] in DURATION_UNITS else "s"
    number = text[:-1] if text[-1:] in DURATION_UNITS else text
    if not number.isdigit() or int(number) == 0:
        raise AccountError(f"invalid duration {text!r}: use e.g. 3600s, 90m, 12h, 30d")
    return timedelta(seconds=int(number) * DURATION_UNITS[unit])


@_guarded
def run_token_create(args: argparse.Namespace, accounts: Accounts) -> int:
    expires_at = None
    if args.expires_in:
        expires_at = datetime.now(UTC) + parse_duration(args.expires_in)
    secret = accounts.create_access_token(args.user, args.name, args.pattern, args.actions,
                                          expires_at)
    print(secret)
    return 0


@_guarded
def run_token_revoke(args: argparse.Namespace, accounts: Accounts) -> int:
    accounts.revoke_access_token(args.user, args.name)
    print(f"revoked access token {args.name} of {args.user}")
    return 0


def _describe(token: AccessTokenRecord) -> str:
    state = "revoked" if token.revoked else (
        f"expires {token.expires_at:%Y-%m-%dT%H:%M:%SZ}" if token.expires_at else "no expiry")
    scope = f"{token.pattern or '**'} {','.join(token.actions) if token.actions else 'all'}"
    return f"{token.user}\t{token.name}\t{scope}\t{state}"


@_guarded
def run_token_list(args: argparse.Namespace, accounts: Accounts) -> int:
    for token in accounts.list_access_tokens(args.user):
        print(_describe(token))
    return 0
