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
