"""How the database tools are called: the password never on a command line, the URL's options kept."""

from __future__ import annotations

import pytest

from sandbox_api.server.backup import metadata
from sandbox_api.server.backup.errors import DatabaseToolFailed


def test_the_password_goes_into_the_environment_and_never_into_the_arguments() -> None:
    url = "postgresql+psycopg://sandbox:s3cret-Pw@db.internal:6543/meta?sslmode=verify-full"
    args, env = metadata._connection(url)
    assert args == ["--dbname=postgresql://sandbox@db.internal:6543/meta?sslmode=verify-full"]
    assert "s3cret-Pw" not in " ".join(args)
    assert env["PGPASSWORD"] == "s3cret-Pw"


def test_only_sqlite_and_postgresql_can_be_backed_up() -> None:
    assert metadata.store_kind("sqlite:////srv/state/metadata.db") == "sqlite"
    assert metadata.store_kind("postgresql+psycopg://u@h/d") == "postgresql"
    with pytest.raises(DatabaseToolFailed, match="not mysql"):
        metadata.store_kind("mysql://u@h/d")
    with pytest.raises(DatabaseToolFailed, match="in-memory"):
        metadata.sqlite_path("sqlite://")
