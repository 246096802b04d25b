"""Engine and session set-up, with the SQLite settings that make several processes safe."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection) -> None:  # noqa: ANN001
        # A deferred transaction that reads and then writes can fail at once with
        # "database is locked" when another process wrote meanwhile; writers take the
        # write lock up front (waiting on busy_timeout) instead.
        # On the driver's connection: exec_driver_sql would run the whole statement machinery
        # (events, result set-up), which cost as much as the query on the hot reads.
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.connection.dbapi_connection.execute(
            "BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """Hands out sessions: `read()` for ORM queries, `query()` for Core reads, `write()` for one
    atomic change."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(sqlite_immediate=True),
                                   expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def query(self) -> Iterator[Connection]:
        """A connection for plain reads: Core statements without the ORM session's
        bookkeeping, which costs more than the query itself on the hot paths."""
        with self.engine.connect() as connection:
            yield connection

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self._write() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
