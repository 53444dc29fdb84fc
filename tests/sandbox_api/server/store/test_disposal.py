"""No PostgreSQL connection outlives the database's disposal (a gateway stopping), even one a thread
still holds when the pool is disposed, or takes after: each is closed as it comes back, and job leases
taken during or after the shutdown never stay open."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from sandbox_api.server.store.db import open_database
from sandbox_api.server.store.leases import JobLeases, LeasesClosed
from tests.sandbox_api.postgres_cluster import PostgresCluster


def _backends(cluster: PostgresCluster, url: str) -> int:
    """Sessions open on the test database, as the server counts them (the probe's own excluded)."""
    name = url.rsplit("/", 1)[-1].split("?", 1)[0]
    with cluster.connect() as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_connection_held_across_the_disposal_is_closed_when_it_comes_back(
    postgres: PostgresCluster,
) -> None:
    url = postgres.new_database()
    database = open_database(url)
    with database.read() as session:
        held = session.connection()  # a job thread's autocommit read still going at shutdown
        database.dispose()
        session.execute(text("SELECT 1"))
        assert _backends(postgres, url) == 1
    assert held.closed
    assert _backends(postgres, url) == 0


def test_a_connection_taken_after_the_disposal_is_closed_when_it_comes_back(
    postgres: PostgresCluster,
) -> None:
    url = postgres.new_database()
    database = open_database(url)
    database.dispose()
    with database.write() as session:  # a last flush after the gateway stopped
        session.execute(text("SELECT 1"))
    assert _backends(postgres, url) == 0


def test_no_lease_is_taken_once_the_shutdown_dropped_them(postgres: PostgresCluster) -> None:
    url = postgres.new_database()
    database = open_database(url)
    leases = JobLeases(database)
    running = leases.take("a" * 32)
    leases.abandon_all()
    with pytest.raises(LeasesClosed):
        leases.take("b" * 32)  # a runner thread still claiming past its join
    running.release()  # its thread settles the job later: nothing left to release
    database.dispose()
    assert _backends(postgres, url) == 0
