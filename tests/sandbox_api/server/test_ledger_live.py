"""The released-cohort ledger at the service level: tracker sequences of jobs, attacked as an analyst
would, against a live deployment (real sandbox, real store).

The facts wanted: the total income of the few people of the 'Tiny' district (fewer than k), and the
income of one person. Each attack first releases a total, then asks for the same total without the
target. Before the ledger both were released and their difference was the answer; now the second is
withheld with a reason, while repeating a query, or a cohort that differs by k people or more, is still
released. Every released job replays to a match (the ledger is decided again as it stood before it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.sandbox_api.api_helpers import SCOPE, World, citizens_table, world
from tests.sandbox_api.python_job_helpers import result_of, run_job
from tests.sandbox_api.replay_helpers import replay_report

TOTAL = "SELECT COUNT(*) AS n, SUM(income) AS total FROM citizens"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("state")) as deployment:
        yield deployment


def released(api: World, sql: str) -> dict[str, Any]:
    job = run_job(api, {"scope": SCOPE, "sql": sql})
    assert job["state"] == "released", job["reason"]
    return result_of(api, job["job_id"])


def test_a_total_without_a_small_district_is_withheld_after_the_total(api: World) -> None:
    citizens = citizens_table().to_pandas()
    tiny = citizens[citizens["district"] == "Tiny"]
    assert 0 < len(tiny) < 10
    first = released(api, TOTAL)
    assert len(first["rows"]) == 1
    second = released(api, TOTAL + " WHERE district <> 'Tiny'")
    assert second["rows"] == []  # the difference would have been Tiny's total
    assert any("released earlier" in r for r in second["report"]["reasons"]), second["report"]
    assert not any(str(len(tiny)) in r for r in second["report"]["reasons"])  # never how many differ
    assert second["report"]["rows_withheld_by_ledger"] == 1
    # The same query again is released: it tells nothing new.
    assert released(api, TOTAL)["rows"] == first["rows"]


def test_two_cohorts_of_one_union_that_differ_by_one_person_release_only_the_first(api: World) -> None:
    citizens = citizens_table().to_pandas()
    north = citizens[citizens["district"] == "North"]
    assert len(north) >= 10
    union = (
        "SELECT COUNT(*) AS n, SUM(income) AS total FROM citizens WHERE district = 'North' "
        "UNION ALL SELECT COUNT(*), SUM(income) FROM citizens WHERE district = 'North' OR district = 'Tiny'"
    )
    result = released(api, union)
    assert len(result["rows"]) == 1
    assert result["rows"][0][0] == len(north)


def test_a_cohort_that_differs_by_k_people_or_more_is_released(api: World) -> None:
    released(api, "SELECT COUNT(*) AS n FROM citizens WHERE district = 'North'")
    wider = released(api, "SELECT COUNT(*) AS n FROM citizens WHERE district IN ('North', 'Harbour')")
    assert len(wider["rows"]) == 1


def test_withheld_and_released_jobs_replay_to_a_match(api: World) -> None:
    jobs = api.client.get("/v1/jobs", headers=api.h("audra"), params={"state": "released"}).json()["jobs"]
    assert len(jobs) >= 5
    for job in jobs:
        report = replay_report(api.client, api.h("audra"), job["job_id"])
        assert report["outcome"] == "match", report
