"""What every subcommand shares: the --config/--data-dir/--database-url options, settings,
and opening the database (management commands work while the server runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy import Engine, create_engine

from registry.config import Settings, load_settings


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML configuration file (also TOLLGATE_CONFIG)")
    parser.add_argument("--data-dir", help="blobs and the SQLite database live here "
                                           "(default ./tollgate-data)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in the data dir)")


# Flags that map onto settings keys; a subcommand may define any of them.
FLAG_SETTINGS = {
    "data_dir": "data_dir",
    "database_url": "database_url",
    "host": "host",
    "port": "port",
    "workers": "workers",
    "auth": "auth.mode",
}


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {key: getattr(args, flag, None) for flag, key in FLAG_SETTINGS.items()}
    return load_settings(getattr(args, "config", None), overrides=overrides)


def engine_for(settings: Settings) -> Engine:
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    return create_engine(settings.effective_database_url)


def fail(message: str, code: int = 1) -> int:
    print(f"tollgate: {message}", file=sys.stderr)
    return code
