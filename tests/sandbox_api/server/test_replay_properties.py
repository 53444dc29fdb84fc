"""Property: whatever scope over several datasets and whatever job over a subset of them, a released job
replays to a match (issue 20: replay once rebuilt only the datasets a job read).

Three small datasets share their people, so any subset joins on the privacy unit. Hypothesis draws a
scope over one to three of them (threshold, a bucketed column or not, Python allowed) and a job over a
non-empty subset of the scope's datasets (SQL over one table or a join, or a Python ``aggregate()``),
releases it and replays it as the auditor. Each example runs two sandboxed jobs, so examples are few.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.hashing import sha256_hex
from tests.sandbox_api.api_helpers import DOMAIN, World, csv_bytes, upload
from tests.sandbox_api.auditing_helpers import release, replay
from tests.sandbox_api.python_job_helpers import approve_scope, run_job

PEOPLE = 400


@dataclass(frozen=True)
class Table:
    """One single-table dataset: ``{DOMAIN}/{name}`` with a group column and a numeric column."""

    name: str
    group: str
    value: str
    categories: tuple[str, ...]


TABLES = (
    Table("alpha", "region", "score", ("north", "south", "east")),
    Table("beta", "colour", "amount", ("red", "green")),
    Table("gamma", "tier", "weight", ("gold", "silver", "bronze")),
)


def _frame(table: Table, *, seed: int) -> pa.Table:
    """Every person once or twice; one category holds 3 people, below any threshold drawn here."""
    rng = random.Random(seed)
    people = [f"P{i:05d}" for i in range(PEOPLE)]
    rows = people + rng.sample(people, PEOPLE // 4)
    rare = set(rng.sample(people, 3))
    groups = [
        "rare" if person in rare else rng.choice(table.categories) for person in rows
    ]  # "rare": a group the output check must drop
    return pa.table(
        {
            "person_id": rows,
            table.group: groups,
            table.value: [round(rng.uniform(0, 100), 2) for _ in rows],
        }
    )


def _manifest(table: Table) -> dict[str, object]:
    return {
        # L2 (internal): its floor of k is 5, so the cases may draw min_units 5 as well as 10.
        "level": "L2",
        "tables": [
            {
                "name": table.name,
                "unit": "person_id",
                "columns": [
                    {"name": "person_id", "type": "VARCHAR", "class": "identifying"},
                    {"name": table.group, "type": "VARCHAR", "class": "internal"},
                    {"name": table.value, "type": "DOUBLE", "class": "sensitive"},
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def datasets(api: World) -> tuple[Table, ...]:
    for index, table in enumerate(TABLES):
        made = api.client.post(
            "/v1/datasets", headers=api.h("stu"), json={"domain": DOMAIN, "name": table.name}
        )
        assert made.status_code == 201, made.text
        stored = upload(
            api.client,
            api.tokens["stu"],
            manifest=_manifest(table),
            dataset=table.name,
            files={table.name: (f"{table.name}.csv", csv_bytes(_frame(table, seed=index)), "text/csv")},
            reviewer=api.tokens["sam"],
        )
        assert stored.status_code == 201, stored.text
    return TABLES


def _scope(tables: tuple[Table, ...], *, min_units: int, bucket: bool) -> tuple[str, str]:
    """A scope document over ``tables`` and its name (derived from the document, so a repeat is free)."""
    grants = "".join(
        f"""
  {DOMAIN}/{t.name}:
    unit: person_id
    columns:
      person_id: {{use: join_key}}
      {t.group}: {{use: group}}
      {t.value}: """
        + (
            "{mask: {generalize: {width: 25}}, use: group}"
            if bucket
            else "{use: aggregate, functions: [sum, avg, count], bounds: [0, 100]}"
        )
        for t in tables
    )
    body = f"""
purpose: "Replay properties"
grantees: [operator:alice]
valid: {{from: 2020-01-01, until: 2099-12-31}}
datasets:{grants}
disclosure:
  min_units: {min_units}
  suppression: drop
  max_rows: 1000
python: {{allowed: true, modules: [pandas, numpy, math, statistics]}}
"""
    name = "prop-" + sha256_hex(body.encode())[:12]
    return f"scope: {name}\n{body}", name


def _sql(read: tuple[Table, ...], *, bucket: bool) -> str:
    first = read[0]
    measure = f"{first.name}.{first.value}" if bucket else f"SUM({first.name}.{first.value})"
    select = [f"{first.name}.{first.group}", f"COUNT(DISTINCT {first.name}.person_id) AS people"]
    group = [f"{first.name}.{first.group}"]
    if bucket:
        select.append(measure)
        group.append(measure)
    else:
        select.append(f"{measure} AS total")
    joins = "".join(f" JOIN {t.name} ON {first.name}.person_id = {t.name}.person_id" for t in read[1:])
    return f"SELECT {', '.join(select)} FROM {first.name}{joins} GROUP BY {', '.join(group)}"


@st.composite
def _cases(draw: st.DrawFn) -> tuple[tuple[Table, ...], tuple[Table, ...], int, bool, bool]:
    scope = tuple(draw(st.lists(st.sampled_from(TABLES), min_size=1, max_size=3, unique=True)))
    read = tuple(draw(st.lists(st.sampled_from(scope), min_size=1, max_size=len(scope), unique=True)))
    return scope, read, draw(st.sampled_from([5, 10])), draw(st.booleans()), draw(st.booleans())


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=_cases())
def test_any_released_job_over_any_subset_of_its_scope_replays_to_a_match(
    api: World,
    datasets: tuple[Table, ...],
    case: tuple[tuple[Table, ...], tuple[Table, ...], int, bool, bool],
) -> None:
    scope_tables, read, min_units, bucket, python = case
    document, name = _scope(scope_tables, min_units=min_units, bucket=bucket)
    approve_scope(api, document, name)
    if python and not bucket:
        first = read[0]
        code = (
            f"result = aggregate({first.name}, by='{first.group}', aggs={{'n': ('{first.value}', 'count')}})"
        )
        job = run_job(api, {"scope": name, "kind": "python", "code": code})
        assert job["state"] == "released", job
        job_id = str(job["job_id"])
    else:
        job_id = release(api, _sql(read, bucket=bucket), scope=name)
    report = replay(api, job_id)
    assert report["outcome"] == "match", report
    assert report["kind"] is None
    assert report["actual_result_hash"] == report["expected_result_hash"]
