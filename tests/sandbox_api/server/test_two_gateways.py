"""Two gateways on one PostgreSQL database: no job runs twice, none is released twice, none is lost.

Each gateway claims with ``FOR UPDATE SKIP LOCKED`` and holds a lease (an advisory lock) on every job it
runs; a gateway that starts while the other is busy leaves the other's running jobs alone.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from crypto.audit import AuditEntry, verify_chain
from crypto.keyring import KeyProvider
from executors.base import Executor, JobSpec, ResultTable
from executors.local import LocalExecutor
from sandbox_api.server.app import create_app
from sandbox_api.server.settings import Settings
from tests.sandbox_api.api_helpers import GOOD_SQL, SCOPE, World, wait_for_job, world
from tests.sandbox_api.postgres_cluster import PostgresCluster

JOBS = 200


class CountingExecutor:
    """The real LocalExecutor; counts every run by job id in one counter shared by both gateways, and
    holds each run at a gate while the test keeps it closed."""

    def __init__(self, inner: LocalExecutor, shared: Shared) -> None:
        self.inner, self.shared = inner, shared

    def run(self, spec: JobSpec) -> ResultTable:
        with self.shared.lock:
            self.shared.runs[spec.job_id] += 1
        self.shared.entered.release()
        assert self.shared.gate.wait(120), "the test never opened the gate"
        return self.inner.run(spec)

    def cancel(self, job_id: str) -> bool:
        return self.inner.cancel(job_id)

    def close(self) -> None:
        self.inner.close()


@dataclass
class Shared:
    runs: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    gate: threading.Event = field(default_factory=threading.Event)
    entered: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def executor(self, keys: KeyProvider, settings: Settings) -> Executor:
        return CountingExecutor(LocalExecutor(key_provider=keys, max_workers=2), self)


@pytest.fixture
def shared() -> Shared:
    return Shared()


@pytest.fixture
def first(tmp_path: Path, postgres: PostgresCluster, shared: Shared) -> Iterator[World]:
    with world(
        tmp_path / "state",
        executor_factory=shared.executor,
        database_url=postgres.new_database(),
        queue_limit=1000,
        quota_queued_jobs=1000,
        quota_jobs_per_hour=1000,
        quota_concurrent_jobs=4,
    ) as api:
        yield api


def test_two_gateways_run_and_release_each_of_200_jobs_exactly_once(first: World, shared: Shared) -> None:
    shared.gate.set()
    with TestClient(create_app(first.settings, executor_factory=shared.executor)) as second:
        gateways = (first.client, second)
        headers = first.h("alice")

        def submit(index: int) -> str:
            sql = f"{GOOD_SQL} HAVING COUNT(*) > {index % 7}"
            answer = gateways[index % 2].post("/v1/jobs", headers=headers, json={"scope": SCOPE, "sql": sql})
            assert answer.status_code == 202, answer.text
            job_id: str = answer.json()["job_id"]
            return job_id

        with ThreadPoolExecutor(8) as pool:
            jobs = list(pool.map(submit, range(JOBS)))
        final = {job: wait_for_job(second, headers, job, timeout_s=600) for job in jobs}
        export = second.get("/v1/audit/export", headers=first.h("audra")).text

    assert Counter(view["state"] for view in final.values()) == Counter({"released": JOBS})
    assert shared.runs == Counter(dict.fromkeys(jobs, 1))  # no job ran twice
    assert all(view["attempts"] == 1 for view in final.values())
    entries = [AuditEntry.from_json(line) for line in export.splitlines()]
    verify_chain(entries)
    released = Counter(e.details["job"] for e in entries if e.event == "job.released")
    assert released == Counter(dict.fromkeys(jobs, 1))  # none released twice


def test_a_gateway_that_starts_leaves_the_other_gateways_running_job_alone(
    first: World, shared: Shared
) -> None:
    """The second gateway's start-up recovery re-queues orphaned jobs only: the first gateway is alive
    and running this one (held at the gate, its lease held), so it must stay running, attempt 1."""
    headers = first.h("alice")
    answer = first.client.post("/v1/jobs", headers=headers, json={"scope": SCOPE, "sql": GOOD_SQL})
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job_id"]
    assert shared.entered.acquire(timeout=60)  # the first gateway is running it
    with TestClient(create_app(first.settings, executor_factory=shared.executor)) as second:
        during = second.get(f"/v1/jobs/{job_id}", headers=headers).json()
        shared.gate.set()
        view = wait_for_job(second, headers, job_id)
        events = second.get("/v1/audit/export", headers=first.h("audra")).text
    assert (during["state"], during["attempts"]) == ("running", 1)
    assert (view["state"], view["attempts"]) == ("released", 1)
    assert shared.runs[job_id] == 1
    assert '"job.requeued"' not in events
