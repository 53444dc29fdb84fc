"""Fixtures for the service tests: one real deployment per module (real SQLite, files, executor)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sandbox_api.api_helpers import World, world


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("state")) as deployment:
        yield deployment
