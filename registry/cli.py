"""The `tollgate` command: serve and migrate."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from registry.config import ConfigError, Settings, load_settings


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML configuration file (also TOLLGATE_CONFIG)")
    parser.add_argument("--data-dir", help="blobs and the SQLite database live here "
                                           "(default ./tollgate-data)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in the data dir)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tollgate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the registry")
    _common_options(serve)
    serve.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    serve.add_argument("--port", help="port to listen on (default 5000)")
    serve.add_argument("--workers", help="worker processes (default 1)")

    migrate = commands.add_parser("migrate", help="apply the database migrations")
    _common_options(migrate)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        "data_dir": args.data_dir,
        "database_url": args.database_url,
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "workers": getattr(args, "workers", None),
    }
    return load_settings(args.config, overrides=overrides)


def _engine(settings: Settings):  # noqa: ANN202
    from sqlalchemy import create_engine

    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    return create_engine(settings.effective_database_url)


def cmd_migrate(settings: Settings) -> int:
    from registry.db.migrate import current_revision, upgrade

    engine = _engine(settings)
    upgrade(engine)
    print(f"database schema at revision {current_revision(engine)}")
    engine.dispose()
    return 0


def cmd_serve(settings: Settings) -> int:
    import uvicorn

    from registry.app import SETTINGS_ENV
    from registry.db.migrate import SchemaOutOfDate, ensure_schema

    engine = _engine(settings)
    try:
        ensure_schema(engine)
    except SchemaOutOfDate as e:
        print(f"tollgate: {e}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    settings.storage_root.mkdir(parents=True, exist_ok=True)
    os.environ[SETTINGS_ENV] = settings.to_json()
    uvicorn.run(
        "registry.app:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        access_log=settings.log.access,
        log_level=settings.log.level,
        proxy_headers=True,
        server_header=False,
        timeout_keep_alive=30,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ConfigError as e:
        print(f"tollgate: {e}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        return cmd_migrate(settings)
    return cmd_serve(settings)
