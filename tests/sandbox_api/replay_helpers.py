"""Replay as an auditor, for every service test that releases jobs: the shared end-of-test check.

``assert_every_release_replays`` lists every released job the way an auditor sees them and replays
each one; all must match (or, for a version that was deliberately crypto-shredded, say so). The
deployments of the service tests call it before they shut down (``replayed_world`` around
``api_helpers.world``, ``replay_live`` for a gateway in a subprocess), so a test module that releases a
job also proves that the job replays, without a line of its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import httpx

from tests.sandbox_api.api_helpers import World, bearer, world

AUDITOR = "audra"  # the auditor of ``api_helpers.world``


class _Http(Protocol):
    """What both the in-process test client and ``httpx.Client`` offer."""

    def get(self, url: str, *, headers: Mapping[str, str], params: Mapping[str, Any]) -> Any: ...

    def post(self, url: str, *, headers: Mapping[str, str]) -> Any: ...


def released_jobs(http: _Http, auditor: Mapping[str, str]) -> list[str]:
    """Every released job, as an auditor lists them."""
    found: list[str] = []
    offset, page = 0, 500
    while True:
        answer = http.get(
            "/v1/jobs", headers=auditor, params={"state": "released", "limit": page, "offset": offset}
        )
        assert answer.status_code == 200, answer.text
        jobs = answer.json()["jobs"]
        found.extend(str(j["job_id"]) for j in jobs)
        if len(jobs) < page:
            return found
        offset += page


def replay_report(http: _Http, auditor: Mapping[str, str], job_id: str) -> dict[str, Any]:
    answer = http.post(f"/v1/jobs/{job_id}/replay", headers=auditor)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def assert_every_release_replays(http: _Http, auditor: Mapping[str, str]) -> int:
    """Replay every released job; each must match its receipt. Returns how many were replayed.

    A job whose data version was crypto-shredded on purpose cannot run again: it must answer
    ``data-destroyed`` naming the shredding, never ``mismatch``.
    """
    failures = []
    jobs = released_jobs(http, auditor)
    for job_id in jobs:
        report = replay_report(http, auditor, job_id)
        if report["outcome"] == "match":
            continue
        if report["outcome"] == "data-destroyed" and report["destroyed"]:
            continue
        failures.append(f"{job_id}: {report['outcome']} ({report.get('kind')}): {report['message']}")
    assert not failures, "released jobs that do not replay to a match:\n" + "\n".join(failures)
    return len(jobs)


def replay_live(url: str, auditor_token: str) -> int:
    """``assert_every_release_replays`` against a gateway at ``url``, with an auditor's token."""
    with httpx.Client(base_url=url, timeout=120) as http:
        return assert_every_release_replays(http, bearer(auditor_token))


@contextmanager
def replayed_world(state_dir: Path, **overrides: Any) -> Iterator[World]:
    """``api_helpers.world``; when the tests using it are done, every job it released replays to a
    match (as its auditor). A failing test skips the check: its own failure says more."""
    with world(state_dir, **overrides) as deployment:
        yield deployment
        assert_every_release_replays(deployment.client, deployment.h(AUDITOR))
