"""Python jobs over HTTP: aggregate() results released like SQL results, inputs as the scope allows,
and escape attempts that end cleanly with the executor still healthy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox_api.server.deps import Services
from sandbox_api.server.services.job_specs import input_queries
from sandbox_api.server.store.models import JobRow
from tests.sandbox_api.api_helpers import World, citizens_table
from tests.sandbox_api.python_job_helpers import (
    NO_PY,
    PY_ONE,
    ensure_python_world,
    result_of,
    run_job,
    submit,
)
from tests.sandbox_api.replay_helpers import replayed_world

AGGREGATE = (
    "result = aggregate(citizens, by='district', "
    "aggs={'people': ('income', 'count'), 'mean_income': ('income', 'mean')})"
)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with replayed_world(tmp_path_factory.mktemp("state")) as deployment:
        ensure_python_world(deployment)
        yield deployment


def python(code: str, *, scope: str = PY_ONE, mode: str = "real") -> dict[str, Any]:
    return {"scope": scope, "kind": "python", "mode": mode, "code": code}


def test_aggregate_is_checked_and_released_like_a_sql_result(api: World) -> None:
    job = run_job(api, python(AGGREGATE))
    assert (job["state"], job["kind"], job["mode"]) == ("released", "python", "real"), job["reason"]
    result = result_of(api, job["job_id"])
    frame = citizens_table().to_pandas()
    frame = frame[frame["district"] != "Harbour"]  # the scope's row filter
    counts = frame.groupby("district")["person_id"].nunique()
    expected = {d: int(n) for d, n in counts.items() if n >= 10}
    got = {row[0]: row[1] for row in result["rows"]}
    assert got == expected
    assert len(counts) - len(expected) > 0  # 'Tiny' is below k and was dropped...
    assert "rows_dropped" not in result["report"]  # ...without the report saying how many
    assert (result["kind"], result["mode"]) == ("python", "real")
    assert "Harbour" not in got


def test_inputs_have_filters_masks_pseudonyms_and_no_denied_columns(api: World) -> None:
    code = (
        "result = {'columns': list(citizens.columns),"
        " 'districts': sorted(citizens['district'].unique().tolist()),"
        " 'not_january_first': int(((citizens['birth_date'].astype(str).str[5:]) != '01-01').sum()),"
        " 'max_income': float(citizens['income'].max()),"
        " 'ids': citizens['person_id'].head(20).tolist()}"
    )
    job = run_job(api, python(code))
    assert job["state"] == "withheld", job["reason"]
    seen = api.client.get(f"/v1/reviews/{job['job_id']}", headers=api.h("chad")).json()
    items = {key: value for key, value in seen["output"]["summary"]["items"]}
    columns = [v["value"] for v in items["columns"]["items"]]
    assert columns == ["person_id", "district", "sex", "birth_date", "income"]  # 'name' is denied
    districts = [v["value"] for v in items["districts"]["items"]]
    assert "Harbour" not in districts
    assert districts
    assert items["not_january_first"]["value"] == 0  # generalised to the year
    assert items["max_income"]["value"] <= 100_000  # clamped to the scope's bounds
    ids = [v["value"] for v in items["ids"]["items"]]
    real = set(citizens_table().column("person_id").to_pylist())
    assert all(len(i) == 32 for i in ids)
    assert not set(ids) & real


def test_pseudonyms_differ_between_jobs(api: World) -> None:
    code = "result = sorted(citizens['person_id'].head(5).tolist())"
    first, second = (run_job(api, python(code)) for _ in range(2))

    def ids(job: dict[str, Any]) -> set[str]:
        seen = api.client.get(f"/v1/reviews/{job['job_id']}", headers=api.h("chad")).json()
        return {v["value"] for v in seen["output"]["summary"]["items"]}

    assert ids(first)
    assert not ids(first) & ids(second)


def test_python_needs_a_scope_that_allows_it(api: World) -> None:
    answer = submit(api, python(AGGREGATE, scope=NO_PY))
    assert answer.status_code == 422
    body = answer.json()
    assert body["code"] == "job-rejected"
    assert body["state"] == "rejected"
    assert [f["rule"] for f in body["findings"]] == ["python_not_allowed"]
    check = api.client.post("/v1/jobs/check", headers=api.h("alice"), json=python(AGGREGATE, scope=NO_PY))
    assert check.status_code == 200
    assert check.json()["allowed"] is False


def test_code_is_compiled_before_it_is_stored(api: World) -> None:
    bad = "class Sneaky:\n    pass\nresult = ().__class__"
    check = api.client.post("/v1/jobs/check", headers=api.h("alice"), json=python(bad)).json()
    assert check["allowed"] is False
    assert {f["rule"] for f in check["findings"]} == {"python_code"}
    assert len(check["findings"]) >= 2  # every finding, not the first
    answer = submit(api, python(bad))
    assert answer.status_code == 422
    assert answer.json()["code"] == "job-rejected"
    good = api.client.post("/v1/jobs/check", headers=api.h("alice"), json=python(AGGREGATE)).json()
    assert good["allowed"] is True
    assert '"name"' not in good["rewritten_sql"]
    assert good["applied"][0] == "apply_row_filters"


@pytest.mark.parametrize(
    "body",
    [
        {"scope": PY_ONE, "kind": "python", "sql": "SELECT 1"},
        {"scope": PY_ONE, "kind": "python", "code": "result = 1", "sql": "SELECT 1"},
        {"scope": PY_ONE, "kind": "sql", "code": "result = 1"},
        {"scope": PY_ONE, "kind": "r", "code": "result = 1"},
        {"scope": PY_ONE, "mode": "pretend", "sql": "SELECT 1"},
    ],
)
def test_request_shape_is_validated(api: World, body: dict[str, Any]) -> None:
    answer = submit(api, body)
    assert answer.status_code == 422
    assert answer.json()["code"] == "request-invalid"


ESCAPES = {
    "import os": "import os\nresult = os.listdir('/')",
    "module walk": "import pandas as pd\nresult = pd.io.common.os.getcwd()",
    "file write": "citizens.to_csv('/tmp/leak.csv')\nresult = 1",
    "read file": "import pandas as pd\nresult = pd.read_csv('/etc/passwd')",
    "query string": "result = citizens.query('income > 0')",
    "system exit": "raise SystemExit(3)",
    "recursion": "def f(n):\n    return f(n + 1)\nresult = f(0)",
    "memory bomb": "result = 'x' * (10 ** 12)",
    "format walk": "result = '{0.__class__}'.format(citizens)",
    "exception text": "result = citizens['income'].astype(int).loc['P0000001']",
}


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_escape_attempts_end_cleanly(api: World, name: str) -> None:
    answer = submit(api, python(ESCAPES[name]))
    if answer.status_code == 422:  # refused by the restricted compiler before it was stored
        assert answer.json()["findings"]
        return
    job = api.wait(answer.json()["job_id"])
    assert job["state"] == "failed", (name, job["state"], job["reason"])
    assert "P0000" not in job["reason"]
    assert "Traceback" not in job["reason"]
    assert job["reason"].split(":")[0] in {"execution-failed", "resource-exhausted"}


def test_executor_is_healthy_after_the_escape_attempts(api: World) -> None:
    for code in ("raise SystemExit(1)", "def f():\n    return f()\nresult = f()"):
        assert run_job(api, python(code))["state"] == "failed"
    assert run_job(api, python(AGGREGATE))["state"] == "released"
    assert api.client.app.state.services.runner.running  # type: ignore[attr-defined]


def test_grouping_by_a_renamed_copy_of_an_aggregate_column_is_withheld_not_released(api: World) -> None:
    """SQL cannot GROUP BY income (use: aggregate); a Python copy under another name must not either."""
    code = (
        "t = citizens.copy()\n"
        "t['band'] = t['income']\n"
        "result = aggregate(t, by='band', aggs={'n': ('sex', 'count')})"
    )
    job = run_job(api, python(code))
    assert job["state"] == "withheld", job
    review = api.client.get(f"/v1/reviews/{job['job_id']}", headers=api.h("chad")).json()
    assert "group-key" in {f["rule"] for f in review["report"]["findings"]}


def test_stored_inputs_hold_column_lists_and_rows_stored_with_commas_read_the_same(api: World) -> None:
    job = run_job(api, python(AGGREGATE))
    services: Services = api.client.app.state.services  # type: ignore[attr-defined]
    with services.db.read() as session:
        row = session.get(JobRow, job["job_id"])
        assert row is not None
        stored = [dict(i) for i in row.inputs]
    assert stored
    assert all(isinstance(i["pseudonymise"], list) for i in stored)
    assert all(isinstance(i["group_columns"], list) for i in stored)
    assert any(i["pseudonymise"] for i in stored)  # the unit column, at least
    # A row stored before held comma-joined strings: it builds exactly the same input SELECTs.
    old = [
        {**i, "pseudonymise": ",".join(i["pseudonymise"]), "group_columns": ",".join(i["group_columns"])}
        for i in stored
    ]
    assert input_queries(old) == input_queries(stored)
