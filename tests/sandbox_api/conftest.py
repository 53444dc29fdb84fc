"""Fixtures for the service tests: one real deployment per module (real store, files, executor).

The store is SQLite unless a module asks for both stores (``tests.sandbox_api.stores``); PostgreSQL is a
real cluster the session starts on loopback and removes afterwards (``postgres_cluster``).

When a module's tests are done, every job its deployment released is replayed as an auditor and must
match its receipt (``replay_helpers``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sandbox_api.api_helpers import World
from tests.sandbox_api.postgres_cluster import PostgresCluster, running_cluster
from tests.sandbox_api.replay_helpers import replayed_world
from tests.sandbox_api.stores import NewStore, sqlite_store


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def store() -> NewStore:
    """The module's store: SQLite in the state folder (a module may ask for both stores instead)."""
    return sqlite_store


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, store: NewStore) -> Iterator[World]:
    with replayed_world(tmp_path_factory.mktemp("state"), database_url=store()) as deployment:
        yield deployment
