"""`sandbox job status` says what a DP job spent and what its owner has left (from the job's
`dp_budget`), and says nothing of a budget for a job that spent none."""

from __future__ import annotations

from typing import Any

from sandbox_api.cli.jobs import _status_fields
from sandbox_api.schemas import JobOut

JOB: dict[str, Any] = {
    "job_id": "a" * 32,
    "owner": "alice",
    "scope": "flu-dp",
    "scope_version": "b" * 64,
    "state": "released",
    "reason": "released",
    "findings": [],
    "sql": "SELECT COUNT(*) AS n FROM citizens",
    "rewritten_sql": None,
    "applied": [],
    "dataset_versions": {},
    "attempts": 1,
    "timings": {},
    "result_hash": None,
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
}
BUDGET = {
    "scope": "flu-dp",
    "period": 0,
    "spent": {"epsilon": 1.0, "delta": 0.0},
    "refunded": False,
    "limit": {"epsilon": 2.5, "delta": 0.0},
    "left": {"epsilon": 1.5, "delta": 0.0},
}


def test_job_status_shows_what_the_job_spent_and_what_is_left() -> None:
    fields = _status_fields(JobOut.model_validate({**JOB, "dp_budget": BUDGET}))
    assert (
        fields["differential privacy"] == "this job spent epsilon 1; epsilon 1.5 of 2.5 left in scope flu-dp"
    )


def test_job_status_of_a_job_without_a_charge_says_nothing_of_a_budget() -> None:
    assert "differential privacy" not in _status_fields(JobOut.model_validate(JOB))
