"""The installed distribution's version (for /v1/health and OpenAPI)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def app_version() -> str:
    try:
        return version("data-sandbox")
    except PackageNotFoundError:
        return "0.0.0"
