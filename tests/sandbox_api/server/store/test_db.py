"""The embedded metadata database is readable by its owner only, whatever the process's umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sqlalchemy import text

from sandbox_api.server.store.db import open_database


def test_the_sqlite_file_and_its_journal_are_created_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, which would give 0644
    try:
        database = open_database(f"sqlite:///{tmp_path / 'metadata.db'}")
        with database.write() as session:
            session.execute(text("PRAGMA journal_mode=WAL"))
            session.execute(text("CREATE TABLE t (x INTEGER)"))
            session.execute(text("INSERT INTO t VALUES (1)"))
        created = sorted(p.name for p in tmp_path.iterdir())
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
        database.dispose()
    finally:
        os.umask(old)
    assert "metadata.db" in created
    assert modes == dict.fromkeys(created, 0o600)


def test_an_existing_file_is_left_as_the_deployer_set_it(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    open_database(f"sqlite:///{path}").dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
