"""Where the deployment lives and how the gateway listens:
state, database, address, upload and request caps, catalog review."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PositiveInt
from pydantic_settings import BaseSettings


class DeploymentSettings(BaseSettings):
    """One part of ``Settings`` (``server/settings.py``)."""

    state_dir: Path = Field(
        Path(".sandbox-state"),
        description=(
            "Directory holding the embedded deployment: `metadata.db` (SQLite), `keyring.json` (mode "
            "0600), `data/` (encrypted Parquet parts). Created with mode 0700 by `sandbox init`."
        ),
    )
    database_url: str | None = Field(
        None,
        description=(
            "SQLAlchemy URL of the metadata database. Unset means SQLite at `<state_dir>/metadata.db` "
            "(WAL mode). Use `postgresql+psycopg://…` in production."
        ),
    )
    host: str = Field(
        "127.0.0.1",
        description=("Interface `sandbox serve` binds to."),
    )
    port: int = Field(
        default=8000,
        ge=1,
        le=65535,
        description=("Port `sandbox serve` listens on."),
    )
    dev_mode: bool = Field(
        True,
        description=(
            "Development mode. Outside it, placeholder secrets (a database password such as `changeme` "
            "or `password`) are refused at start-up."
        ),
    )
    max_upload_mb: PositiveInt = Field(
        256,
        description=(
            "Largest dataset upload (whole multipart body), in MiB. Enforced while streaming: the "
            "upload is cut off with 413 as soon as it passes the cap."
        ),
    )
    catalog_review_required: bool = Field(
        True,
        description=(
            "A new dataset version is stored as a draft with its validation report and goes live only "
            "after a second steward of the same domain publishes it (four eyes; the uploader cannot). "
            "`false`: an upload is published at once, recorded as published without review."
        ),
    )
    max_request_kb: PositiveInt = Field(
        256,
        description=(
            "Largest JSON request body (and largest non-file multipart field, e.g. the manifest), in "
            "KiB; larger ones get 413."
        ),
    )
