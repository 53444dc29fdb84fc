"""Attack: per-phase timings as a side channel (issue: operators read their jobs' timings).

The fact the analyst wants: whether a group below k exists (say, whether one person in a tiny district
has a given diagnosis). The rows cannot say it (the small group is suppressed), but how long the query
phase took can: a self-join that is empty or not runs 0.4 s or 2 s. So everything an operator reads
about their own jobs (the job, the long-poll answer, the listing, the cancel answer) must carry no
timings; admins and auditors still read them.

On the code before this change the operator read every phase (``query``, ``execute_s``, ...) from
``GET /v1/jobs/{id}`` and from the listing: these tests failed there.
"""

from __future__ import annotations

from typing import Any

from tests.sandbox_api.api_helpers import GOOD_SQL, SCOPE, World


def _released_job(api: World) -> str:
    submitted = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL})
    assert submitted.status_code == 202, submitted.text
    job_id = str(submitted.json()["job_id"])
    assert api.wait(job_id)["state"] == "released"
    return job_id


def _everything_the_operator_reads(api: World, job_id: str) -> list[dict[str, Any]]:
    seen = [
        api.client.get(f"/v1/jobs/{job_id}", headers=api.h("alice")).json(),
        api.client.get(f"/v1/jobs/{job_id}", headers=api.h("alice"), params={"wait": 1}).json(),
    ]
    listing = api.client.get("/v1/jobs", headers=api.h("alice")).json()["jobs"]
    seen += [j for j in listing if j["job_id"] == job_id]
    return seen


def test_an_operator_cannot_read_how_long_any_phase_of_their_job_took(api: World) -> None:
    job_id = _released_job(api)
    seen = _everything_the_operator_reads(api, job_id)
    assert len(seen) == 3
    assert all(view["timings"] == {} for view in seen), [view["timings"] for view in seen]


def test_an_operator_cannot_read_timings_of_any_job_in_the_listing(api: World) -> None:
    _released_job(api)
    listing = api.client.get("/v1/jobs", headers=api.h("alice")).json()["jobs"]
    assert listing
    assert all(job["timings"] == {} for job in listing)


def test_admins_and_auditors_still_read_the_timings(api: World) -> None:
    job_id = _released_job(api)
    for who in ("audra", "admin"):
        job = api.client.get(f"/v1/jobs/{job_id}", headers=api.h(who)).json()
        assert {"execute_s", "check_s", "query"} <= set(job["timings"]), (who, job["timings"])
        listed = api.client.get("/v1/jobs", headers=api.h(who)).json()["jobs"]
        assert next(j for j in listed if j["job_id"] == job_id)["timings"] == job["timings"]
