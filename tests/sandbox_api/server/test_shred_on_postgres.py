"""Crypto-shredding holds on PostgreSQL, whose dead tuples and write-ahead log keep old values.

The attacker here holds PostgreSQL's whole data directory (tables, dead tuples, every WAL segment) and
the deployment's state folder with the keyring. Before the shredding the stored key is found there and
opens; afterwards every copy found is still there, and none opens.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crypto.errors import CryptoError
from crypto.keyring import LocalKeyring
from crypto.shredding import VersionKeys
from tests.sandbox_api.api_helpers import DATASET, DOMAIN, World, world
from tests.sandbox_api.auditing_helpers import release
from tests.sandbox_api.postgres_cluster import PostgresCluster

HEADER = b"DSV1"
# The stored value: header, nonce, the KEK-wrapped key (header, kid, nonce, key, tag) and the tag.
LENGTHS = range(80, 140)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, postgres: PostgresCluster) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("shred-pg"), database_url=postgres.new_database()) as deployment:
        yield deployment


def _everything_postgres_keeps(cluster: PostgresCluster) -> bytes:
    with cluster.connect() as connection:
        connection.execute("CHECKPOINT")  # pages written out too, not only the WAL
    files = [p for p in sorted(cluster.data.rglob("*")) if p.is_file()]
    assert any("pg_wal" in p.parts for p in files)
    return b"\n".join(_contents_if_still_there(p) for p in files)


def _contents_if_still_there(path: Path) -> bytes:
    # PostgreSQL keeps writing while we read: relation caches (pg_internal.init), temporary
    # files and recycled WAL segments can go between the listing and the read. A file that
    # is gone holds nothing we need to look at.
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _copies_that_open(blob: bytes, keys: VersionKeys, key_aad: str) -> tuple[int, int]:
    """(copies of a stored key found, copies that open) over every header and plausible length."""
    found = opened = 0
    start = blob.find(HEADER)
    while start != -1:
        found += 1
        for length in LENGTHS:
            try:
                keys.open(key_aad, blob[start : start + length])
            except CryptoError:
                continue
            opened += 1
            break
        start = blob.find(HEADER, start + 1)
    return found, opened


def test_old_copies_in_dead_tuples_and_the_wal_are_noise_after_the_shredding(
    api: World, postgres: PostgresCluster
) -> None:
    release(api)
    version = api.dataset_version
    key_aad = f"{DOMAIN}/{DATASET}/{version}"
    # A KEK rotation rewrites the stored value: the old one lives on as a dead tuple and in the WAL.
    assert api.client.post(f"/v1/domains/{DOMAIN}/keys/rotate", headers=api.h("admin")).status_code == 200

    def keys() -> VersionKeys:
        return VersionKeys(LocalKeyring.open(api.settings.keyring_path))

    found, opened = _copies_that_open(_everything_postgres_keeps(postgres), keys(), key_aad)
    assert opened >= 2, (found, opened)  # the premise: PostgreSQL keeps the old value, and it opens today

    answer = api.client.post(
        f"/v1/datasets/{DOMAIN}/{DATASET}/versions/{version}/shred",
        headers=api.h("stu"),
        json={"reason": "retention period ended"},
    )
    assert answer.status_code == 200, answer.text

    found_after, opened_after = _copies_that_open(_everything_postgres_keeps(postgres), keys(), key_aad)
    assert found_after >= opened  # the copies are still on disk ...
    assert opened_after == 0  # ... and none of them opens: the version's secret is gone
