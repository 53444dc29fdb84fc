"""The two metadata stores a deployment can use, for modules whose tests must hold on both.

A module opts in with ``store = on_both_stores`` (a module-scoped, parametrised fixture): its tests then
run once on SQLite (the embedded default, inside the state folder) and once on PostgreSQL, a real
cluster the session starts (``postgres_cluster``). ``store()`` answers the ``database_url`` of a new,
empty store for each deployment: ``None`` (SQLite) or the URL of a fresh PostgreSQL database.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

STORES = ("sqlite", "postgresql")

NewStore = Callable[[], str | None]


def sqlite_store() -> str | None:
    return None


@pytest.fixture(scope="module", params=STORES)
def on_both_stores(request: pytest.FixtureRequest) -> NewStore:
    if request.param == "sqlite":
        return sqlite_store
    new_database: NewStore = request.getfixturevalue("postgres").new_database
    return new_database
