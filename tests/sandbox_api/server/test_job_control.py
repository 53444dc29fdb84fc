"""Cancel (queued and running), the wall-clock timeout, and the scope re-check when a job starts.

The executor is the real local sandbox behind a gate the test opens, so the order of events is
deterministic: a job held at the gate is "running" for the service, the next one waits in the queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from crypto.keyring import KeyProvider
from executors.base import Executor, JobSpec, ResultTable
from executors.errors import ExecutionCancelled
from executors.local import LocalExecutor
from sandbox_api.server.settings import Settings
from sandbox_api.server.store.db import open_database
from sandbox_api.server.store.models import JobRow
from tests.sandbox_api.api_helpers import GOOD_SQL, SCOPE, World, world
from tests.sandbox_api.stores import NewStore, on_both_stores

store = on_both_stores

# Runs for minutes unless stopped: proves the timeout and cancel reach the sandbox process.
ENDLESS = "SELECT COUNT(*) AS n, 100 AS _sbx_units FROM range(1000000000000) t(i)"


class GatedExecutor:
    """The real LocalExecutor, with jobs held before they start until the test opens the gate."""

    def __init__(self, inner: LocalExecutor) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.waiting = threading.Semaphore(0)
        self.cancelled: set[str] = set()
        self.endless: set[str] = set()  # job ids whose SQL the test swaps for ENDLESS
        self.finished: list[str] = []  # job ids whose run returned

    def run(self, spec: JobSpec) -> ResultTable:
        self.waiting.release()
        while not self.gate.wait(0.02):
            if spec.job_id in self.cancelled:
                raise ExecutionCancelled(f"job {spec.job_id} was cancelled before it started")
        if spec.job_id in self.endless:
            spec = replace(spec, sql=ENDLESS)
        try:
            return self.inner.run(spec)
        finally:
            self.finished.append(spec.job_id)

    def cancel(self, job_id: str) -> bool:
        self.cancelled.add(job_id)
        return self.inner.cancel(job_id) or True

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def gated(tmp_path_factory: pytest.TempPathFactory, store: NewStore) -> Iterator[tuple[World, GatedExecutor]]:
    holder: list[GatedExecutor] = []

    def factory(keys: KeyProvider, settings: Settings) -> Executor:
        holder.append(GatedExecutor(LocalExecutor(key_provider=keys, max_workers=1)))
        return holder[0]

    state = tmp_path_factory.mktemp("state")
    with world(
        state, executor_factory=factory, max_concurrent_jobs=1, job_timeout_s=2, database_url=store()
    ) as api:
        yield api, holder[0]


def _submit(api: World) -> str:
    answer = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["job_id"])


def _cancel(api: World, job_id: str) -> dict[str, object]:
    answer = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=api.h("alice"))
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def test_a_queued_job_is_cancelled_at_once_and_the_running_one_still_finishes(
    gated: tuple[World, GatedExecutor],
) -> None:
    api, executor = gated
    first = _submit(api)
    assert executor.waiting.acquire(timeout=10)  # the first job holds the only worker
    second = _submit(api)
    assert api.client.get(f"/v1/jobs/{second}", headers=api.h("alice")).json()["state"] == "queued"
    assert _cancel(api, second)["stopping"] is False
    executor.gate.set()
    assert api.wait(first)["state"] == "released"
    job = api.wait(second)
    assert job["state"] == "cancelled"
    assert "alice" in job["reason"]
    assert [e["details"]["job"] for e in api.audit_events("job.cancelled")] == [second]


def test_cancel_reaches_a_running_job_and_nothing_is_released(gated: tuple[World, GatedExecutor]) -> None:
    api, executor = gated
    job_id = _submit(api)
    assert executor.waiting.acquire(timeout=10)
    assert _cancel(api, job_id)["stopping"] is True
    job = api.wait(job_id)
    assert job["state"] == "cancelled"
    result = api.client.get(f"/v1/jobs/{job_id}/result", headers=api.h("alice"))
    assert result.status_code == 409
    assert [e["details"]["job"] for e in api.audit_events("job.cancel.requested")] == [job_id]


def test_a_job_past_its_time_limit_is_killed_and_fails_with_the_reason(
    gated: tuple[World, GatedExecutor],
) -> None:
    api, executor = gated
    executor.gate.set()
    answer = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL})
    job_id = str(answer.json()["job_id"])
    # Too late to swap this one (it may already run); the next job is the endless one.
    api.wait(job_id)
    executor.gate.clear()
    slow = _submit(api)
    executor.endless.add(slow)
    assert executor.waiting.acquire(timeout=10)
    assert executor.waiting.acquire(timeout=10)
    executor.gate.set()
    job = api.wait(slow, timeout_s=60)
    assert job["state"] == "failed"
    assert "execution-timeout" in job["reason"]
    assert executor.inner.running() == {}  # the sandbox process is gone


def test_a_scope_revoked_while_the_job_waits_stops_it_from_starting(
    gated: tuple[World, GatedExecutor],
) -> None:
    api, executor = gated
    first = _submit(api)
    assert executor.waiting.acquire(timeout=10)
    waiting = _submit(api)
    revoked = api.client.post(
        f"/v1/scopes/{SCOPE}/versions/{api.scope_version}/revoke",
        headers=api.h("oscar"),
        json={"reason": "the study's licence was withdrawn"},
    )
    assert revoked.status_code == 200, revoked.text
    executor.gate.set()
    api.wait(first)
    job = api.wait(waiting)
    assert job["state"] in {"failed", "expired"}
    assert "revoked" in job["reason"] or "not active" in job["reason"], job["reason"]
    assert api.client.get(f"/v1/jobs/{waiting}/result", headers=api.h("alice")).status_code == 409


def test_a_stale_attempt_does_not_settle_a_job_claimed_again(gated: tuple[World, GatedExecutor]) -> None:
    api, executor = gated
    job_id = _submit(api)
    assert executor.waiting.acquire(timeout=10)  # attempt 1 is running
    db = open_database(api.settings.resolved_database_url)
    try:
        with db.write() as session:  # as if another gateway had recovered the job and claimed it again
            row = session.get(JobRow, job_id)
            assert row is not None
            row.attempts += 1
    finally:
        db.dispose()
    executor.gate.set()
    deadline = time.monotonic() + 30
    while not executor.finished:
        assert time.monotonic() < deadline, "attempt 1 never finished"
        time.sleep(0.02)
    time.sleep(0.5)  # what attempt 1's worker does next would commit within milliseconds
    job = api.client.get(f"/v1/jobs/{job_id}", headers=api.h("alice")).json()
    assert job["state"] == "running"  # left to the attempt that holds it now
    assert api.client.get(f"/v1/jobs/{job_id}/result", headers=api.h("alice")).status_code == 409
    assert job_id not in [e["details"]["job"] for e in api.audit_events("job.released")]
