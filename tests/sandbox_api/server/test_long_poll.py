"""Long-poll on ``GET /v1/jobs/{id}?wait=``, and the output check committed together with the release.

The executor is the real local sandbox behind a gate the test opens, so a job can be held "running"
for as long as a test needs; its ``cancel`` cannot stop a job (the sandbox runs to the end), which
lets a cancel request land while the job's output is being checked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import asdict

import httpx
import pytest

from crypto.keyring import KeyProvider
from executors.base import Executor, JobSpec, ResultTable
from executors.local import LocalExecutor
from sandbox_api.server.services.job_views import CommittedJob
from sandbox_api.server.services.jobs import JobView
from sandbox_api.server.settings import Settings
from tests.sandbox_api.api_helpers import GOOD_SQL, SCOPE, World, world

# Generous bounds: the machine running the tests may be busy; "early" is still far below the limit.
LONG_WAIT_S = 20.0
EARLY_S = 8.0


class HeldExecutor:
    """The real LocalExecutor; each job waits for ``gate`` before it starts, and cannot be cancelled."""

    def __init__(self, inner: LocalExecutor) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)
        self.cancel_asked: list[str] = []

    def run(self, spec: JobSpec) -> ResultTable:
        self.started.release()
        self.gate.wait(60)
        return self.inner.run(spec)

    def cancel(self, job_id: str) -> bool:
        self.cancel_asked.append(job_id)
        return False

    def close(self) -> None:
        self.gate.set()
        self.inner.close()


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, HeldExecutor]]:
    holder: list[HeldExecutor] = []

    def factory(keys: KeyProvider, settings: Settings) -> Executor:
        holder.append(HeldExecutor(LocalExecutor(key_provider=keys, max_workers=1)))
        return holder[0]

    with world(tmp_path_factory.mktemp("state"), executor_factory=factory, max_concurrent_jobs=1) as api:
        yield api, holder[0]


@pytest.fixture
def gate(held: tuple[World, HeldExecutor]) -> Iterator[tuple[World, HeldExecutor]]:
    """The module's deployment with the gate closed; afterwards opened, and every job left to finish."""
    api, executor = held
    executor.gate.clear()
    yield api, executor
    executor.gate.set()
    for job in api.client.get("/v1/jobs", headers=api.h("alice")).json()["jobs"]:
        api.wait(job["job_id"])
    while executor.started.acquire(blocking=False):  # starts no test waited for
        pass


def _submit(api: World) -> str:
    answer = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["job_id"])


def _poll(api: World, job_id: str, *, who: str = "alice", wait: float | str | None = None) -> httpx.Response:
    params = {} if wait is None else {"wait": wait}
    answer: httpx.Response = api.client.get(f"/v1/jobs/{job_id}", headers=api.h(who), params=params)
    return answer


def _held_running(api: World, executor: HeldExecutor) -> str:
    """A job that the gate holds in ``running``."""
    job_id = _submit(api)
    assert executor.started.acquire(timeout=30)
    assert _poll(api, job_id).json()["state"] == "running"
    return job_id


def test_long_poll_answers_as_soon_as_the_job_is_released(gate: tuple[World, HeldExecutor]) -> None:
    api, executor = gate
    job_id = _held_running(api, executor)
    answers: list[tuple[httpx.Response, float]] = []

    def long_poll() -> None:
        answer = _poll(api, job_id, wait=LONG_WAIT_S)
        answers.append((answer, time.monotonic()))

    waiter = threading.Thread(target=long_poll)
    waiter.start()
    time.sleep(0.5)
    assert answers == []  # still waiting: a running job does not end the wait
    opened = time.monotonic()
    executor.gate.set()
    waiter.join(LONG_WAIT_S + 10)
    (answer, answered), *_ = answers
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "released"
    assert answered - opened < EARLY_S
    # The long-poll's answer is the job as stored: the same as a plain read now.
    assert answer.json() == _poll(api, job_id).json()


def test_long_poll_answers_the_current_state_when_the_wait_runs_out(
    gate: tuple[World, HeldExecutor],
) -> None:
    api, executor = gate
    job_id = _held_running(api, executor)
    began = time.monotonic()
    answer = _poll(api, job_id, wait=1)
    took = time.monotonic() - began
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "running"
    assert 0.95 <= took < 1 + EARLY_S


def test_a_settled_job_and_wait_zero_answer_at_once(gate: tuple[World, HeldExecutor]) -> None:
    api, executor = gate
    executor.gate.set()
    job_id = _submit(api)
    assert _poll(api, job_id, wait=LONG_WAIT_S).json()["state"] == "released"
    began = time.monotonic()
    assert _poll(api, job_id, wait=LONG_WAIT_S).json()["state"] == "released"
    assert _poll(api, job_id, wait=0).json() == _poll(api, job_id).json()
    assert time.monotonic() - began < EARLY_S


