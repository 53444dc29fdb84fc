"""The access trace: every authenticated read under /v1, and every console page read, leaves a `read.*`
audit event, batched.

A new GET route fails ``test_every_get_route_has_a_read_event`` until it names its event in
``access_trace.READ_EVENTS`` (or a reason in ``UNTRACED``, for routes that need no token).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from crypto.audit import AuditEntry, verify_chain
from sandbox_api.server.access_trace import CONSOLE_READ_EVENTS, CONSOLE_UNTRACED, READ_EVENTS, UNTRACED
from sandbox_api.server.deps import Services
from sandbox_api.server.services.audit import AuditLog
from sandbox_api.server.services.read_buffer import PendingRead, ReadBuffer
from tests.sandbox_api.api_helpers import GOOD_SQL, SCOPE, World, world
from tests.sandbox_api.console_helpers import sign_in
from tests.sandbox_api.server.test_role_matrix import CONSOLE, CONSOLE_OPEN, MATRIX, PUBLIC, _routes


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("trace")) as deployment:
        yield deployment


def services_of(api: World) -> Services:
    services: Services = api.client.app.state.services  # type: ignore[attr-defined]
    return services


def reads(api: World, event: str = "read.") -> list[AuditEntry]:
    services = services_of(api)
    services.audit.flush_reads()
    return [e for e in services.audit.iter_all() if e.event.startswith(event)]


def test_every_get_route_has_a_read_event(api: World) -> None:
    gets = {key for key in _routes(api) if key[0] == "GET" and key[1].startswith("/v1/")}
    traced = {key for key in READ_EVENTS if key[0] == "GET"}
    assert gets - set(UNTRACED) == traced, "a GET route under /v1 needs an entry in READ_EVENTS"
    assert not set(UNTRACED) & set(READ_EVENTS)
    # Only routes that need no token go untraced: there is nobody to name and nothing protected.
    assert set(UNTRACED) <= PUBLIC
    assert len(set(READ_EVENTS.values())) == len(READ_EVENTS), "event names are unique"


@pytest.mark.parametrize("key", sorted(READ_EVENTS), ids=lambda key: f"{key[0]} {key[1]}")
def test_every_read_route_leaves_its_event(api: World, key: tuple[str, str]) -> None:
    path, body, allowed = MATRIX[key]
    who = sorted(allowed)[0]
    before = len(reads(api, READ_EVENTS[key]))
    kwargs: dict[str, Any] = {"headers": api.h(who)}
    if body is not None:
        kwargs["json"] = body
    status = api.client.request(key[0], path, **kwargs).status_code
    found = reads(api, READ_EVENTS[key])
    assert len(found) == before + 1
    event = found[-1]
    assert event.actor == who
    assert event.details["status"] == status
    assert set(event.details["path"].values()) <= set(path.split("/"))  # type: ignore[union-attr]


def test_a_refused_read_is_traced_too(api: World) -> None:
    assert api.client.get("/v1/audit/head", headers=api.h("alice")).status_code == 403
    event = reads(api, "read.audit.head")[-1]
    assert (event.actor, event.details["status"]) == ("alice", 403)


def test_asking_for_another_operators_job_answers_404_and_is_recorded(api: World) -> None:
    submitted = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL})
    job_id = submitted.json()["job_id"]
    for suffix, event in (("", "read.jobs.get"), ("/result", "read.jobs.result")):
        assert api.client.get(f"/v1/jobs/{job_id}{suffix}", headers=api.h("bob")).status_code == 404
        last = reads(api, event)[-1]
        assert last.actor == "bob"
        assert last.details["path"] == {"job_id": job_id}
        assert last.details["status"] == 404


def test_filters_are_recorded_and_undeclared_query_keys_are_not(api: World) -> None:
    answer = api.client.get(
        "/v1/jobs", headers=api.h("audra"), params={"state": "released", "limit": 5, "junk": "x" * 50}
    )
    assert answer.status_code == 200
    last = reads(api, "read.jobs.list")[-1]
    assert last.details["query"] == {"state": "released", "limit": "5"}


def test_a_dry_run_is_recorded_with_hashes_never_the_text(api: World) -> None:
    sql = GOOD_SQL + " -- marker-7f3a"
    answer = api.client.post("/v1/jobs/check", headers=api.h("alice"), json={"scope": SCOPE, "sql": sql})
    assert answer.status_code == 200
    last = reads(api, "read.jobs.check")[-1]
    assert last.details["scope"] == SCOPE
    assert last.details["allowed"] is True
    assert len(str(last.details["sql_sha256"])) == 64
    assert "marker-7f3a" not in last.to_json()


def test_a_read_does_not_wait_for_the_audit_write(api: World) -> None:
    audit = slow_log(services_of(api))
    audit.trace(event="read.test", actor="t", details={})

    def chained() -> int:
        return len([e for e in audit.iter_all() if e.event == "read.test"])

    # Queued, not chained: only a flush (or the window, a minute here) chains it.
    assert chained() == 0
    assert audit.flush_reads() == 1
    assert chained() == 1


def slow_log(services: Services, **overrides: Any) -> AuditLog:
    """A second view of the same chain whose reads wait a minute unless something flushes them."""
    values: dict[str, Any] = {"read_flush_ms": 60_000, "read_flush_events": 10_000, **overrides}
    return replace(services.audit, **values)


def test_batching_keeps_arrival_order_and_the_chain_verifies(api: World) -> None:
    audit = slow_log(services_of(api))
    threads = [
        threading.Thread(
            target=lambda t=t: [
                audit.trace(event="read.order", actor=f"t{t}", details={"i": i}) for i in range(25)
            ]
        )
        for t in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # A synchronous record chains the waiting reads first, in its own transaction.
    sync = audit.record(event="audit.read", actor="audra", details={"what": "order-test"})
    chained = [e for e in audit.iter_all() if e.event == "read.order"]
    assert len(chained) == 100
    assert all(e.seq < sync.seq for e in chained)
    for t in range(4):
        assert [e.details["i"] for e in chained if e.actor == f"t{t}"] == list(range(25))
    verify_chain(list(audit.iter_all()))


def test_a_full_batch_is_chained_without_waiting_for_the_window(api: World) -> None:
    audit = slow_log(services_of(api), read_flush_events=5)

    def chained() -> int:
        return len([e for e in audit.iter_all() if e.event == "read.full"])

    for i in range(5):
        audit.trace(event="read.full", actor="t", details={"i": i})
    deadline = time.monotonic() + 10  # the window is a minute: only the batch size can chain them
    while chained() < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert chained() == 5


def test_a_failed_write_puts_the_events_back_in_order() -> None:
    buffer = ReadBuffer(flush=lambda: None, window_s=60, max_events=100)
    first, second, third = (PendingRead(event=f"read.{n}", actor="t", details={}) for n in "abc")
    buffer._items.extend([first, second])  # no thread: the test drives the flushes itself
    taken: list[PendingRead] = []

    def failing_write() -> None:
        with buffer.taking() as waiting:
            taken.extend(waiting)
            buffer._items.append(third)  # arrived while the write was failing
            raise RuntimeError("database unavailable")

    with pytest.raises(RuntimeError):
        failing_write()
    assert taken == [first, second]
    with buffer.taking() as waiting:
        assert waiting == [first, second, third]


def test_shutdown_chains_what_is_still_waiting(tmp_path_factory: pytest.TempPathFactory) -> None:
    with world(tmp_path_factory.mktemp("shutdown"), audit_read_flush_ms=600_000) as deployment:
        services = services_of(deployment)
        assert deployment.client.get("/v1/whoami", headers=deployment.h("bob")).status_code == 200
        assert services.audit._reads.waiting() >= 1
    # The app has shut down (the test client left its lifespan): nothing waits, the event is chained.
    assert services.audit._reads.waiting() == 0
    whoami = [e for e in services.audit.iter_all() if e.event == "read.whoami" and e.actor == "bob"]
    assert len(whoami) == 1


def test_the_trace_can_be_turned_off(tmp_path_factory: pytest.TempPathFactory) -> None:
    with world(tmp_path_factory.mktemp("off"), audit_read_trace=False) as deployment:
        assert deployment.client.get("/v1/whoami", headers=deployment.h("bob")).status_code == 200
        services = services_of(deployment)
        services.audit.flush_reads()
        assert not [e for e in services.audit.iter_all() if e.event.startswith("read.")]


def test_a_batch_signs_the_checkpoints_one_append_at_a_time_would(api: World) -> None:
    audit = slow_log(services_of(api), checkpoint_every=7)
    for i in range(30):
        audit.trace(event="read.batch", actor="t", details={"i": i})
    assert audit.flush_reads() == 30
    batch = [e for e in audit.iter_all() if e.event == "read.batch"]
    assert [e.details["i"] for e in batch] == list(range(30))
    expected = {e.seq for e in batch if (e.seq + 1) % 7 == 0}
    signed = {c.seq for c in audit.checkpoints(since_seq=batch[0].seq - 1, limit=1000)}
    assert expected <= signed
    report = verify_chain(list(audit.iter_all()), checkpoints=audit.checkpoints(limit=10_000))
    assert report.last_seq >= batch[-1].seq


def test_text_that_is_not_unicode_cannot_jam_the_queue(api: World) -> None:
    # A dry run naming a scope with a lone surrogate: the trace records it; chaining must not fail on
    # it (a failed batch is put back, so one such read would block every audit write after it).
    body = b'{"scope": "\\ud800", "sql": "SELECT 1"}'
    headers = {**api.h("alice"), "Content-Type": "application/json"}
    assert api.client.post("/v1/jobs/check", content=body, headers=headers).status_code in (403, 404, 422)
    assert api.client.get("/v1/audit/head", headers=api.h("audra")).status_code == 200
    last = reads(api, "read.jobs.check")[-1]
    assert last.details["scope"] == "\\ud800"


# -- the console: the same reads through web pages leave the same trace ---------------------------------


def test_every_console_page_has_a_read_event_or_a_reason(api: World) -> None:
    pages = {key for key in _routes(api) if key[1].startswith("/console") and key in CONSOLE}
    gets = {key for key in pages if key[0] == "GET"}
    assert gets - set(CONSOLE_UNTRACED) == {k for k in CONSOLE_READ_EVENTS if k[0] == "GET"}, (
        "a console page needs an entry in CONSOLE_READ_EVENTS (or a reason in CONSOLE_UNTRACED)"
    )
    # Untraced pages are the ones a signed-out visitor may open: nothing protected, nobody to name.
    assert set(CONSOLE_UNTRACED) - {("GET", "/console")} <= CONSOLE_OPEN


@pytest.mark.parametrize(
    "key", sorted(k for k in CONSOLE_READ_EVENTS if k[0] == "GET"), ids=lambda key: f"{key[0]} {key[1]}"
)
def test_every_console_page_leaves_its_event_naming_the_signed_in_principal(
    api: World, key: tuple[str, str]
) -> None:
    path, allowed = CONSOLE[key]
    who = sorted(allowed)[0]
    session = sign_in(api.client, api.tokens[who])
    before = len(reads(api, CONSOLE_READ_EVENTS[key]))
    status = session.get(api.client, path).status_code
    found = reads(api, CONSOLE_READ_EVENTS[key])
    assert len(found) == before + 1
    assert (found[-1].actor, found[-1].details["status"]) == (who, status)


def test_an_admin_reading_a_job_on_the_console_is_traced_with_its_id(api: World) -> None:
    answer = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL})
    job_id = answer.json()["job_id"]
    api.wait(job_id)
    admin = sign_in(api.client, api.tokens["admin"])
    assert admin.get(api.client, f"/console/jobs/{job_id}").status_code == 200
    last = reads(api, "read.console.jobs.get")[-1]
    assert (last.actor, last.details["path"]) == ("admin", {"job_id": job_id})


def test_a_console_dry_run_is_recorded_with_hashes_never_the_text(api: World) -> None:
    alice = sign_in(api.client, api.tokens["alice"])
    sql = GOOD_SQL + " -- marker-c0n5"
    answer = alice.post(api.client, "/console/jobs/check", {"scope": SCOPE, "sql": sql})
    assert answer.status_code == 200
    last = reads(api, "read.jobs.check")[-1]
    assert (last.actor, last.details["scope"], last.details["allowed"]) == ("alice", SCOPE, True)
    assert len(str(last.details["sql_sha256"])) == 64
    assert "marker-c0n5" not in last.to_json()
