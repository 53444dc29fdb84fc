"""The client honours ``Retry-After`` on 429, against an in-process gateway whose queue is full.

The gateway runs with room for one queued job and an executor that holds every job at a gate, so
one job running and one queued fill it: the next submission is refused with 429 and
``Retry-After: 5`` (nothing stored). The client waits through the ``sleep`` it was given (a test
one that records, and may open the gate) and sends the request again, a bounded number of times.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from crypto.keyring import KeyProvider
from executors.base import Executor, JobSpec, ResultTable
from executors.local import LocalExecutor
from sandbox_api.client.api_client import ClientError, SandboxClient
from sandbox_api.server.services.jobs import RETRY_AFTER_S
from sandbox_api.server.settings import Settings
from tests.sandbox_api.api_helpers import GOOD_SQL, SCOPE, World, world


class GatedExecutor:
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
        return self.inner.cancel(job_id)

    def close(self) -> None:
        self.gate.set()
        self.inner.close()


@pytest.fixture
def full_queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, GatedExecutor]]:
    """A gateway with one job running (held at the gate) and one queued: its queue is full."""
    holder: list[GatedExecutor] = []

    def factory(keys: KeyProvider, settings: Settings) -> Executor:
        holder.append(GatedExecutor(LocalExecutor(key_provider=keys, max_workers=1)))
        return holder[0]

    with world(
        tmp_path_factory.mktemp("state"), executor_factory=factory, max_concurrent_jobs=1, queue_limit=1
    ) as api:
        executor = holder[0]
        first = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL})
        assert first.status_code == 202, first.text
        assert executor.started.acquire(timeout=30)  # the first job runs, held at the gate
        second = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL})
        assert second.status_code == 202, second.text
        yield api, executor
        executor.gate.set()
        for job in api.client.get("/v1/jobs", headers=api.h("alice")).json()["jobs"]:
            api.wait(job["job_id"])


def _client(api: World, *, retries: int, sleep: Callable[[float], None]) -> SandboxClient:
    """A client of the in-process gateway: each HTTP request is handed to the app's test client."""

    def forward(request: httpx.Request) -> httpx.Response:
        answer = api.client.request(
            request.method,
            request.url.raw_path.decode(),
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
            content=request.content,
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    return SandboxClient(
        "http://gateway.test",
        api.tokens["alice"],
        transport=httpx.MockTransport(forward),
        retries_on_429=retries,
        sleep=sleep,
    )


def _queued(api: World) -> int:
    jobs = api.client.get("/v1/jobs", headers=api.h("alice"), params={"state": "queued"}).json()["jobs"]
    return len(jobs)


def test_a_full_queue_is_retried_after_the_wait_it_names(full_queue: tuple[World, GatedExecutor]) -> None:
    api, executor = full_queue
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        """Records the wait; meanwhile the held jobs finish, so the queue has room again."""
        waits.append(seconds)
        executor.gate.set()
        deadline = time.monotonic() + 60
        while _queued(api) and time.monotonic() < deadline:
            time.sleep(0.05)

    with _client(api, retries=3, sleep=sleep) as client:
        accepted = client.submit_job(SCOPE, GOOD_SQL)
    assert waits == [float(RETRY_AFTER_S)]
    assert api.wait(accepted.job_id)["state"] == "released"


def test_retries_are_bounded_and_the_refusal_reaches_the_caller(
    full_queue: tuple[World, GatedExecutor],
) -> None:
    api, _ = full_queue
    waits: list[float] = []
    with _client(api, retries=2, sleep=waits.append) as client, pytest.raises(ClientError) as raised:
        client.submit_job(SCOPE, GOOD_SQL)
    assert (raised.value.status, raised.value.code) == (429, "queue-full")
    assert waits == [float(RETRY_AFTER_S)] * 2
    assert _queued(api) == 1  # no refused attempt was stored
