"""Golden files of the DP bounding passes (each pass alone on the qualified tree under the DP scope),
and the no-op promise: without ``dp`` every DP pass leaves the query as it was."""

from __future__ import annotations

import importlib

import pytest

from policies.dp.examples import dp_context
from policies.examples import example_context
from tests.policies.golden import GOLDEN_DIR, GoldenCase, load_cases

DP_GOLDEN = GOLDEN_DIR / "dp"
DP_PASSES = [
    "clamp_values",
    "expose_mean_parts",
    "clamp_unit_contributions",
    "bound_groups_per_unit",
    "bound_rows_per_unit",
]
CASES = [case for name in DP_PASSES for case in load_cases(DP_GOLDEN / f"{name}.sql")]


def _pass(name: str):  # type: ignore[no-untyped-def]
    return getattr(importlib.import_module(f"policies.dp.passes.{name}"), name)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_dp_pass_golden(case: GoldenCase) -> None:
    ctx, tree, analysis = dp_context(case.sql)
    assert _pass(case.file)(tree, analysis, ctx).sql(dialect="duckdb", comments=False) == case.expected


@pytest.mark.parametrize("name", DP_PASSES)
def test_dp_pass_is_a_no_op_without_dp(name: str) -> None:
    sql = "SELECT district, COUNT(*) AS n, AVG(income) AS a FROM citizens GROUP BY district"
    ctx, tree, analysis = example_context(sql)
    before = tree.sql(dialect="duckdb")
    assert _pass(name)(tree, analysis, ctx).sql(dialect="duckdb") == before


def test_every_dp_pass_has_a_golden_file() -> None:
    import policies.dp.passes

    assert set(policies.dp.passes.__all__) == set(DP_PASSES)
    for name in DP_PASSES:
        assert load_cases(DP_GOLDEN / f"{name}.sql"), name
