"""The audit page's chain check is incremental: each load re-hashes the events added since the last one
and a window of older ones, never the whole chain, and still finds an edited event, a cut tail or a
chain re-hashed behind its back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from crypto.audit import AuditEntry
from sandbox_api.server.console.chain_watch import ChainWatch
from sandbox_api.server.deps import Services
from sandbox_api.server.store.models import AuditEventRow, AuditHeadRow
from tests.sandbox_api.api_helpers import World, world


@pytest.fixture
def api(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path / "state") as deployment:
        yield deployment


def _services(api: World) -> Services:
    services: Services = api.client.app.state.services  # type: ignore[attr-defined]
    return services


def _grow(services: Services, n: int) -> None:
    for i in range(n):
        services.audit.record(event="test.filler", actor="test", details={"i": i})


def test_each_load_re_hashes_the_new_events_and_one_window_not_the_whole_chain(
    api: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = _services(api)
    _grow(services, 40)
    watch = ChainWatch(window=10)
    first = watch.status(services)
    assert first["ok"], first
    count = first["count"]
    _grow(services, 3)
    hashed: list[int] = []
    real = AuditEntry.digest
    monkeypatch.setattr(AuditEntry, "digest", lambda self: hashed.append(self.seq) or real(self))
    second = watch.status(services)
    assert second["ok"]
    assert second["count"] == count + 3
    assert len(hashed) <= 3 + 10  # the new events and one window of old ones
    assert set(range(count, count + 3)) <= set(hashed)


def test_an_old_event_edited_after_it_was_verified_is_found_within_a_pass(api: World) -> None:
    services = _services(api)
    _grow(services, 40)
    watch = ChainWatch(window=10)
    first = watch.status(services)
    assert first["ok"]
    with services.db.write() as session:
        session.execute(update(AuditEventRow).where(AuditEventRow.seq == 5).values(details={"edited": True}))
    assert watch.status(services)["ok"]  # the window is past seq 5 now: not seen on this load
    loads = [watch.status(services) for _ in range(first["count"] // 10 + 1)]  # one whole pass
    problems = [s["problem"] for s in loads if not s["ok"]]
    assert problems
    assert "seq 5: event edited" in problems[0]


def test_a_cut_tail_is_refused_against_the_hash_remembered(api: World) -> None:
    services = _services(api)
    _grow(services, 10)
    watch = ChainWatch(window=1000)
    verified = watch.status(services)
    assert verified["ok"]
    last = verified["count"] - 1
    # Cut the last two events and point the stored head at the new end, as a careful intruder would.
    keep = services.audit.events(since_seq=last - 3, limit=1)[0]
    with services.db.write() as session:
        session.execute(delete(AuditEventRow).where(AuditEventRow.seq > keep.seq))
        session.execute(update(AuditHeadRow).values(seq=keep.seq, hash=keep.hash))
    status = watch.status(services)
    assert not status["ok"]
    assert "truncated or rewritten" in status["problem"]
    # Forgotten on failure: the next load verifies from genesis again (and finds the shorter chain whole).
    assert watch.status(services)["ok"]