def test_a_cancel_ends_the_wait_of_a_queued_job(gate: tuple[World, HeldExecutor]) -> None:
    api, executor = gate
    _held_running(api, executor)
    queued = _submit(api)
    answers: list[httpx.Response] = []
    waiter = threading.Thread(target=lambda: answers.append(_poll(api, queued, wait=LONG_WAIT_S)))
    began = time.monotonic()
    waiter.start()
    time.sleep(0.3)
    cancelled = api.client.post(f"/v1/jobs/{queued}/cancel", headers=api.h("alice"))
    assert cancelled.status_code == 200, cancelled.text
    waiter.join(LONG_WAIT_S + 10)
    assert answers[0].json()["state"] == "cancelled"
    assert time.monotonic() - began < EARLY_S


@pytest.mark.parametrize("wait", ["-1", "30.5", "1e9", "abc", "nan", "inf", ""])
def test_a_bad_wait_is_refused_with_a_problem(held: tuple[World, HeldExecutor], wait: str) -> None:
    api, _ = held
    answer = _poll(api, "0" * 32, wait=wait)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["code"] == "request-invalid"
    assert [f["fragment"] for f in problem["findings"]] == ["query.wait"]


@pytest.mark.parametrize("who", ["alice", "bob", "admin", "audra", "chad", "olga", "stu"])
def test_long_poll_shows_a_job_to_exactly_whom_a_plain_read_does(
    gate: tuple[World, HeldExecutor], who: str
) -> None:
    api, executor = gate
    executor.gate.set()
    job_id = _submit(api)  # alice's
    assert _poll(api, job_id, wait=LONG_WAIT_S).json()["state"] == "released"
    plain = _poll(api, job_id, who=who)
    began = time.monotonic()
    waited = _poll(api, job_id, who=who, wait=LONG_WAIT_S)
    assert time.monotonic() - began < EARLY_S  # a refusal does not wait either
    assert (waited.status_code, waited.json()) == (plain.status_code, plain.json())
    expected = {"alice": 200, "admin": 200, "audra": 200, "bob": 404}.get(who, 403)
    assert waited.status_code == expected


def test_another_operators_running_job_is_not_found_at_once(gate: tuple[World, HeldExecutor]) -> None:
    api, executor = gate
    job_id = _held_running(api, executor)
    began = time.monotonic()
    answer = _poll(api, job_id, who="bob", wait=LONG_WAIT_S)
    assert time.monotonic() - began < EARLY_S
    assert answer.status_code == 404
    assert answer.json() == _poll(api, job_id, who="bob").json()
    assert answer.json()["code"] == "not-found"


def test_a_cancel_during_the_output_check_wins_and_nothing_is_released(
    gate: tuple[World, HeldExecutor],
) -> None:
    api, executor = gate
    job_id = _held_running(api, executor)
    cancel = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=api.h("alice"))
    assert cancel.json()["stopping"] is True
    assert executor.cancel_asked[-1] == job_id  # the sandbox could not be stopped: it runs to the end
    executor.gate.set()
    job = _poll(api, job_id, wait=LONG_WAIT_S).json()
    assert job["state"] == "cancelled"
    assert api.client.get(f"/v1/jobs/{job_id}/result", headers=api.h("alice")).status_code == 409
    events = [e["event"] for e in api.audit_events("job.") if e["details"].get("job") == job_id]
    assert events[-1] == "job.cancelled"
    assert "job.checking" not in events
    assert "job.released" not in events


def test_waiters_are_signalled_once_with_the_committed_job_when_it_settles(
    gate: tuple[World, HeldExecutor],
) -> None:
    api, executor = gate
    jobs = api.client.app.state.services.jobs  # type: ignore[attr-defined]
    running = _held_running(api, executor)
    queued = _submit(api)
    signalled: list[JobView | None] = []
    done = threading.Event()

    def wake(committed: CommittedJob | None) -> None:
        signalled.append(None if committed is None else committed.view)
        done.set()

    with jobs.signals.subscribe(running, wake), jobs.signals.subscribe(queued, wake):
        cancelled = api.client.post(f"/v1/jobs/{queued}/cancel", headers=api.h("alice"))
        # Signalled from the committing thread before the cancel's answer was sent.
        assert cancelled.status_code == 200
        assert [(v.job_id, v.state) for v in signalled if v is not None] == [(queued, "cancelled")]
        signalled.clear()
        done.clear()
        executor.gate.set()
        assert done.wait(60)
        time.sleep(0.2)  # anything else (checking, receipt) would have arrived by now
    # running -> checking -> released commits once, and only the settled state is signalled.
    assert len(signalled) == 1
    released = signalled[0]
    assert released is not None
    assert (released.job_id, released.state) == (running, "released")
    # The signal carries the job as committed, timings included: what an auditor reads (an operator
    # reads the same without timings, see test_operator_timings.py).
    assert asdict(released) == _poll(api, running, who="audra").json()
