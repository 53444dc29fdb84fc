"""JobSignals: waiters are told after a commit, never before it and never for a rollback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from sandbox_api.server.services.job_signals import JobSignals


@pytest.fixture
def session() -> Iterator[Session]:
    sessions = sessionmaker(create_engine("sqlite://"))
    with sessions() as opened:
        yield opened


def _change(session: Session, signals: JobSignals[str], job_id: str, snapshot: str) -> None:
    """A transaction that changed ``job_id`` (the statement stands for the transition's writes)."""
    session.execute(text("SELECT 1"))
    signals.notify_after_commit(session, job_id, lambda: snapshot)


def test_waiters_hear_of_a_change_only_once_it_commits(session: Session) -> None:
    signals: JobSignals[str] = JobSignals()
    heard: list[str | None] = []
    with signals.subscribe("j1", heard.append):
        _change(session, signals, "j1", "released")
        assert heard == []
        session.commit()
        assert heard == ["released"]
        _change(session, signals, "j1", "rolled back")
        session.rollback()
        session.execute(text("SELECT 1"))
        session.commit()  # a later commit of the same session does not replay the rolled-back change
    assert heard == ["released"]


def test_only_the_changed_jobs_waiters_hear_and_not_after_they_left(session: Session) -> None:
    signals: JobSignals[str] = JobSignals()
    first: list[str | None] = []
    second: list[str | None] = []
    with signals.subscribe("j1", first.append), signals.subscribe("j2", second.append):
        _change(session, signals, "j1", "j1 released")
        session.commit()
    _change(session, signals, "j1", "j1 again")
    session.commit()
    assert first == ["j1 released"]
    assert second == []


def test_one_failing_waiter_neither_fails_the_commit_nor_silences_the_others(session: Session) -> None:
    signals: JobSignals[str] = JobSignals()
    heard: list[str | None] = []

    def gone(_snapshot: str | None) -> None:
        raise RuntimeError("event loop is closed")

    with signals.subscribe("j1", gone), signals.subscribe("j1", heard.append):
        _change(session, signals, "j1", "released")
        session.commit()
    assert heard == ["released"]


def test_a_snapshot_that_cannot_be_taken_still_wakes_the_waiters(session: Session) -> None:
    signals: JobSignals[str] = JobSignals()
    heard: list[str | None] = []

    def broken() -> str:
        raise LookupError("expired attribute")

    with signals.subscribe("j1", heard.append):
        session.execute(text("SELECT 1"))
        signals.notify_after_commit(session, "j1", broken)
        session.commit()
    assert heard == [None]  # the waiter reads the job itself


def test_no_snapshot_is_built_when_nobody_waits(session: Session) -> None:
    signals: JobSignals[str] = JobSignals()
    built: list[str] = []

    def snapshot() -> str:
        built.append("built")
        return "released"

    session.execute(text("SELECT 1"))
    signals.notify_after_commit(session, "j1", snapshot)
    session.commit()
    assert built == []
