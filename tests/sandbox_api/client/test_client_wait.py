"""SandboxClient.wait_for_job long-polls the gateway (and still copes with one that answers at once)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from sandbox_api.client.api_client import ClientError, SandboxClient

JOB_ID = "a" * 32


def _job(state: str) -> dict[str, object]:
    return {
        "job_id": JOB_ID,
        "owner": "alice",
        "scope": "flu-study",
        "scope_version": "v" * 64,
        "state": state,
        "reason": state,
        "findings": [],
        "sql": "SELECT 1",
        "rewritten_sql": None,
        "applied": [],
        "dataset_versions": {},
        "attempts": 1,
        "timings": {},
        "result_hash": None,
        "created_at": "2026-01-01T00:00:00.000000Z",
        "updated_at": "2026-01-01T00:00:00.000000Z",
    }


class FakeGateway:
    """Answers ``GET /v1/jobs/{id}`` with the next state of ``states`` (the last one repeats).

    With ``honours_wait`` it keeps a request for its ``wait`` seconds unless the answer is final, as
    the gateway does; without, it answers at once, as a gateway from before long-polls did.
    """

    def __init__(self, states: list[str], *, honours_wait: bool) -> None:
        self.states = states
        self.honours_wait = honours_wait
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        state = self.states[min(len(self.requests), len(self.states)) - 1]
        wait = float(request.url.params.get("wait", "0"))
        if self.honours_wait and state in {"queued", "running", "checking"}:
            time.sleep(wait)
        return httpx.Response(200, json=_job(state))

    def waits(self) -> list[float]:
        return [float(r.url.params["wait"]) for r in self.requests]


@pytest.fixture
def client_for() -> Iterator[Callable[[FakeGateway], SandboxClient]]:
    opened: list[SandboxClient] = []

    def make(gateway: FakeGateway) -> SandboxClient:
        client = SandboxClient("http://gateway.test", "sbx_test", transport=httpx.MockTransport(gateway))
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


def test_one_long_poll_brings_the_final_state(client_for: Callable[[FakeGateway], SandboxClient]) -> None:
    gateway = FakeGateway(["released"], honours_wait=True)
    job = client_for(gateway).wait_for_job(JOB_ID)
    assert job.state == "released"
    assert gateway.waits() == [30.0]
    # The read timeout outlasts the wait: the gateway answers when the wait runs out, not before.
    read_timeout = gateway.requests[0].extensions["timeout"]["read"]
    assert read_timeout > 30


def test_the_last_wait_ends_at_the_callers_timeout(
    client_for: Callable[[FakeGateway], SandboxClient],
) -> None:
    gateway = FakeGateway(["running"], honours_wait=True)
    began = time.monotonic()
    with pytest.raises(ClientError) as raised:
        client_for(gateway).wait_for_job(JOB_ID, timeout=0.5)
    assert raised.value.code == "wait-timeout"
    assert 0.5 <= time.monotonic() - began < 5
    assert len(gateway.requests) == 1
    assert 0.4 < gateway.waits()[0] <= 0.5


def test_withheld_ends_the_wait(client_for: Callable[[FakeGateway], SandboxClient]) -> None:
    gateway = FakeGateway(["withheld"], honours_wait=True)
    assert client_for(gateway).wait_for_job(JOB_ID).state == "withheld"
    assert len(gateway.requests) == 1


def test_with_a_progress_bar_each_wait_is_short(client_for: Callable[[FakeGateway], SandboxClient]) -> None:
    gateway = FakeGateway(["queued", "running", "released"], honours_wait=False)
    job = client_for(gateway).wait_for_job(JOB_ID, progress=True)
    assert job.state == "released"
    assert gateway.waits() == [1.0, 1.0, 1.0]


def test_a_gateway_that_answers_at_once_is_polled_with_pauses(
    client_for: Callable[[FakeGateway], SandboxClient],
) -> None:
    gateway = FakeGateway(["running"] * 5 + ["released"], honours_wait=False)
    began = time.monotonic()
    job = client_for(gateway).wait_for_job(JOB_ID)
    assert job.state == "released"
    assert len(gateway.requests) == 6
    # Five pauses of 5 ms growing by a quarter each: at least 40 ms, not a burst of requests.
    assert time.monotonic() - began >= 0.04


def test_get_job_answers_at_once(client_for: Callable[[FakeGateway], SandboxClient]) -> None:
    gateway = FakeGateway(["running"], honours_wait=True)
    assert client_for(gateway).get_job(JOB_ID).state == "running"
    assert "wait" not in gateway.requests[0].url.params
