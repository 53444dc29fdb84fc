"""Run Alembic migrations from code (no alembic.ini needed: the script location is this package)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from sandbox_api.server.store.db import Database

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(db: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", db.engine.url.render_as_string(hide_password=False))
    return config


def upgrade(db: Database, *, revision: str = "head") -> None:
    config = alembic_config(db)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
