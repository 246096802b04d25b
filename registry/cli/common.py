"""What every subcommand shares: the --config/--data-dir/--database-url options, settings,
and opening the database (management commands work while the server runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy import Engine, create_engine

from registry.config import Settings, load_settings, parse_storage_url


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML configuration file (also TOLLGATE_CONFIG)")
    parser.add_argument("--data-dir", help="blobs and the SQLite database live here "
                                           "(default ./tollgate-data)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in the data dir)")


# Flags that map onto settings keys; a subcommand may define any of them. A function instead
# of a key turns the flag's value into several settings ({key: value}).
FLAG_SETTINGS = {
    "data_dir": "data_dir",
    "database_url": "database_url",
    "host": "host",
    "port": "port",
    "workers": "workers",
    "auth": "auth.mode",
    "storage": parse_storage_url,
    "tls_cert": "tls.cert",
    "tls_key": "tls.key",
    "tls_client_ca": "tls.client_ca",
}


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {}
    for flag, key in FLAG_SETTINGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides.update(key(value) if callable(key) else {key: value})
    return load_settings(getattr(args, "config", None), overrides=overrides)


def engine_for(settings: Settings) -> Engine:
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    return create_engine(settings.effective_database_url)


def fail(message: str, code: int = 1) -> int:
    print(f"tollgate: {message}", file=sys.stderr)
    return code
