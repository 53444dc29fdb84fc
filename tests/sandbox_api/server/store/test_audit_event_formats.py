"""A deployment upgraded to the RFC 8785 audit format keeps its old chain verifiable and goes on in v2.

Events stored before migration 0009 were hashed in the first format; after the upgrade they read back
as v1, new events are appended as v2 after them, and the whole chain verifies as one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert

from crypto.audit import EVENT_FORMAT_V1, EVENT_FORMAT_V2, chain, verify_chain
from crypto.signing import SigningKeyPair
from sandbox_api.server.services.audit import AuditLog
from sandbox_api.server.store import migrate
from sandbox_api.server.store.db import Database, open_database
from sandbox_api.server.store.models import AuditEventRow, AuditHeadRow
from tests.sandbox_api.stores import NewStore, on_both_stores

store = on_both_stores


class _Clock:
    def now(self) -> datetime:
        return datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


@pytest.fixture
def database(store: NewStore, tmp_path: Path) -> Iterator[Database]:
    db = open_database(store() or f"sqlite:///{tmp_path / 'metadata.db'}")
    try:
        yield db
    finally:
        db.dispose()


def test_events_stored_before_the_upgrade_stay_v1_and_the_chain_goes_on_in_v2(database: Database) -> None:
    migrate.upgrade(database, revision="0008")
    first = chain(
        None,
        at="2026-01-01T00:00:00+00:00",
        event="deployment.initialised",
        actor="admin",
        details={},
        format=EVENT_FORMAT_V1,
    )
    released = {"job": "j1", "epsilon": 0.5, "rows": 2.0}  # floats: where the two formats differ
    second = chain(
        first,
        at="2026-01-01T00:01:00+00:00",
        event="job.released",
        actor="alice",
        details=released,
        format=EVENT_FORMAT_V1,
    )
    old = [first, second]
    columns = ("seq", "at", "event", "actor", "details", "prev_hash", "hash")
    with database.engine.begin() as connection:
        # Only the columns revision 0008 had: there is no format column yet.
        rows = [{c: getattr(e, c) for c in columns} for e in old]
        connection.execute(insert(AuditEventRow.__table__), rows)
        connection.execute(
            insert(AuditHeadRow.__table__), [{"id": 1, "seq": second.seq, "hash": second.hash}]
        )
    migrate.upgrade(database)

    pair = SigningKeyPair.from_private(bytes(range(32)))
    log = AuditLog(db=database, clock=_Clock(), checkpoint_every=1000, signing_key=lambda: pair)
    new = log.record(event="job.submitted", actor="bob", details={"share": 0.25})

    entries = log.events()
    assert [e.format for e in entries] == [EVENT_FORMAT_V1, EVENT_FORMAT_V1, EVENT_FORMAT_V2]
    assert entries[:2] == old
    assert new.prev_hash == old[-1].hash
    assert verify_chain(entries).head_hash == new.hash
