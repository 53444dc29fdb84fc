"""Red-team attacks: differencing with Python jobs through the released-cohort ledger.

The fact wanted: the income of the only woman of 'Tiny' (see ``test_redteam_disclosure``). Python
``aggregate()`` tables carry the same cohort sketches as SQL rows (made in the sandbox from the stored
units, not the job's pseudonyms), so a Python cell one person apart from an earlier Python or SQL cell
is withheld like a SQL row. Before that, each pair below was released and its difference was the
target's income.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.sandbox_api.api_helpers import World, world
from tests.sandbox_api.python_job_helpers import approve_scope, python_scope_yaml, result_of, run_job
from tests.sandbox_api.replay_helpers import replay_report
from tests.sandbox_api.server.test_redteam_disclosure import TARGET_INCOME, WOMEN, near, outcome

OUTSIDE_WEST = "~citizens['district'].isin(['West'])"
OUTSIDE_WEST_AND_TINY = "~citizens['district'].isin(['West', 'Tiny'])"


@pytest.fixture
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("state")) as deployment:
        yield deployment


def python_rows(api: World, scope: str, mask: str) -> list[list[Any]]:
    """The rows of ``aggregate()`` of the women matching ``mask`` (n, sum of income by sex), or none
    when the job was not released."""
    code = (
        f"p = citizens[(citizens['sex'] == 'F') & {mask}]\n"
        "result = aggregate(p, by='sex', aggs={'n': ('income', 'count'), 's': ('income', 'sum')})"
    )
    job = run_job(api, {"scope": scope, "kind": "python", "mode": "real", "code": code})
    if job["state"] != "released":
        return []
    rows: list[list[Any]] = result_of(api, job["job_id"])["rows"]
    return rows


def python_scope(api: World, name: str) -> str:
    approve_scope(api, python_scope_yaml(name, checkers=1), name)
    return name


def test_two_python_jobs_one_person_apart_do_not_give_the_income(api: World) -> None:
    scope = python_scope(api, "rt-py-py")
    first = python_rows(api, scope, OUTSIDE_WEST)
    assert first, "the first job is an ordinary analysis and is released"
    second = python_rows(api, scope, OUTSIDE_WEST_AND_TINY)
    assert not any(near(a[2] - b[2], TARGET_INCOME) for a in first for b in second)


def test_a_sql_job_one_person_apart_from_a_python_row_is_withheld(api: World) -> None:
    """The other order: Python first (women outside West and Tiny), then SQL (women outside West)."""
    scope = python_scope(api, "rt-py-sql")
    python = python_rows(api, scope, OUTSIDE_WEST_AND_TINY)
    assert python
    sql = outcome(api, scope, WOMEN + " AND district <> 'West'")
    assert not (isinstance(sql, list) and any(near(sql[0][1] - row[2], TARGET_INCOME) for row in python))


def test_the_same_python_job_again_is_released(api: World) -> None:
    """A repeat is not a difference: the ledger releases it (no false refusal of re-running a job)."""
    scope = python_scope(api, "rt-py-repeat")
    first = python_rows(api, scope, OUTSIDE_WEST)
    assert first
    assert python_rows(api, scope, OUTSIDE_WEST) == first


def test_python_jobs_the_ledger_decided_replay_to_a_match(api: World) -> None:
    """Replay decides a Python job's rows again against the ledger as it stood before the job: the
    released job and the one whose row the ledger withheld both reproduce their receipts."""
    scope = python_scope(api, "rt-py-replay")
    assert python_rows(api, scope, OUTSIDE_WEST)
    assert python_rows(api, scope, OUTSIDE_WEST_AND_TINY) == []
    jobs = api.client.get("/v1/jobs", headers=api.h("audra"), params={"state": "released"}).json()["jobs"]
    python_jobs = [job for job in jobs if job.get("kind") == "python"]
    assert len(python_jobs) == 2
    for job in python_jobs:
        report = replay_report(api.client, api.h("audra"), job["job_id"])
        assert report["outcome"] == "match", report
