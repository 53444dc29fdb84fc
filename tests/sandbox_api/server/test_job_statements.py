"""What one small job costs the metadata store, in SQL statements, on both stores.

On a networked store (PostgreSQL) every statement is a round trip, so a small job's latency there is
mostly its statement count: these figures may only go down. A change that adds a statement to a job's
path fails here, with the statements listed; lower the figures when a change saves some.

Counted with SQLAlchemy's ``before_cursor_execute`` event on the gateway's engine (a listener, nothing
patched), per phase of one small SQL job (after a first job has warmed the caches up):

- the submission: the ``POST /v1/jobs`` request, from the token to the commit;
- the runner's claim and the reads before the job runs (the executor holds the job until let go);
- the settlement: checking and released in one transaction, one flush, and the lease let go;
- the long-poll: answered from the settling commit's signal, with no read of the job after it.

The runner's queue polls are left out: an idle runner thread polls on a timer, so how many fall in a
window depends on the machine's speed, not on the job. Background threads (usage alerts, the audit of
reads) are left out too: they run after the job, off its path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from crypto.keyring import KeyProvider
from executors.base import Executor, JobSpec, ResultTable
from executors.local import LocalExecutor
from sandbox_api.server.services import job_queries
from sandbox_api.server.settings import Settings
from tests.sandbox_api.api_helpers import GOOD_SQL, SCOPE, World, world
from tests.sandbox_api.stores import NewStore, on_both_stores

store = on_both_stores

RUNNER = "sandbox-job-runner"
# The statement an idle runner polls the queue with (also a claim's first): timer-driven, left out.
QUEUE_POLL = "WITH waiting AS (SELECT jobs.id AS id, jobs.owner AS owner, jobs.created_at AS created_at"

# SQLite's transactions start with an explicit BEGIN statement, in process (no round trip): left out,
# so that both stores count the same statements.
_SQLITE_BEGINS = frozenset({"BEGIN", "BEGIN IMMEDIATE"})

# The figures this code meets, per store: PostgreSQL also takes and lets go of the job's lease (an
# advisory lock on a connection of its own, store/leases.py), which SQLite needs not.
SUBMIT = {"sqlite": 9, "postgresql": 9}
CLAIM_AND_READS = {"sqlite": 8, "postgresql": 9}
SETTLE = {"sqlite": 11, "postgresql": 12}


class _HeldExecutor:
    """The real LocalExecutor; each job waits for ``gate`` before it runs."""

    def __init__(self, inner: LocalExecutor) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)

    def run(self, spec: JobSpec) -> ResultTable:
        self.started.release()
        self.gate.wait(60)
        return self.inner.run(spec)

    def cancel(self, job_id: str) -> bool:
        return False

    def close(self) -> None:
        self.inner.close()


@dataclass
class _Statements:
    """Every statement the gateway's engine executes while ``on``, with the thread that ran it."""

    seen: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        with self.lock:
            self.seen.append((threading.current_thread().name, " ".join(statement.split())))

    def take(self) -> list[tuple[str, str]]:
        with self.lock:
            taken, self.seen = self.seen, []
        return taken


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, store: NewStore
) -> Iterator[tuple[World, _HeldExecutor, _Statements]]:
    holder: list[_HeldExecutor] = []

    def factory(keys: KeyProvider, settings: Settings) -> Executor:
        holder.append(_HeldExecutor(LocalExecutor(key_provider=keys, max_workers=1)))
        return holder[0]

    with world(
        tmp_path_factory.mktemp("state"),
        database_url=store(),
        executor_factory=factory,
        max_concurrent_jobs=1,
    ) as api:
        executor = holder[0]
        executor.gate.set()
        warm = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL})
        assert api.wait(warm.json()["job_id"])["state"] == "released"
        assert executor.started.acquire(timeout=30)
        executor.gate.clear()
        statements = _Statements()
        engine = api.client.app.state.services.jobs.db.engine  # type: ignore[attr-defined]
        event.listen(engine, "before_cursor_execute", statements.note)
        try:
            yield api, executor, statements
        finally:
            event.remove(engine, "before_cursor_execute", statements.note)
            executor.gate.set()


