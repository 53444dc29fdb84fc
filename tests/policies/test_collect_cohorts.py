"""The ``collect_cohorts`` pass: golden file, order precondition, and lists that match the counts."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from policies.errors import PassOrderError
from policies.examples import example_context
from policies.passes.add_unit_counts import add_unit_counts
from policies.passes.collect_cohorts import collect_cohorts
from tests.policies.golden import GOLDEN_DIR, GoldenCase, load_cases

CASES = load_cases(GOLDEN_DIR / "collect_cohorts.sql")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_collect_cohorts_golden(case: GoldenCase) -> None:
    ctx, tree, analysis = example_context(case.sql)
    tree = collect_cohorts(add_unit_counts(tree, analysis, ctx), analysis, ctx)
    assert tree.sql(dialect="duckdb", comments=False) == case.expected


def test_it_refuses_to_run_before_add_unit_counts() -> None:
    ctx, tree, analysis = example_context("SELECT sex, COUNT(*) AS n FROM citizens GROUP BY sex")
    with pytest.raises(PassOrderError, match="add_unit_counts"):
        collect_cohorts(tree, analysis, ctx)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_each_list_holds_exactly_the_units_its_count_counts(case: GoldenCase) -> None:
    frame = pd.DataFrame(
        {
            "person_id": range(60),
            "district": ["Central", "North", "South"] * 20,
            "sex": ["F", "M", "M", "F", "F"] * 12,
        }
    )
    con = duckdb.connect()
    con.register("citizens", frame)
    assert case.expected is not None
    out = con.sql(case.expected).df()
    for name in [c for c in out.columns if c.startswith("_sbx_cohort")]:
        count = out["_sbx_units" + name.removeprefix("_sbx_cohort")]
        for listed, n in zip(out[name], count, strict=True):
            if listed is not None:
                assert len(set(listed)) == len(listed) == n


def test_a_filter_subset_released_as_written_has_its_own_cohort_and_a_neutralised_one_none() -> None:
    """The fact wanted: the income of the one person aged 95 in Central. ``SUM(income) FILTER (WHERE
    district = 'Central')`` over everyone releases Central's total; a row released earlier holds
    Central without that person. The ledger can only catch the pair if the FILTER cell's subset is
    listed as a cohort of its own, exactly when the cell is computed over it (not when it is neutralised:
    then the cell stands for the whole row, or for nothing)."""
    from policies import prepare
    from policies.examples import example_catalog, example_scope

    prepared = prepare(
        "SELECT sex, SUM(income) FILTER (WHERE district = 'Central') AS central, "
        "COUNT(*) FILTER (WHERE district = 'Nowhere') AS none FROM citizens GROUP BY sex",
        example_scope(),
        example_catalog(),
    )
    people = pd.DataFrame(
        {
            "person_id": range(40),
            "sex": ["F"] * 40,
            "district": ["Central"] * 25 + ["North"] * 15,
            "income": [1000.0] * 40,
            "name": ["x"] * 40,
            "national_id": ["y"] * 40,
            "phone": ["0"] * 40,
            "birth_date": pd.to_datetime(["1960-01-01"] * 40),
            "diagnosis": ["none"] * 40,
        }
    )
    con = duckdb.connect()
    con.register("citizens", people)
    frame = con.execute(prepared.sql).fetchdf()
    (row,) = frame.to_dict("records")
    assert sorted(row["_sbx_cohort_s0"]) == list(range(25))  # Central, computed as written
    assert row["_sbx_cohort_s1"] is None  # an empty subset: the cell is NULL, no cohort
