"""Mock mode: SQL and Python jobs on synthetic twins, row-level output, labelled mock everywhere."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.sandbox_api.api_helpers import GOOD_SQL, World, citizens_table
from tests.sandbox_api.python_job_helpers import PY_ONE, ensure_python_world, result_of, run_job, submit
from tests.sandbox_api.replay_helpers import replayed_world

ROWS_SQL = "SELECT person_id, district, sex, birth_date, income FROM citizens"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with replayed_world(tmp_path_factory.mktemp("state")) as deployment:
        ensure_python_world(deployment)
        yield deployment


def sql(text: str, *, mode: str = "mock", scope: str = PY_ONE) -> dict[str, Any]:
    return {"scope": scope, "sql": text, "mode": mode}


def test_row_level_sql_runs_on_the_twin_and_is_labelled_mock(api: World) -> None:
    job = run_job(api, sql(ROWS_SQL))
    assert (job["state"], job["mode"], job["kind"]) == ("released", "mock", "sql"), job["reason"]
    assert "mock" in job["reason"]
    # What real mode would refuse is reported as advice, not enforced on synthetic data.
    assert job["findings"]
    assert all(f["message"].startswith("in real mode:") for f in job["findings"])
    result = result_of(api, job["job_id"])
    assert result["mode"] == "mock"
    assert result["report"]["mock"] is True
    assert result["columns"] == ["person_id", "district", "sex", "birth_date", "income"]
    assert 100 <= result["row_count"] <= 1000
    events = [e for e in api.audit_events() if e["details"].get("job") == job["job_id"]]
    by_name = {e["event"]: e["details"] for e in events}
    assert by_name["job.submitted"]["mode"] == "mock"
    assert by_name["job.released"]["mode"] == "mock"


def test_the_twin_never_equals_the_real_rows(api: World) -> None:
    result = result_of(api, run_job(api, sql(ROWS_SQL))["job_id"])
    real = citizens_table().to_pandas()
    real_rows = {(r.district, r.sex, round(float(r.income), 2)) for r in real.itertuples()}
    twin_rows = {(r[1], r[2], round(float(r[4]), 2)) for r in result["rows"]}
    assert twin_rows
    assert not twin_rows & real_rows
    assert not {r[0] for r in result["rows"]} & set(real["person_id"])
    assert "Harbour" not in {r[1] for r in result["rows"]}  # the row filter applies to the twin too
    years = {str(r[3])[5:10] for r in result["rows"]}
    assert years == {"01-01"}  # so do the masks
    denied = submit(api, sql("SELECT name FROM citizens"))
    job = api.wait(denied.json()["job_id"])
    assert job["state"] == "failed"  # a denied column is absent from the twin as well


def test_mock_skips_k_and_spends_nothing_and_is_deterministic(api: World) -> None:
    fine = "SELECT district, sex, birth_date, COUNT(*) AS n FROM citizens GROUP BY ALL"
    first = result_of(api, run_job(api, sql(fine))["job_id"])
    assert first["report"]["mock"] is True
    assert min(r[3] for r in first["rows"]) < 10
    second = result_of(api, run_job(api, sql(fine))["job_id"])
    assert first["result_hash"] == second["result_hash"]  # same version, same twin


def test_moving_from_mock_to_real_changes_one_field(api: World) -> None:
    body = sql(GOOD_SQL)
    mock = result_of(api, run_job(api, body)["job_id"])
    real_job = run_job(api, {**body, "mode": "real"})
    assert real_job["state"] == "released"
    assert real_job["mode"] == "real"
    real = result_of(api, real_job["job_id"])
    assert mock["columns"] == real["columns"]
    assert mock["mode"] == "mock"
    assert real["mode"] == "real"
    assert mock["result_hash"] != real["result_hash"]
    refused = submit(api, {**sql(ROWS_SQL), "mode": "real"})
    assert refused.status_code == 422
    assert refused.json()["code"] == "job-rejected"


def test_python_in_mock_mode_returns_rows_without_a_checker(api: World) -> None:
    code = "print(len(citizens))\nresult = citizens.head(5)"
    job = run_job(api, {"scope": PY_ONE, "kind": "python", "mode": "mock", "code": code})
    assert (job["state"], job["mode"]) == ("released", "mock"), job["reason"]
    result = result_of(api, job["job_id"])
    assert result["row_count"] == 5
    assert result["output"]["printed"].strip().isdigit()
    assert result["columns"] == ["person_id", "district", "sex", "birth_date", "income"]
    real = run_job(api, {"scope": PY_ONE, "kind": "python", "mode": "real", "code": code})
    assert real["state"] == "withheld"  # the same code on real data waits for a checker


def test_mock_python_still_needs_the_scope_to_allow_python(api: World) -> None:
    answer = submit(api, {"scope": "flu-study", "kind": "python", "mode": "mock", "code": "result = 1"})
    assert answer.status_code == 422
    assert [f["rule"] for f in answer.json()["findings"]] == ["python_not_allowed"]
