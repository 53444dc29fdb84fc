"""Migrations on both stores: from every earlier revision up to head, and all the way down again.

A deployment may be at any released revision when it upgrades; each path must end in exactly the schema
the models declare. Downgrades are the way back from a failed upgrade: every step must run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from sandbox_api.server.store import migrate
from sandbox_api.server.store.db import Database, open_database
from sandbox_api.server.store.models import Base
from tests.sandbox_api.stores import NewStore, on_both_stores

store = on_both_stores
REVISIONS = migrate.revisions()


@pytest.fixture
def database(store: NewStore, tmp_path: Path) -> Iterator[Database]:
    db = open_database(store() or f"sqlite:///{tmp_path / 'metadata.db'}")
    try:
        yield db
    finally:
        db.dispose()


def _drift(db: Database) -> list[object]:
    with db.engine.connect() as connection:
        differences: list[object] = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        return differences


def _tables(db: Database) -> set[str]:
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_the_revisions_form_one_line_from_0001() -> None:
    assert REVISIONS[0] == "0001"
    assert sorted(REVISIONS) == REVISIONS
    assert len(set(REVISIONS)) == len(REVISIONS)


@pytest.mark.parametrize("start", REVISIONS)
def test_upgrading_from_each_revision_ends_in_the_models_schema(database: Database, start: str) -> None:
    migrate.upgrade(database, revision=start)
    assert migrate.current_revision(database) == start
    migrate.upgrade(database)
    assert migrate.current_revision(database) == REVISIONS[-1]
    assert _drift(database) == []


def test_every_downgrade_step_runs_down_to_an_empty_database(database: Database) -> None:
    migrate.upgrade(database)
    for revision in reversed(REVISIONS[:-1]):
        migrate.downgrade(database, revision=revision)
        assert migrate.current_revision(database) == revision
    migrate.downgrade(database, revision="base")
    assert migrate.current_revision(database) is None
    assert _tables(database) == set()
    migrate.upgrade(database)  # and back up: the downgrades left nothing behind that blocks it
    assert _drift(database) == []


def test_versions_stored_before_the_catalog_review_stay_live_and_drafts_are_retired_on_the_way_down(
    database: Database,
) -> None:
    migrate.upgrade(database, revision="0010")
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO domains (name, description, kek_id, created_at) "
                "VALUES ('d', '', 'k', '2026-01-02 03:04:05+00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO datasets (id, domain, name, description, created_at, created_by) "
                "VALUES (1, 'd', 'n', '', '2026-01-02 03:04:05+00', 'stu')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO dataset_versions (dataset_id, version_id, manifest, layout, wrapped_key, "
                "key_aad, state, created_at, created_by) VALUES (1, 'v1', '[]', '{}', :key, 'a', 'active', "
                "'2026-01-02 03:04:05+00', 'stu')"
            ),
            {"key": b"k"},
        )
    migrate.upgrade(database, revision="0011")
    with database.engine.begin() as connection:
        row = connection.execute(
            text("SELECT state, published_at IS NOT NULL, review_reason FROM dataset_versions")
        ).one()
        assert tuple(row) == ("active", True, "")
        connection.execute(text("UPDATE dataset_versions SET state = 'draft'"))
    migrate.downgrade(database, revision="0010")
    with database.engine.begin() as connection:
        # The older code knows no draft: it would read one as live.
        assert connection.execute(text("SELECT state FROM dataset_versions")).scalar_one() == "retired"
