"""The metadata database handle: one engine, read and write transactions.

On SQLite every write transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock up front, so
two writers never both read the audit head and then collide on the upgrade to a write lock (which SQLite
answers with "database is locked" instead of waiting). On PostgreSQL the audit head row is locked with
``SELECT ... FOR UPDATE`` instead (see services/audit.py).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

_BUSY_TIMEOUT_MS = 60_000


@dataclass(frozen=True)
class Database:
    engine: Engine
    sessions: sessionmaker[Session]
    # Set by ``dispose``: from then on every connection coming back is closed (see _close_after_dispose).
    disposed: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)

    def __post_init__(self) -> None:
        _close_after_dispose(self.engine, self.disposed)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that may write: committed on success, rolled back on any error."""
        with self.sessions() as session:
            if self.is_sqlite:
                # Starts the transaction on a connection whose BEGIN is IMMEDIATE (see _on_begin).
                session.connection(execution_options={"sandbox_begin": "BEGIN IMMEDIATE"})
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (WAL lets it run beside a writer).

        Closing the session ends the transaction without expiring what was loaded, so rows read here
        stay usable (detached) afterwards.
        """
        with self.sessions() as session:
            if not self.is_sqlite:
                # Autocommit: no BEGIN and no ROLLBACK round trips around the reads. Under PostgreSQL's
                # READ COMMITTED every statement takes its own snapshot anyway, so a read transaction
                # gave no more consistency than this; nothing written here could commit (reads write
                # nothing: a write belongs in ``write``).
                session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            yield session

    def dispose(self) -> None:
        self.disposed.set()
        self.engine.dispose()


def _close_after_dispose(engine: Engine, disposed: threading.Event) -> None:
    """Close every connection checked in after ``dispose``. The disposal closes only the connections
    waiting in the pool; one checked out meanwhile (a job thread still settling its job, a lease, a last
    flush) would go back to the discarded pool and stay open until the garbage collector deleted it,
    and one checked out afterwards would stay in the new pool that nothing disposes again."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        if disposed.is_set() and record.dbapi_connection is not None:
            record.invalidate()  # closes the DBAPI connection; the entry would reconnect if used


_SERVER_GONE = frozenset({"57P01", "57P02", "57P03"})  # admin shutdown, crash shutdown, cannot connect now


def database_gone(exc: BaseException) -> bool:
    """Whether ``exc`` is the database going away (a dropped connection, or none to be had), as opposed
    to a statement it refused: only then is a retry the answer."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    # PostgreSQL names its refusals: a deadlock, a serialisation failure or a statement timeout is an
    # OperationalError too, but only a connection exception (class 08) or a shutdown (57P01-57P03)
    # means the server went away. An error without a code never reached a server that answered.
    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if isinstance(state, str):
        return state.startswith("08") or state in _SERVER_GONE
    return isinstance(exc, (OperationalError, InterfaceError))


def open_database(url: str) -> Database:
    """Create the engine; SQLite gets WAL, foreign keys, a busy timeout and explicit BEGINs."""
    if url.startswith("sqlite"):
        _create_private(url)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": _BUSY_TIMEOUT_MS / 1000},
            pool_size=8,
            max_overflow=32,
            pool_timeout=60,
        )
        _configure_sqlite(engine)
    else:
        # The same pool as SQLite's: with SQLAlchemy's default (5 + 10) fifty operators' requests, the
        # runner threads and their leases (one held connection per running job) queued for a
        # connection (benchmarks/bench_stores.py). Up to 40 per gateway: size max_connections for it.
        # No pre-ping: it cost a round trip on every checkout (a quarter of a small job's). A connection
        # that died with its server (a failover) fails its one statement instead, and SQLAlchemy then
        # invalidates the whole pool, so every later checkout connects afresh (the multi-host URL's
        # ``target_session_attrs=read-write`` finds the promoted standby); the request that met the
        # dead connection answers 503 with Retry-After (server/problems.py).
        engine = create_engine(url, pool_size=8, max_overflow=32, pool_timeout=60)
    return Database(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))


def _create_private(url: str) -> None:
    """Create the SQLite file readable by its owner only (0600) before SQLite does (it would use the
    umask, typically 0644); SQLite gives its -wal and -shm files the database file's permissions."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.exists() and path.parent.is_dir():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's "begin" event below (pysqlite's own BEGIN is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Deleted or overwritten content (a crypto-shredded data key, a data key re-wrapped after a
        # key rotation) is overwritten with zeros instead of lingering in free pages.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        statement = connection.get_execution_options().get("sandbox_begin", "BEGIN")
        connection.exec_driver_sql(statement)
