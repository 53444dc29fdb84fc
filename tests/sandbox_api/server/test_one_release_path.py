"""Every released result passed the one release function, whatever kind of job produced it.

The services are built with a counting wrapper around ``services/release.py``'s ``release`` (injected
like any collaborator): a SQL job, a Python job released automatically, a mock job and a Python job
released by an output checker after review must each have gone through it, and every result the
gateway holds as released must be one the function released (same result hash).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sandbox_api.api_helpers import GOOD_SQL, SCOPE, World, world
from tests.sandbox_api.python_job_helpers import PY_ONE, ensure_python_world, result_of, run_job
from tests.sandbox_api.release_helpers import CountingRelease
from tests.sandbox_api.replay_helpers import released_jobs, replay_report

AGGREGATE = "result = aggregate(citizens, by='sex', aggs={'people': ('income', 'count')})"
MODEL = "result = {'n': int(len(citizens))}"


@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, CountingRelease]]:
    counter = CountingRelease()
    with world(tmp_path_factory.mktemp("state"), release_fn=counter) as deployment:
        ensure_python_world(deployment)
        yield deployment, counter


def test_every_released_result_passed_the_one_release_function(
    counted: tuple[World, CountingRelease],
) -> None:
    api, counter = counted
    sql = run_job(api, {"scope": SCOPE, "sql": GOOD_SQL})
    python = run_job(api, {"scope": PY_ONE, "kind": "python", "code": AGGREGATE})
    mock = run_job(api, {"scope": PY_ONE, "sql": "SELECT district, income FROM citizens", "mode": "mock"})
    held = run_job(api, {"scope": PY_ONE, "kind": "python", "code": MODEL})
    assert [j["state"] for j in (sql, python, mock, held)] == ["released"] * 3 + ["withheld"]
    decided = api.client.post(
        f"/v1/reviews/{held['job_id']}/release", headers=api.h("chad"), json={"reason": "one count"}
    )
    assert decided.status_code == 200, decided.text

    assert counter.candidates() == {"TableResult", "PythonOrMockOutcome", "Reviewed"}
    listing = api.client.get("/v1/jobs", headers=api.h("audra"), params={"state": "released"}).json()
    released = {j["job_id"]: j["result_hash"] for j in listing["jobs"]}
    assert {sql["job_id"], python["job_id"], mock["job_id"], held["job_id"]} <= set(released)
    assert set(released.values()) <= counter.released_hashes()
    for job_id, digest in released.items():
        assert result_of(api, job_id)["result_hash"] == digest


def test_a_replay_passes_the_same_release_function(counted: tuple[World, CountingRelease]) -> None:
    """Replay equals the runner by construction: it decides through the very function the services
    were built with (here the counting one), once per replayed job, and every job matches."""
    api, counter = counted
    auditor = api.h("audra")
    jobs = released_jobs(api.client, auditor)
    assert jobs, "the test above released jobs"
    before = len(counter.calls)
    for job_id in jobs:
        assert replay_report(api.client, auditor, job_id)["outcome"] == "match"
    assert len(counter.calls) - before == len(jobs)
