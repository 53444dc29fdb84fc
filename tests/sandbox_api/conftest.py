"""Fixtures for the service tests: one real deployment per module (real SQLite, files, executor).

When a module's tests are done, every job its deployment released is replayed as an auditor and must
match its receipt (``replay_helpers``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sandbox_api.api_helpers import World
from tests.sandbox_api.replay_helpers import replayed_world


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with replayed_world(tmp_path_factory.mktemp("state")) as deployment:
        yield deployment
