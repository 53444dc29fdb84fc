"""A backup that cannot be made leaves nothing behind that looks like a backup."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from sandbox_api.server.backup.archive import Deployment, create_backup, restore_backup
from sandbox_api.server.backup.errors import BackupError, DatabaseToolFailed, TargetNotEmpty
from sandbox_api.server.bootstrap import init_deployment
from tests.sandbox_api.api_helpers import make_settings
from tests.sandbox_api.backup_helpers import PASSPHRASE, passphrase_file, run_cli
from tests.sandbox_api.postgres_cluster import PostgresCluster


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    settings = make_settings(tmp_path_factory.mktemp("deployment") / "state")
    init_deployment(settings)
    return Deployment(state_dir=settings.state_dir, database_url=settings.resolved_database_url)


def _nothing_written(tmp_path: Path, out: Path) -> None:
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}")] == []


def test_a_short_passphrase_is_refused_before_anything_is_written(
    deployment: Deployment, tmp_path: Path
) -> None:
    secret = passphrase_file(tmp_path, "too short")
    answer = run_cli(
        "backup",
        "--out",
        str(tmp_path / "b"),
        state_dir=deployment.state_dir,
        database_url=None,
        secret=secret,
    )
    assert answer.exit_code == 1
    assert "at least 12 characters" in answer.output
    _nothing_written(tmp_path, tmp_path / "b")


def test_a_backup_goes_into_a_new_folder_only(deployment: Deployment, tmp_path: Path) -> None:
    out = tmp_path / "b"
    out.mkdir()
    (out / "earlier.txt").write_text("kept")
    with pytest.raises(BackupError, match="is not empty"):
        create_backup(deployment, out, passphrase=PASSPHRASE)
    assert [p.name for p in out.iterdir()] == ["earlier.txt"]


def test_a_state_folder_without_a_deployment_is_refused(tmp_path: Path) -> None:
    empty = Deployment(state_dir=tmp_path / "none", database_url=f"sqlite:///{tmp_path / 'none.db'}")
    with pytest.raises(BackupError, match="no deployment"):
        create_backup(empty, tmp_path / "b", passphrase=PASSPHRASE)
    _nothing_written(tmp_path, tmp_path / "b")


def test_a_database_dump_that_fails_leaves_no_partial_backup(deployment: Deployment, tmp_path: Path) -> None:
    # Nothing listens on port 1: pg_dump fails, and says why.
    unreachable = Deployment(
        state_dir=deployment.state_dir, database_url="postgresql+psycopg://nobody:pw@127.0.0.1:1/sandbox"
    )
    with pytest.raises(DatabaseToolFailed, match="pg_dump failed"):
        create_backup(unreachable, tmp_path / "b", passphrase=PASSPHRASE)
    _nothing_written(tmp_path, tmp_path / "b")


def test_a_postgresql_restore_into_a_database_in_use_or_failing_half_way_leaves_it_as_it_was(
    tmp_path: Path, postgres: PostgresCluster
) -> None:
    settings = make_settings(tmp_path / "state", database_url=postgres.new_database())
    init_deployment(settings)
    source = Deployment(state_dir=settings.state_dir, database_url=settings.resolved_database_url)
    create_backup(source, tmp_path / "backup", passphrase=PASSPHRASE)
    # A database in use is refused outright (the state folder is new and empty).
    in_use = Deployment(state_dir=tmp_path / "restored", database_url=source.database_url)
    with pytest.raises(TargetNotEmpty, match="a restore needs an empty database"):
        restore_backup(tmp_path / "backup", in_use, passphrase=PASSPHRASE)
    # A database without tables passes the emptiness check, but a view named like a table makes
    # pg_restore fail after it has created the tables that come before it in the dump.
    target_url = postgres.new_database()
    with postgres.connect(target_url.rsplit("/", 1)[1]) as connection:
        connection.execute("CREATE VIEW jobs AS SELECT 1 AS id")
    target = Deployment(state_dir=tmp_path / "restored", database_url=target_url)
    with pytest.raises(DatabaseToolFailed, match="pg_restore failed"):
        restore_backup(tmp_path / "backup", target, passphrase=PASSPHRASE)
    assert not target.state_dir.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".restored")] == []
    engine = create_engine(target_url)
    try:
        with engine.connect() as connection:
            assert inspect(connection).get_table_names() == []  # one transaction: nothing stayed
    finally:
        engine.dispose()
