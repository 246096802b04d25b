"""Applying and checking the alembic migrations shipped in registry.migrations."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

# pg_advisory_xact_lock key serialising schema upgrades ("tollgate" in ASCII, as a bigint).
_PG_MIGRATION_LOCK = 0x746F6C6C67617465


class SchemaOutOfDate(Exception):
    """The database schema is not the one this version of Tollgate needs."""


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("registry.migrations")))
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    config = _alembic_config()
    with engine.begin() as connection:
        # Servers starting at once on an empty database would each create the tables and
        # all but one fail: the first to lock upgrades, the others wait, then find the
        # schema at head. DDL is transactional on both, so nobody sees half a schema.
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": _PG_MIGRATION_LOCK})
        elif connection.dialect.name == "sqlite":
            if not connection.connection.dbapi_connection.in_transaction:
                # pysqlite would run the DDL outside any transaction, one commit each
                connection.exec_driver_sql("BEGIN IMMEDIATE")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def ensure_schema(engine: Engine) -> None:
    """Create the schema on an empty database; refuse one that is behind or unknown."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None:
        if not inspect(engine).get_table_names():
            upgrade(engine)
            return
        # Another process may have committed the schema since we looked.
        current = current_revision(engine)
        if current is None:
            raise SchemaOutOfDate(
                "the database has tables but no Tollgate schema version: "
                "point --database-url at an empty database or a Tollgate one")
        if current == head:
            return
    known = {script.revision for script in
             ScriptDirectory.from_config(_alembic_config()).walk_revisions()}
    if current not in known:
        raise SchemaOutOfDate(
            f"the database schema is at revision {current}, unknown to this version of "
            f"Tollgate (newest known: {head}): upgrade Tollgate")
    raise SchemaOutOfDate(
        f"the database schema is at revision {current} but this version of Tollgate needs "
        f"{head}: run `tollgate migrate` first")
