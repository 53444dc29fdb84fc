"""Run Alembic migrations from code (no alembic.ini needed: the script location is this package)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from sandbox_api.server.store.db import Database

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(db: Database) -> Config:
    config = _script_config()
    url = db.engine.url.render_as_string(hide_password=False)
    # Alembic's options go through configparser, which reads '%' as interpolation: a URL-encoded
    # character (a multi-host URL's "host=127.0.0.1%3A5432", a password with '%') must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(db: Database, *, revision: str = "head") -> None:
    config = alembic_config(db)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(db: Database, *, revision: str) -> None:
    """Undo migrations down to ``revision`` (``"base"``: an empty database). Back up first."""
    config = alembic_config(db)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def revisions() -> list[str]:
    """Every revision, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_script_config())
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


def _script_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
