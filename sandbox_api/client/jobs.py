"""The job endpoints of ``SandboxClient``: checking and submitting SQL or Python jobs, reading, listing
and cancelling them, waiting for one to settle (long-polls), and fetching its released result."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import httpx

from sandbox_api.client.errors import ClientError, validate
from sandbox_api.client.results import Result, typed_frame
from sandbox_api.client.transport import HttpSession
from sandbox_api.job_types import Kind, Mode
from sandbox_api.schemas import (
    JOB_WAIT_MAX_S,
    CancelOut,
    CheckOut,
    JobAccepted,
    JobOut,
    ReleaseReportOut,
    ResultOut,
)

# States after which a job never changes again, and ``withheld``, after which only a person moves it.
TERMINAL_STATES: Final = frozenset({"released", "rejected", "denied", "failed", "cancelled", "expired"})
WAITING_STATES: Final = TERMINAL_STATES | {"withheld"}

# With a progress bar, each long-poll lasts at most this long, so the bar shows the state as it moves.
_PROGRESS_WAIT_S: Final = 1.0
# Added to a long-poll's read timeout: the gateway answers when the wait runs out, not before.
_WAIT_SLACK_S: Final = 10.0
# Back-off between polls when a gateway answers a long-poll at once (one that predates ``wait``).
_POLL_FIRST_S: Final = 0.005
_POLL_MAX_S: Final = 0.25


class JobsApi(HttpSession):
    """``/v1/jobs``: what an operator does with jobs (``SandboxClient`` holds every endpoint group)."""

    def check_job(
        self,
        scope: str,
        sql: str | None = None,
        *,
        code: str | None = None,
        mode: Mode | str = Mode.REAL,
        cross_domain: bool = False,
    ) -> CheckOut:
        """Dry run: findings and rewritten SQL, nothing runs. Pass ``code`` for a Python job,
        ``cross_domain=True`` for SQL joining two domains' datasets as a private join."""
        body = _job_body(scope, sql, code, mode, cross_domain=cross_domain)
        return self._model(CheckOut, "POST", "/v1/jobs/check", json=body)

    def submit_job(
        self,
        scope: str,
        sql: str | None = None,
        *,
        code: str | None = None,
        mode: Mode | str = Mode.REAL,
        cross_domain: bool = False,
    ) -> JobAccepted:
        """Submits a SQL job, or a Python job with ``code`` (202); ``mode="mock"`` runs it on the mock
        twins; ``cross_domain=True`` runs SQL joining two domains' datasets as a private join, each
        domain computing its own part. A job the policy refuses raises ``ClientError`` with its findings."""
        body = _job_body(scope, sql, code, mode, cross_domain=cross_domain)
        return self._model(JobAccepted, "POST", "/v1/jobs", json=body)

    def get_job(self, job_id: str) -> JobOut:
        return self._model(JobOut, "GET", f"/v1/jobs/{job_id}")

    def list_jobs(self, *, state: str | None = None, limit: int = 100, offset: int = 0) -> list[JobOut]:
        """Jobs, newest first (operators: their own); ``limit`` at most 1000, ``offset`` to page on."""
        params = {"state": state, "limit": limit, "offset": offset}
        return self._models(JobOut, "/v1/jobs", key="jobs", params=params)

    def wait_for_job(
        self,
        job_id: str,
        *,
        timeout: float = 300.0,
        progress: bool = False,
        on_change: Callable[[JobOut], None] | None = None,
    ) -> JobOut:
        """Waits until the job is finished (or withheld for review); ``ClientError`` with code
        ``wait-timeout`` if that takes longer than ``timeout`` seconds. ``on_change`` is called with the
        job each time its state changes (the first answer included), for a caller that shows phases.

        Long-polls ``GET /v1/jobs/{id}?wait=``: the gateway answers as soon as the job settles, so the
        answer arrives without polling delay."""
        from tqdm import tqdm

        watching = progress or on_change is not None
        deadline = time.monotonic() + timeout
        delay = _POLL_FIRST_S
        bar = tqdm(desc=f"job {job_id}", disable=not progress, bar_format="{desc} [{elapsed}]", leave=False)
        with bar:
            state = ""
            while True:
                wait = max(
                    0.0, min(deadline - time.monotonic(), _PROGRESS_WAIT_S if watching else JOB_WAIT_MAX_S)
                )
                asked = time.monotonic()
                job = self._long_poll(job_id, wait)
                if job.state != state:
                    state = job.state
                    bar.set_description_str(f"job {job_id}: {state}")
                    if on_change is not None:
                        on_change(job)
                else:
                    bar.refresh()
                if job.state in WAITING_STATES:
                    return job
                if time.monotonic() >= deadline:
                    raise ClientError(
                        0, "wait-timeout", f"job {job_id} is still {job.state} after {timeout:.0f} s"
                    )
                if time.monotonic() - asked < wait / 2:
                    # Answered long before the wait ran out and not settled: a gateway without
                    # long-polls. Poll with a growing pause instead of asking again at once.
                    time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
                    delay = min(delay * 1.25, _POLL_MAX_S)

    def _long_poll(self, job_id: str, wait: float) -> JobOut:
        """``GET /v1/jobs/{id}?wait=``, with a read timeout that outlasts the wait."""
        configured = self._http.timeout
        read = None if configured.read is None else max(configured.read, wait + _WAIT_SLACK_S)
        timeout = httpx.Timeout(
            connect=configured.connect, read=read, write=configured.write, pool=configured.pool
        )
        path = f"/v1/jobs/{job_id}"
        return self._model(JobOut, "GET", path, params={"wait": f"{wait:.3f}"}, timeout=timeout)

    def get_result(self, job_id: str) -> Result:
        body = self._json("GET", f"/v1/jobs/{job_id}/result")
        released = validate(ResultOut, body, f"GET /v1/jobs/{job_id}/result")
        receipt = body.get("receipt") if isinstance(body, dict) else None
        return Result(
            job_id=released.job_id,
            table=typed_frame(released.columns, released.rows, released.column_types),
            report=validate(ReleaseReportOut, released.report, f"the report of job {job_id}"),
            receipt=dict(receipt) if isinstance(receipt, Mapping) else None,
            raw=released,
        )

    def cancel_job(self, job_id: str) -> CancelOut:
        return self._model(CancelOut, "POST", f"/v1/jobs/{job_id}/cancel")


def _job_body(
    scope: str, sql: str | None, code: str | None, mode: Mode | str, *, cross_domain: bool = False
) -> dict[str, Any]:
    """The request body (an unknown ``mode`` is sent as it is: the gateway names the problem)."""
    if code is not None:
        return {"scope": scope, "kind": Kind.PYTHON.value, "code": code, "mode": str(mode)}
    if cross_domain:
        return {"scope": scope, "kind": Kind.CROSS_DOMAIN.value, "sql": sql, "mode": str(mode)}
    return {"scope": scope, "sql": sql, "mode": str(mode)}
