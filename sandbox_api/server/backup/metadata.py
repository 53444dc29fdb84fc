"""The metadata database in a backup: copied online and consistent, restored into an empty store.

SQLite: the online backup API (``sqlite3.Connection.backup``) copies one consistent snapshot while the
gateway keeps writing. PostgreSQL: ``pg_dump`` (custom format) reads one snapshot of the database, and
``pg_restore`` loads it in a single transaction, so a failed restore leaves the database as empty as
it found it. The tools come from the machine's PostgreSQL client binaries; the password travels in the
environment (``PGPASSWORD``), never on a command line that ``ps`` shows.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from sandbox_api.server.backup.errors import DatabaseToolFailed, TargetNotEmpty

SQLITE_NAME: Final = "metadata.sqlite"
POSTGRES_NAME: Final = "metadata.pgdump"
_TOOL_TIMEOUT_S: Final = 3600


@dataclass(frozen=True)
class ChainHead:
    """The audit chain's last event as the backup's snapshot holds it (``seq`` -1: no event yet)."""

    seq: int
    hash: str


_NO_EVENTS: Final = ChainHead(seq=-1, hash="")
_HEAD_QUERY: Final = "SELECT seq, hash FROM audit_head WHERE id = 1"


def store_kind(database_url: str) -> str:
    """``sqlite`` or ``postgresql``, from a SQLAlchemy URL."""
    backend = make_url(database_url).get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseToolFailed(f"backups support SQLite and PostgreSQL metadata stores, not {backend}")
    return backend


def sqlite_path(database_url: str) -> Path:
    database = make_url(database_url).database
    if not database or database == ":memory:":
        raise DatabaseToolFailed("an in-memory SQLite database cannot be backed up or restored")
    return Path(database)


def dump_name(kind: str) -> str:
    return SQLITE_NAME if kind == "sqlite" else POSTGRES_NAME


# --- SQLite ------------------------------------------------------------------------------------------
def backup_sqlite(database_url: str, out: Path) -> ChainHead:
    """Copy one snapshot into ``out``; the audit head that snapshot holds (read from the copy)."""
    path = sqlite_path(database_url)
    if not path.is_file():
        raise DatabaseToolFailed(f"the metadata database {path} does not exist")
    # mode=rw: never create an empty database where the real one was expected.
    source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True)
    target = sqlite3.connect(out)
    try:
        with target:
            source.backup(target)
        row = target.execute(_HEAD_QUERY).fetchone()
    finally:
        target.close()
        source.close()
    return _NO_EVENTS if row is None else ChainHead(seq=int(row[0]), hash=str(row[1]))


def check_sqlite_target(database_url: str) -> Path:
    path = sqlite_path(database_url)
    if path.exists() and path.stat().st_size > 0:
        raise TargetNotEmpty(f"the metadata database {path} exists: a restore needs an empty store")
    return path


# --- PostgreSQL --------------------------------------------------------------------------------------
def find_tool(name: str) -> Path:
    """``pg_dump``/``pg_restore`` on the PATH, else the newest under /usr/lib/postgresql (Debian)."""
    found = shutil.which(name)
    if found:
        return Path(found)
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[4]) if p.parts[4].isdigit() else 0,
    )
    if not candidates:
        raise DatabaseToolFailed(
            f"{name} is not installed: install the PostgreSQL client package (postgresql-client)"
        )
    return candidates[-1]


def _connection(database_url: str) -> tuple[list[str], dict[str, str]]:
    """The libpq URI for the tools (host, port, user, database and query options such as ``sslmode``)
    without the password, which goes into the environment."""
    url: URL = make_url(database_url)
    # Built afresh: ``URL.set(password=None)`` keeps the password it was meant to drop.
    bare = URL.create(
        "postgresql",
        username=url.username,
        host=url.host,
        port=url.port,
        database=url.database,
        query=url.query,
    )
    uri = bare.render_as_string(hide_password=False)
    env = {**os.environ}
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    return [f"--dbname={uri}"], env


def _run(tool: str, args: list[str], env: dict[str, str]) -> None:
    try:
        # The tool is found by name (PATH or the Debian folder); its arguments are built above.
        subprocess.run(  # noqa: S603
            [str(find_tool(tool)), *args],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=_TOOL_TIMEOUT_S,
        )
    except subprocess.CalledProcessError as failed:
        # The tool's own message names the problem (a refused connection, a version mismatch).
        last = (failed.stderr or "").strip().splitlines()[-1:] or ["no message"]
        raise DatabaseToolFailed(f"{tool} failed (exit {failed.returncode}): {last[0]}") from None
    except subprocess.TimeoutExpired:
        raise DatabaseToolFailed(f"{tool} did not finish within {_TOOL_TIMEOUT_S} s") from None


def backup_postgres(database_url: str, out: Path) -> ChainHead:
    """``pg_dump`` into ``out``; the audit head of the very snapshot it dumped.

    A repeatable-read transaction exports its snapshot (``pg_export_snapshot``), reads the head in it
    and holds it open while ``pg_dump --snapshot`` reads the same one: the head named in the audit
    event of the backup is exactly the last event the backup holds.
    """
    connection, env = _connection(database_url)
    engine = create_engine(database_url)
    try:
        with engine.connect() as held:
            held = held.execution_options(isolation_level="REPEATABLE READ")
            with held.begin():
                snapshot = held.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                row = held.execute(text(_HEAD_QUERY)).one_or_none()
                options = ["--format=custom", "--no-owner", "--no-privileges", f"--snapshot={snapshot}"]
                _run("pg_dump", [*connection, *options, f"--file={out}"], env)
    except DBAPIError as failed:
        # The driver's first line names the problem (a refused connection, a missing table).
        first = (str(failed.orig) or "no message").strip().splitlines()[0]
        raise DatabaseToolFailed(f"pg_dump failed: no snapshot of the database to dump: {first}") from None
    finally:
        engine.dispose()
    return _NO_EVENTS if row is None else ChainHead(seq=int(row[0]), hash=str(row[1]))


def check_postgres_target(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            tables = inspect(connection).get_table_names()
    finally:
        engine.dispose()
    if tables:
        raise TargetNotEmpty(
            f"the metadata database holds {len(tables)} tables: a restore needs an empty database"
        )


def read_head(database_url: str) -> ChainHead:
    """The audit head of a (restored) metadata database."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(text(_HEAD_QUERY)).one_or_none()
    finally:
        engine.dispose()
    return _NO_EVENTS if row is None else ChainHead(seq=int(row[0]), hash=str(row[1]))


def restore_postgres(database_url: str, dump: Path) -> None:
    connection, env = _connection(database_url)
    # One transaction: on any error nothing of the dump stays in the database.
    options = ["--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges"]
    _run("pg_restore", [*connection, *options, str(dump)], env)
