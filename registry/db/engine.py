"""Engine and session set-up, with the SQLite settings that make several processes safe."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

P = ParamSpec("P")
T = TypeVar("T")

# Set while `Database.inline` runs a read on the event loop's thread.
_INLINE: ContextVar[bool] = ContextVar("tollgate_inline_read", default=False)


def make_engine(url: str, single_connection: bool = False) -> Engine:
    if url.startswith("sqlite"):
        # Connections are cheap to keep and costly to open (the PRAGMAs below): enough stay
        # pooled for every worker thread that may query at once (anyio's default is 40).
        pool = {"poolclass": StaticPool} if single_connection else {"pool_size": 20,
                                                                     "max_overflow": 20}
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               **pool)
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
        # `query()` connections stay in autocommit: each of their statements is atomic on its
        # own, and BEGIN plus ROLLBACK would double the cost of a one-statement read.
        options = connection.get_execution_options()
        if options.get("sqlite_autocommit"):
            return
        # On the driver's connection: exec_driver_sql would run the whole statement machinery
        # (events, result set-up), which costs as much as the query on the hot reads.
        connection.connection.dbapi_connection.execute(
            "BEGIN IMMEDIATE" if options.get("sqlite_immediate") else "BEGIN")


class Database:
    """Hands out sessions: `read()` for ORM queries, `query()` for Core reads, `write()` for one
    atomic change."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._query = self.engine.execution_options(sqlite_autocommit=True)
        self._writer = self.engine.execution_options(sqlite_immediate=True)
        self._write = sessionmaker(self._writer, expire_on_commit=False)
        # SQLite runs one writer at a time, and a writer that finds the lock taken sleeps in
        # growing steps (busy_timeout) rather than waking when it is free: with many
        # concurrent pushes, most time went to those sleeps. This process's writers queue
        # here instead, so at most one of them waits on SQLite (for other processes).
        # Only scheduling: correctness still comes from SQLite's lock and the transactions.
        self._write_turn: AbstractContextManager = (
            threading.RLock() if url.startswith("sqlite") else nullcontext())
        # SQLite reads `inline` run on a connection of their own, used only by the event
        # loop's thread one read at a time: never waiting for the pool that writers (which
        # may wait out busy_timeout) hold connections of.
        self.inline_reads = url.startswith("sqlite")
        self._inline_query = (make_engine(url, single_connection=True)
                              .execution_options(sqlite_autocommit=True)
                              if self.inline_reads else None)

    def inline(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a read through `query()` (indexed lookups and range scans) here, on the
        caller's thread: the event loop's. Only for SQLite, where such a read costs less than
        the hop to a worker thread and back (whose GIL hand-offs dominated request latency
        under load), holds the GIL nearly throughout anyway, and, in WAL mode, never waits
        for writers. Nothing is cached: every read sees what any process committed. Network
        databases keep the thread pool (`inline_reads` is False)."""
        token = _INLINE.set(True)
        try:
            return function(*args, **kwargs)
        finally:
            _INLINE.reset(token)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def query(self) -> Iterator[Connection]:
        """A connection for plain reads: Core statements without the ORM session's
        bookkeeping, which costs more than the query itself on the hot paths. On SQLite each
        statement is its own transaction: use `read()` when several must see one snapshot."""
        engine = self._inline_query if _INLINE.get() else self._query
        with engine.connect() as connection:
            yield connection

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self._write_turn, self._write() as session, session.begin():
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Like `write()`, on a plain connection: for Core statements built once, where the
        session's bookkeeping would cost more than the change itself."""
        with self._write_turn, self._writer.begin() as connection:
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()
        if self._inline_query is not None:
            self._inline_query.engine.dispose()
