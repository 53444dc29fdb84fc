"""Deployment initialisation and the schema migrations."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from sandbox_api.errors import DeploymentNotInitialised
from sandbox_api.server.app import create_app
from sandbox_api.server.bootstrap import init_deployment
from sandbox_api.server.settings import Settings
from sandbox_api.server.store.db import open_database
from sandbox_api.server.store.models import Base


def test_init_is_idempotent_and_keeps_the_keyring_private(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    first = init_deployment(settings)
    assert first.created
    assert first.admin_token is not None
    assert first.admin_token.startswith("sbx_")
    second = init_deployment(settings)
    assert second.created is False
    assert second.admin_token is None
    assert stat.S_IMODE(settings.keyring_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.state_dir.stat().st_mode) == 0o700


def test_migrations_match_the_models(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    init_deployment(settings)
    db = open_database(settings.resolved_database_url)
    try:
        with db.engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        db.dispose()


def test_app_refuses_an_uninitialised_state_dir(tmp_path: Path) -> None:
    with pytest.raises(DeploymentNotInitialised, match="sandbox init"):
        create_app(Settings(state_dir=tmp_path / "nothing"))
