"""Settings: every one documented, typos refused, placeholder secrets refused outside dev mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sandbox_api.server.settings import Settings, settings_table, unknown_environment

DOCS = Path(__file__).resolve().parents[3] / "docs" / "settings.md"


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    assert f"`{name}`" in DOCS.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_has_a_description(name: str) -> None:
    description = Settings.model_fields[name].description or ""
    assert len(description) > 20, f"setting {name} needs a description a deployer can act on"


def test_the_documented_table_is_generated_from_the_settings() -> None:
    assert settings_table() in DOCS.read_text(encoding="utf-8"), (
        "docs/settings.md is out of date: paste server.settings.settings_table() between its markers"
    )


def test_an_unknown_environment_variable_is_reported() -> None:
    environ = {"SANDBOX_JOB_TIMEOUT_S": "5", "SANDBOX_JOB_TIMEOUTS": "5", "SANDBOX_TOKEN": "x", "PATH": "/"}
    assert unknown_environment(environ) == ["SANDBOX_JOB_TIMEOUTS"]


def test_unknown_setting_is_an_error() -> None:
    with pytest.raises(ValidationError):
        Settings(job_timout_s=5)  # type: ignore[call-arg]


def test_environment_is_read_only_on_construction(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SANDBOX_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SANDBOX_QUEUE_LIMIT", "7")
    settings = Settings()
    assert settings.state_dir == tmp_path
    assert settings.queue_limit == 7
    assert settings.resolved_database_url == f"sqlite:///{(tmp_path / 'metadata.db').resolve()}"


def test_placeholder_password_refused_outside_dev_mode() -> None:
    url = "postgresql://sandbox:changeme@db/sandbox"
    assert Settings(database_url=url).database_url == url  # dev mode tolerates it
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(database_url=url, dev_mode=False)
    assert Settings(database_url="postgresql://sandbox:s3cr3t-Long@db/x", dev_mode=False).dev_mode is False
