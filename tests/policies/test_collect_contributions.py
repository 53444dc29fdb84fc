"""The ``collect_contributions`` pass: golden file, order precondition, lists that hold each row's
(unit, value) pairs, and its place in the pipeline (only where the scope asks for dominance)."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from policies import prepare
from policies.errors import PassOrderError
from policies.examples import example_catalog, example_context, example_scope
from policies.model import Dominance
from policies.passes.add_unit_counts import add_unit_counts
from policies.passes.collect_contributions import collect_contributions
from tests.policies.golden import GOLDEN_DIR, GoldenCase, load_cases

CASES = load_cases(GOLDEN_DIR / "collect_contributions.sql")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_collect_contributions_golden(case: GoldenCase) -> None:
    ctx, tree, analysis = example_context(case.sql)
    tree = collect_contributions(add_unit_counts(tree, analysis, ctx), analysis, ctx)
    assert tree.sql(dialect="duckdb", comments=False) == case.expected


def test_it_refuses_to_run_before_add_unit_counts() -> None:
    ctx, tree, analysis = example_context("SELECT sex, SUM(income) AS s FROM citizens GROUP BY sex")
    with pytest.raises(PassOrderError, match="add_unit_counts"):
        collect_contributions(tree, analysis, ctx)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_each_list_adds_up_to_what_its_row_computes_from(case: GoldenCase) -> None:
    """Run on a tiny table: every list holds one pair per input row of its cell, and its values add up
    to the row's own sum over them (the lists describe exactly the released cells)."""
    frame = pd.DataFrame(
        {
            "person_id": range(60),
            "district": ["Central", "North", "South"] * 20,
            "sex": ["F", "M", "M", "F", "F"] * 12,
            "income": [float(1000 + 17 * i) for i in range(60)],
        }
    )
    con = duckdb.connect()
    con.register("citizens", frame)
    assert case.expected is not None
    out = con.sql(case.expected).df()
    lists = [c for c in out.columns if c.startswith("_sbx_contrib_")]
    for name in lists:
        for listed, units in zip(out[name], out["_sbx_units"], strict=True):
            if not hasattr(listed, "__len__"):
                continue  # NULL: no list on this row (its branch or its cell releases none)
            assert {pair["u"] for pair in listed} <= set(range(60))
            assert len(listed) <= units
    if "s" in out.columns and lists:
        first = out[lists[0]].iloc[0]
        assert sum(pair["v"] for pair in first) == pytest.approx(out["s"].iloc[0])


def test_the_pipeline_runs_it_only_under_a_scope_that_asks_for_dominance() -> None:
    sql = "SELECT district, SUM(income) AS s FROM citizens GROUP BY district"
    scope = example_scope()
    plain = prepare(sql, scope, example_catalog())
    assert "collect_contributions" not in plain.applied
    assert "_sbx_contrib" not in plain.sql
    asked = scope.model_copy(
        update={"disclosure": scope.disclosure.model_copy(update={"dominance": Dominance()})}
    )
    judged = prepare(sql, asked, example_catalog())
    assert judged.applied[-1] == "collect_contributions"
    assert "_sbx_contrib_0" in judged.sql


def test_the_setting_off_leaves_the_scope_id_unchanged() -> None:
    """Existing scopes keep their ids: the setting is left out of the canonical form at its default."""
    scope = example_scope()
    assert '"dominance"' not in scope.canonical_json()
    asked = scope.model_copy(
        update={"disclosure": scope.disclosure.model_copy(update={"dominance": Dominance()})}
    )
    assert '"dominance"' in asked.canonical_json()


def test_a_judged_query_runs_as_one_task_rather_than_split_wrongly() -> None:
    """The (unit, value) lists do not combine across unit-partitioned parts as the other hidden columns
    do: the splitter refuses, with its reason, and the query runs over all parts in one sandbox."""
    from policies.distributed.split import NotSplittable, split_query

    sql = "SELECT district, SUM(income) AS s FROM citizens GROUP BY district"
    scope = example_scope()
    asked = scope.model_copy(
        update={"disclosure": scope.disclosure.model_copy(update={"dominance": Dominance()})}
    )
    refused = split_query(prepare(sql, asked, example_catalog()).sql, units={"citizens": "person_id"})
    assert isinstance(refused, NotSplittable)
    assert "ARRAY_AGG" in refused.reason
    plain = split_query(prepare(sql, scope, example_catalog()).sql, units={"citizens": "person_id"})
    assert not isinstance(plain, NotSplittable)
