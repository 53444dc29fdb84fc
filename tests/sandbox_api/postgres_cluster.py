"""A throwaway PostgreSQL cluster for the tests: initdb and pg_ctl from the machine's binaries.

The cluster listens on a free loopback port only (and a Unix socket inside its own folder), with a
generated superuser password (SCRAM), and is removed when the tests are done. `scripts/setup.sh`
installs the binaries from the system packages when they are missing. PostgreSQL refuses to run as
root, so under root every command runs as the `postgres` system user, which owns the cluster's folder.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

SUPERUSER = "sandbox_test"


def binaries() -> Path:
    """The folder that holds initdb and pg_ctl (the newest installed major version)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    installed = Path("/usr/lib/postgresql").glob("*/bin/initdb")
    candidates = sorted(installed, key=lambda p: int(p.parts[4]) if p.parts[4].isdigit() else 0)
    if not candidates:
        raise RuntimeError(
            "PostgreSQL binaries (initdb, pg_ctl) are missing: run `bash scripts/setup.sh`, which installs "
            "the `postgresql` system package"
        )
    return candidates[-1].parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class PostgresCluster:
    """One running cluster; ``new_database()`` hands each test deployment a database of its own."""

    folder: Path
    port: int
    password: str
    _bin: Path
    _databases: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = "postgres", *, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            password=self.password,
            dbname=database,
            autocommit=True,
        )

    def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        name = f"sandbox_{len(self._databases)}_{secrets.token_hex(4)}"
        with self.connect() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')  # a generated name, not input
        self._databases.append(name)
        return self.url(name)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _as_owner([str(self._bin / args[0]), *args[1:]])

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w")


def _as_owner(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *command], check=True, capture_output=True, text=True, timeout=120)


def _owner_ids() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def give_to_owner(path: Path) -> Path:
    """Under root, hand ``path`` to the `postgres` user that runs the clusters (a file the server or
    its tools must read, such as a standby's password file)."""
    owner = _owner_ids()
    if owner is not None:
        os.chown(path, *owner)
    return path


@contextlib.contextmanager
def running_cluster() -> Iterator[PostgresCluster]:
    """Start a cluster in a new folder under the system temp directory; stop it and remove it after."""
    bin_dir = binaries()
    # Not under pytest's tmp_path: its parents are private to root, and the cluster runs as `postgres`.
    folder = Path(tempfile.mkdtemp(prefix="sandbox-pg-"))
    owner = _owner_ids()
    if owner is not None:
        os.chown(folder, *owner)
    password = secrets.token_urlsafe(24)
    cluster = PostgresCluster(folder=folder, port=_free_port(), password=password, _bin=bin_dir)
    pwfile = folder / "pwfile"
    pwfile.write_text(password + "\n", encoding="utf-8")
    if owner is not None:
        os.chown(pwfile, *owner)
    try:
        cluster.run(
            "initdb",
            "-D",
            str(cluster.data),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
        )
        pwfile.unlink()
        # Loopback only; fsync off because a test cluster need not survive a power cut.
        options = f"-c listen_addresses=127.0.0.1 -p {cluster.port} -k {folder}"
        options += " -c fsync=off -c max_connections=300"
        log = str(folder / "server.log")
        cluster.run("pg_ctl", "start", "-D", str(cluster.data), "-w", "-l", log, "-o", options)
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            cluster.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)
