"""Fixtures for the executors tests: a real keyring, real encrypted datasets, a real executor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crypto.keyring import LocalKeyring
from executors.local import LocalExecutor
from tests.executors.executors_fixtures import StoredVersion, store_version, visits_table


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> LocalKeyring:
    return LocalKeyring.open(tmp_path_factory.mktemp("keys") / "keyring.json", create=True)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def visits(data_root: Path, keyring: LocalKeyring) -> StoredVersion:
    return store_version(
        data_root, keyring, {"visits": visits_table()}, units={"visits": "person_id"}, n_parts=4
    )


@pytest.fixture(scope="module")
def local_executor(keyring: LocalKeyring) -> Iterator[LocalExecutor]:
    executor = LocalExecutor(key_provider=keyring, max_workers=2)
    yield executor
    executor.close()


@pytest.fixture(scope="module")
def warm_executor(keyring: LocalKeyring) -> Iterator[LocalExecutor]:
    executor = LocalExecutor(key_provider=keyring, max_workers=2, warm_sandboxes=2)
    yield executor
    executor.close()
