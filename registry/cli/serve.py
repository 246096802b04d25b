"""`tollgate serve` and `tollgate migrate`."""

from __future__ import annotations

import argparse
import os
import ssl

from registry.cli.common import add_common_options, engine_for, fail
from registry.config import ConfigError, Settings, check_tls_files


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
    serve.add_argument("--tls-cert", metavar="FILE",
                       help="serve HTTPS with this PEM certificate (chain); needs --tls-key")
    serve.add_argument("--tls-key", metavar="FILE", help="the PEM private key of --tls-cert")
    serve.add_argument("--tls-client-ca", metavar="FILE",
                       help="require client certificates signed by this PEM CA bundle")
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

    try:
        check_tls_files(settings.tls)
    except ConfigError as e:
        return fail(str(e), 2)
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
        server_header=False,
        timeout_keep_alive=30,
        **forwarding_options(settings),
        **tls_options(settings),
    )
    return 0


def forwarding_options(settings: Settings) -> dict:
    """uvicorn's X-Forwarded-For/-Proto handling: from anyone with http.trust_forwarded
    (a registry only a proxy can reach), else from no one (not even 127.0.0.1, uvicorn's
    default), so that no client picks its own address or scheme."""
    if settings.http.trust_forwarded:
        return {"proxy_headers": True, "forwarded_allow_ips": "*"}
    return {"proxy_headers": False}


def tls_options(settings: Settings) -> dict:
    """HTTPS (HTTP/1.1 over TLS) when tls.cert and tls.key are set; client certificates
    required when tls.client_ca is."""
    tls = settings.tls
    if not tls.cert:
        return {}
    options = {"ssl_certfile": tls.cert, "ssl_keyfile": tls.key}
    if tls.client_ca:
        options |= {"ssl_ca_certs": tls.client_ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return options
