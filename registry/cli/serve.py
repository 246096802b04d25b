"""`tollgate serve` and `tollgate migrate`."""

from __future__ import annotations

import argparse
import os

from registry.cli.common import add_common_options, engine_for, fail
from registry.config import Settings


def add_commands(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the registry")
    add_common_options(serve)
    serve.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    serve.add_argument("--port", help="port to listen on (default 5000)")
    serve.add_argument("--workers", help="worker processes (default 1)")
    serve.add_argument("--auth", help="access control: none, basic or token (default none)")
    serve.add_argument("--storage", metavar="URL",
                       help="where blobs live: s3://BUCKET/PREFIX?endpoint=http://HOST:PORT"
                            "&region=R (credentials from the AWS chain or storage.s3.*), or "
                            "file:///PATH (default: the filesystem under the data dir)")
    serve.set_defaults(handler=run_serve)

    migrate = commands.add_parser("migrate", help="apply the database migrations")
    add_common_options(migrate)
    migrate.set_defaults(handler=run_migrate)


def run_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from registry.db.migrate import current_revision, upgrade

    engine = engine_for(settings)
    upgrade(engine)
    print(f"database schema at revision {current_revision(engine)}")
    engine.dispose()
    return 0


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from registry.app import SETTINGS_ENV, make_tokens
    from registry.db.migrate import SchemaOutOfDate, ensure_schema

    engine = engine_for(settings)
    try:
        ensure_schema(engine)
    except SchemaOutOfDate as e:
        return fail(str(e))
    finally:
        engine.dispose()
    if settings.storage.driver == "filesystem":
        settings.storage_root.mkdir(parents=True, exist_ok=True)
    make_tokens(settings)  # make the signing key once, before the workers start
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
