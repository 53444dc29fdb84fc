"""Audit appends within one transaction: the head is locked and read once, the events reach the
database in one batch, and the chain is the one that one append per transaction would have made.

Counted with SQLAlchemy's ``before_cursor_execute`` event on the engine (a listener, nothing patched).
A rolled-back transaction leaves no link behind: the next append chains from the committed head.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from crypto.audit import verify_chain
from crypto.signing import SigningKeyPair
from sandbox_api.server.services.audit import AuditLog
from sandbox_api.server.store import migrate
from sandbox_api.server.store.db import Database, open_database
from tests.sandbox_api.stores import NewStore, on_both_stores

store = on_both_stores


class _Clock:
    def now(self) -> datetime:
        return datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


class _Boom(Exception):
    pass


@pytest.fixture
def database(store: NewStore, tmp_path: Path) -> Iterator[Database]:
    db = open_database(store() or f"sqlite:///{tmp_path / 'metadata.db'}")
    migrate.upgrade(db)
    try:
        yield db
    finally:
        db.dispose()


def _log(db: Database, *, checkpoint_every: int = 1000) -> AuditLog:
    pair = SigningKeyPair.from_private(bytes(range(32)))
    return AuditLog(db=db, clock=_Clock(), checkpoint_every=checkpoint_every, signing_key=lambda: pair)


@pytest.fixture
def statements(database: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(database.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(database.engine, "before_cursor_execute", note)


def test_three_appends_in_one_transaction_read_the_head_once_and_insert_once(
    database: Database, statements: list[str]
) -> None:
    log = _log(database)
    log.record(event="deployment.initialised", actor="admin", details={})
    statements.clear()
    with database.write() as session:
        appended = [
            log.append(session, event=name, actor="alice", details={"job": "j1"})
            for name in ("job.submitted", "job.queued", "job.running")
        ]
    head_reads = [s for s in statements if s.startswith("SELECT") and "FROM audit_head" in s]
    inserts = [s for s in statements if s.startswith("INSERT INTO audit_events")]
    head_writes = [s for s in statements if s.startswith("UPDATE audit_head")]
    assert (len(head_reads), len(inserts), len(head_writes)) == (1, 1, 1)
    entries = log.events()
    assert [e.event for e in entries] == [
        "deployment.initialised",
        "job.submitted",
        "job.queued",
        "job.running",
    ]
    assert entries[1:] == appended
    assert verify_chain(entries).head_hash == appended[-1].hash
    assert log.head().last_seq == 3


def test_a_rolled_back_transaction_leaves_no_link_and_the_next_append_chains_from_the_committed_head(
    database: Database,
) -> None:
    log = _log(database)
    first = log.record(event="deployment.initialised", actor="admin", details={})

    def append_then_fail() -> None:
        with database.write() as session:
            log.append(session, event="job.submitted", actor="alice", details={"job": "lost"})
            session.flush()  # reached the database, then rolled back
            raise _Boom

    with pytest.raises(_Boom):
        append_then_fail()
    after = log.record(event="job.submitted", actor="alice", details={"job": "kept"})
    assert (after.seq, after.prev_hash) == (first.seq + 1, first.hash)
    entries = log.events()
    assert [e.details.get("job") for e in entries] == [None, "kept"]
    verify_chain(entries)


def test_a_checkpoint_falls_on_the_same_events_when_appends_share_a_transaction(database: Database) -> None:
    log = _log(database, checkpoint_every=2)
    with database.write() as session:
        for index in range(5):
            log.append(session, event="job.submitted", actor="alice", details={"job": f"j{index}"})
    entries = log.events()
    checkpoints = log.checkpoints()
    assert [c.seq for c in checkpoints] == [1, 3]
    assert [c.head_hash for c in checkpoints] == [entries[1].hash, entries[3].hash]
    verify_chain(entries)


def test_an_append_in_a_rolled_back_savepoint_leaves_no_link_and_the_next_append_chains_from_what_stays(
    database: Database,
) -> None:
    log = _log(database)
    log.record(event="deployment.initialised", actor="admin", details={})
    with database.write() as session:
        kept = log.append(session, event="job.submitted", actor="alice", details={"job": "kept"})
        savepoint = session.begin_nested()
        log.append(session, event="job.queued", actor="alice", details={"job": "lost"})
        session.flush()
        savepoint.rollback()
        after = log.append(session, event="job.queued", actor="alice", details={"job": "kept"})
    assert (after.seq, after.prev_hash) == (kept.seq + 1, kept.hash)
    entries = log.events()
    assert [e.details.get("job") for e in entries] == [None, "kept", "kept"]
    verify_chain(entries)
