"""The audit chain stays one valid chain when 100 operators submit at the same moment."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from crypto.audit import AuditEntry, verify_chain
from tests.sandbox_api.api_helpers import GOOD_SQL, SCOPE, World, world
from tests.sandbox_api.stores import NewStore, on_both_stores

store = on_both_stores

SUBMITTERS = 100


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory, store: NewStore) -> Iterator[World]:
    # One principal submits them all: its own queue quota is raised with the deployment's.
    with world(
        tmp_path_factory.mktemp("busy"),
        queue_limit=1000,
        quota_queued_jobs=1000,
        audit_checkpoint_every=50,
        database_url=store(),
    ) as deployment:
        yield deployment


def test_100_concurrent_submitters_leave_one_valid_chain(busy: World) -> None:
    start = threading.Barrier(SUBMITTERS)
    headers = busy.h("alice")

    def submit(index: int) -> int:
        start.wait()
        sql = f"{GOOD_SQL} HAVING COUNT(*) > {index}"
        return int(
            busy.client.post("/v1/jobs", headers=headers, json={"scope": SCOPE, "sql": sql}).status_code
        )

    with ThreadPoolExecutor(max_workers=SUBMITTERS) as pool:
        statuses = list(pool.map(submit, range(SUBMITTERS)))
    assert statuses == [202] * SUBMITTERS

    export = busy.client.get("/v1/audit/export", headers=busy.h("audra"))
    entries = [AuditEntry.from_json(line) for line in export.text.splitlines()]
    report = verify_chain(entries)
    assert [e.seq for e in entries] == list(range(report.count))
    submitted = [e for e in entries if e.event == "job.submitted"]
    assert len({e.details["job"] for e in submitted}) == SUBMITTERS
    queued = {e.details["job"] for e in entries if e.event == "job.queued"}
    assert {e.details["job"] for e in submitted} == queued
    head = busy.client.get("/v1/audit/head", headers=busy.h("audra")).json()
    assert head["count"] >= report.count
    assert head["count"] >= 50  # at least one signed checkpoint was stored on the way
