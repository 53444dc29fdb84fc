"""Deployment settings: one pydantic-settings class, read only when constructed (never at import)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Passwords that show up in tutorials and templates: a production deployment must not run with them.
PLACEHOLDER_SECRETS = frozenset(
    {"changeme", "change-me", "password", "secret", "example", "placeholder", "admin"}
)


class Settings(BaseSettings):
    """Every knob of a deployment. Documented one by one in docs/settings.md."""

    model_config = SettingsConfigDict(env_prefix="SANDBOX_", extra="forbid")

    state_dir: Path = Path(".sandbox-state")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    dev_mode: bool = True
    max_upload_mb: PositiveInt = 256
    max_request_kb: PositiveInt = 256
    job_timeout_s: PositiveInt = 300
    job_memory_mb: PositiveInt = 2048
    job_threads: PositiveInt = 2
    max_concurrent_jobs: PositiveInt = 2
    warm_sandboxes: NonNegativeInt = 1
    queue_limit: PositiveInt = 100
    n_parts: PositiveInt = 8
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    ray_local_cpus: PositiveInt | None = None
    ray_object_store_mb: PositiveInt = 256
    audit_checkpoint_every: PositiveInt = 1000
    audit_checkpoint_minutes: PositiveInt = 60
    job_max_attempts: PositiveInt = 2

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.dev_mode or self.database_url is None:
            return self
        password = urlsplit(self.database_url).password
        if password is not None and password.lower() in PLACEHOLDER_SECRETS:
            raise ValueError(
                "SANDBOX_DATABASE_URL uses a placeholder password; set a real one or enable SANDBOX_DEV_MODE"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        """The metadata database: the configured URL, or SQLite inside the state directory."""
        if self.database_url is not None:
            return self.database_url
        return f"sqlite:///{(self.state_dir / 'metadata.db').resolve()}"

    @property
    def keyring_path(self) -> Path:
        return self.state_dir / "keyring.json"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def upload_dir(self) -> Path:
        return self.state_dir / "uploads"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def max_request_bytes(self) -> int:
        return self.max_request_kb * 1024
