"""Python and mock jobs in the real fork-per-job sandbox: inputs, outcomes, limits, survival."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from crypto.keyring import LocalKeyring
from executors.base import JobSpec, Limits
from executors.errors import ExecutionFailed, ExecutionTimeout, ResourceExhausted
from executors.local import LocalExecutor
from executors.mock_twins import MockColumn, MockDomain, MockTable
from executors.pyjobs import PyLimits
from executors.python_job import InputQuery, MockSource, PythonOrMockJob, PythonOrMockResult
from tests.executors.executors_fixtures import StoredVersion, store_version, visits_table

INPUT = InputQuery(
    name="visits",
    sql='SELECT "visits"."person_id" AS "person_id", "visits"."district" AS "district", '
    '"visits"."cost" AS "cost" FROM (SELECT * FROM "visits" WHERE cost < 900) AS "visits"',
    unit="person_id",
    pseudonymise=("person_id",),
    group_columns=("district",),
)
LIMITS = Limits(timeout_s=30, memory_mb=512, threads=1)


def spec(
    visits: StoredVersion, code: str, *, job_id: str, limits: Limits = LIMITS, cpu_s: float = 20
) -> JobSpec:
    python_or_mock = PythonOrMockJob(
        kind="python",
        mode="real",
        inputs=(INPUT,),
        pseudonym_key=bytes(range(32)),
        code=code,
        modules=("pandas", "numpy"),
        py_limits=PyLimits(cpu_s=cpu_s),
    )
    return JobSpec(
        job_id=job_id,
        sql="",
        tables=(visits.inputs["visits"],),
        keyed_hash_key=None,
        limits=limits,
        python_or_mock=python_or_mock,
    )


def run(executor: LocalExecutor, job: JobSpec) -> PythonOrMockResult:
    return PythonOrMockResult.from_arrow(executor.run(job).to_arrow())


def test_aggregate_outcome_with_unit_counts(local_executor: LocalExecutor, visits: StoredVersion) -> None:
    code = "result = aggregate(visits, by='district', aggs={'total': ('cost', 'sum')})"
    out = run(local_executor, spec(visits, code, job_id="py-agg"))
    assert out.outcome == "aggregate"
    frame = out.table.to_pandas()
    source = visits_table().to_pandas()
    source = source[source["cost"] < 900]
    expected = source.groupby("district")["person_id"].nunique().to_dict()
    assert dict(zip(frame["district"], frame["_sbx_units"], strict=True)) == expected
    assert frame["total"].sum() == pytest.approx(source["cost"].sum())


def test_withheld_outcome_sees_pseudonyms_filters_and_no_denied_column(
    local_executor: LocalExecutor, visits: StoredVersion
) -> None:
    code = (
        "result = {'cols': list(visits.columns), 'max': float(visits['cost'].max()),"
        " 'ids': visits['person_id'].head(3).tolist()}"
    )
    out = run(local_executor, spec(visits, code, job_id="py-held"))
    assert out.outcome == "withheld"
    assert out.withheld is not None
    items = {k: v for k, v in out.withheld["summary"]["items"]}  # type: ignore[index]
    assert [v["value"] for v in items["cols"]["items"]] == ["person_id", "district", "cost"]
    assert items["max"]["value"] < 900
    ids = [v["value"] for v in items["ids"]["items"]]
    assert all(isinstance(i, str) and len(i) == 32 for i in ids)


def test_runaway_loop_is_stopped_and_the_executor_survives(
    local_executor: LocalExecutor, visits: StoredVersion
) -> None:
    with pytest.raises(ResourceExhausted, match="CPU seconds"):
        run(local_executor, spec(visits, "while True:\n    pass", job_id="py-cpu", cpu_s=1))
    with pytest.raises(ExecutionTimeout):
        run(
            local_executor,
            spec(
                visits,
                "while True:\n    pass",
                job_id="py-wall",
                limits=Limits(timeout_s=2, memory_mb=512, threads=1),
                cpu_s=60,
            ),
        )
    assert run(local_executor, spec(visits, "result = 1", job_id="py-after")).outcome == "withheld"
    assert local_executor.running() == {}


def test_mock_program_gets_no_real_data(
    local_executor: LocalExecutor, visits: StoredVersion, keyring: LocalKeyring
) -> None:
    twin = MockTable(
        "visits",
        (
            MockColumn("person_id", "VARCHAR"),
            MockColumn("district", "VARCHAR", MockDomain(categories=("a", "b"))),
            MockColumn("cost", "DOUBLE", MockDomain(low=0, high=1000)),
        ),
        unit="person_id",
    )
    python_or_mock = PythonOrMockJob(
        kind="sql",
        mode="mock",
        inputs=(INPUT,),
        pseudonym_key=bytes(32),
        mock_sources=(MockSource(name="visits", table=twin, n_rows=300, seed=5),),
    )
    job = JobSpec(
        job_id="mock-sql",
        sql="SELECT * FROM visits",
        tables=(),
        keyed_hash_key=None,
        limits=LIMITS,
        python_or_mock=python_or_mock,
    )
    out = run(local_executor, job)
    assert out.outcome == "table"
    assert 0 < out.table.num_rows <= 300
    assert set(out.table.column("district").to_pylist()) <= {"a", "b"}
    leaky = JobSpec(
        job_id="mock-leak",
        sql="SELECT 1",
        tables=(visits.inputs["visits"],),
        keyed_hash_key=None,
        limits=LIMITS,
        python_or_mock=python_or_mock,
    )
    with pytest.raises(ExecutionFailed, match="mock job must not be given real data"):
        run(local_executor, leaky)


def test_date_columns_arrive_as_datetimes(
    local_executor: LocalExecutor, data_root: Path, keyring: LocalKeyring
) -> None:
    """A DATE column reaches the job as datetime64, so ``.dt.year`` works and the table is released."""
    births = pa.table(
        {
            "person_id": list(range(300)),
            "birth": pa.array(
                [dt.date(1950 + i % 3, 1 + i % 12, 1 + i % 28) for i in range(300)], pa.date32()
            ),
        }
    )
    stored = store_version(data_root, keyring, {"births": births}, units={"births": "person_id"}, n_parts=2)
    query = InputQuery(
        name="births",
        sql='SELECT "births"."person_id" AS "person_id", "births"."birth" AS "birth" FROM "births"',
        unit="person_id",
        pseudonymise=("person_id",),
        group_columns=("birth",),
    )
    code = (
        "p = births.assign(year=births['birth'].dt.year)\n"
        "result = aggregate(p, by='year', aggs={'people': ('person_id', 'nunique')})"
    )
    python_or_mock = PythonOrMockJob(
        kind="python", mode="real", inputs=(query,), pseudonym_key=bytes(32), code=code, modules=("pandas",)
    )
    job = JobSpec(
        job_id="py-dates",
        sql="",
        tables=(stored.inputs["births"],),
        keyed_hash_key=None,
        limits=LIMITS,
        python_or_mock=python_or_mock,
    )
    out = run(local_executor, job)
    assert out.outcome == "aggregate"
    frame = out.table.to_pandas()
    assert dict(zip(frame["year"], frame["people"], strict=True)) == {1950: 100, 1951: 100, 1952: 100}


def test_a_column_depending_on_other_rows_comes_back_withheld_with_its_taint(
    local_executor: LocalExecutor, visits: StoredVersion
) -> None:
    """Through the sandbox: the largest cost broadcast into a column and averaged is not an aggregate
    outcome (which the service would release); the report names the operation and line."""
    code = (
        "visits['x'] = visits['cost'].max()\n"
        "result = aggregate(visits, by='district', aggs={'m': ('x', 'mean')})"
    )
    out = run(local_executor, spec(visits, code, job_id="py-taint"))
    assert out.outcome == "withheld"
    assert out.withheld is not None
    findings = out.withheld["report"]["findings"]  # type: ignore[index]
    assert {
        "rule": "row-dependence",
        "severity": "flag",
        "message": "column 'x' depends on other rows: .max at line 1",
        "where": "aggregate() #1",
    } in findings
