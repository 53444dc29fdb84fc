"""The audit count of groups the k rule removed, end to end: counted in the sandbox, written into the
job's ``job.released`` audit event for auditors, and nowhere an operator reads (job, result, report,
receipt), because "a group was removed" says that 1..k-1 people match the operator's question."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.sandbox_api.api_helpers import SCOPE, World, citizens_table, world
from tests.sandbox_api.python_job_helpers import result_of, run_job

K = 10


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("state"), audit_groups_below_k=True) as deployment:
        yield deployment


def small_districts(where: str | None = None) -> int:
    """The truth from the uploaded table: districts (optionally of one name) with 1..k-1 people."""
    citizens = citizens_table().to_pandas()
    if where is not None:
        citizens = citizens[citizens["district"] == where]
    sizes = citizens.groupby("district")["person_id"].nunique()
    return int((sizes < K).sum())


def released_with_audit(api: World, sql: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The operator's job and result, and the auditors' ``job.released`` event of one job."""
    job = run_job(api, {"scope": SCOPE, "sql": sql})
    assert job["state"] == "released", job
    result = result_of(api, job["job_id"])
    event = next(e for e in api.audit_events("job.released") if e["details"]["job"] == job["job_id"])
    return job, result, event


def test_the_auditors_event_counts_the_groups_the_k_rule_removed(api: World) -> None:
    sql = "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district ORDER BY n LIMIT 3"
    assert small_districts() >= 1  # the tiny district
    _, result, event = released_with_audit(api, sql)
    assert event["details"]["suppression"]["groups_below_k"] == small_districts()
    assert "Tiny" not in {row[0] for row in result["rows"]}


def test_the_operator_never_reads_the_count(api: World) -> None:
    sql = "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district"
    job, result, event = released_with_audit(api, sql)
    assert event["details"]["suppression"]["groups_below_k"] >= 1
    fresh = api.client.get(f"/v1/jobs/{job['job_id']}", headers=api.h("alice")).json()
    for seen in (fresh, result, result["report"], result.get("receipt", {})):
        assert "groups_below_k" not in json.dumps(seen), seen


def test_what_the_operator_receives_does_not_depend_on_whether_a_small_group_exists(api: World) -> None:
    template = "SELECT district, COUNT(*) AS n FROM citizens WHERE district = '{d}' GROUP BY district"
    _, tiny, tiny_event = released_with_audit(api, template.format(d="Tiny"))
    _, none, none_event = released_with_audit(api, template.format(d="Atlantis"))
    # The auditors learn the difference ...
    assert tiny_event["details"]["suppression"]["groups_below_k"] == small_districts("Tiny") == 1
    assert none_event["details"]["suppression"]["groups_below_k"] == small_districts("Atlantis") == 0
    # ... the operator does not: the same rows and the same report either way.
    assert tiny["rows"] == none["rows"] == []
    assert tiny["report"] == none["report"]