def _store_name(api: World) -> str:
    return "postgresql" if api.settings.database_url else "sqlite"


def _on_job_path(seen: list[tuple[str, str]], *, runner: bool) -> list[str]:
    """The statements of the runner's threads (or of the request threads), queue polls left out."""
    return [
        statement
        for thread, statement in seen
        if thread.startswith(RUNNER) == runner
        and not statement.startswith(QUEUE_POLL)
        and statement not in _SQLITE_BEGINS
        and (runner or not thread.startswith(("usage-alerts", "audit-read-trace")))
    ]


def _released_at(seen: list[tuple[str, str]]) -> int | None:
    return next((i for i, (_t, s) in enumerate(seen) if s.startswith("INSERT INTO results")), None)


def _runner_idle(statements: _Statements, *, timeout_s: float = 30.0) -> list[tuple[str, str]]:
    """What was executed until the runner, done with the job (its lease let go), polled the queue."""
    seen: list[tuple[str, str]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen.extend(statements.take())
        released = _released_at(seen)
        if released is not None and any(
            t.startswith(RUNNER) and s.startswith(QUEUE_POLL) for t, s in seen[released:]
        ):
            return seen
        time.sleep(0.02)
    raise AssertionError("the runner did not go back to the queue after settling the job")


def _listed(statements: list[str]) -> str:
    return "\n".join(f"  {s[:140]}" for s in statements)


def test_a_small_job_costs_the_store_no_more_statements_than_it_does_now(
    deployment: tuple[World, _HeldExecutor, _Statements], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, executor, statements = deployment
    # The long-poll's periodic re-read (for changes of other gateways) out of the way: what it reads
    # once the job settles is then only what answering from the signal costs.
    monkeypatch.setattr(job_queries, "WAIT_RECHECK_S", 60.0)
    name = _store_name(api)
    statements.take()

    # The submission: the request's statements, whatever the runner does meanwhile.
    submitted = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    assert executor.started.acquire(timeout=30)  # claimed, and its inputs read: held before it runs
    seen = statements.take()
    submit = _on_job_path(seen, runner=False)
    claim = _on_job_path(seen, runner=True)

    # The long-poll waits on the held job; the settlement's commit answers it.
    answers: list[httpx.Response] = []
    poll = threading.Thread(
        target=lambda: answers.append(
            api.client.get(f"/v1/jobs/{job_id}", headers=api.h("alice"), params={"wait": 30})
        )
    )
    poll.start()
    time.sleep(0.3)  # the long-poll has read the job once and waits for the signal
    statements.take()
    executor.gate.set()
    poll.join(60)
    assert len(answers) == 1
    assert answers[0].json()["state"] == "released", answers[0].text
    seen = _runner_idle(statements)
    settle = _on_job_path(seen, runner=True)
    read_after_release = _on_job_path(seen[_released_at(seen) or 0 :], runner=False)

    assert len(submit) <= SUBMIT[name], f"submit: {len(submit)} statements\n{_listed(submit)}"
    assert len(claim) <= CLAIM_AND_READS[name], f"claim: {len(claim)} statements\n{_listed(claim)}"
    assert len(settle) <= SETTLE[name], f"settle: {len(settle)} statements\n{_listed(settle)}"
    # One flush: the job row is updated once, the audit chain's head once, its events in one insert.
    settle_writes = [s.split(" SET ")[0].split(" (")[0] for s in settle if s.startswith(("UPDATE", "INSERT"))]
    assert settle_writes.count("UPDATE jobs") == 1, _listed(settle)
    assert settle_writes.count("UPDATE audit_head") == 1, _listed(settle)
    assert settle_writes.count("INSERT INTO audit_events") == 1, _listed(settle)
    # The signal carried the job as committed: the long-poll answered without reading it again.
    assert read_after_release == [], _listed(read_after_release)
