"""Golden tests: one file per rewrite pass, plus the static checks."""

from __future__ import annotations

import importlib
from dataclasses import replace

import pytest

from policies import check
from policies.examples import example_catalog, example_context, example_scope
from tests.policies.golden import GOLDEN_DIR, GoldenCase, load_cases

PASS_FILES = [
    "apply_masks",
    "guard_arithmetic",
    "add_unit_counts",
    "neutralise_small_subsets",
    "suppress_small_rows",
    "apply_row_filters",
    "contain_errors",
    "merge_small_rows",
    "cap_rows",
]
#: The DP bounding passes (no-ops without dp) have their goldens under ``dp/`` (test_golden_dp.py).
DP_PASS_FILES = [
    "clamp_values",
    "expose_mean_parts",
    "clamp_unit_contributions",
    "bound_groups_per_unit",
    "bound_rows_per_unit",
]
#: Passes that read what an earlier pass added run after it in their golden tests.
PREREQUISITES = {
    "neutralise_small_subsets": ("add_unit_counts",),
    "suppress_small_rows": ("add_unit_counts",),
    "merge_small_rows": ("add_unit_counts", "suppress_small_rows"),
}
#: Passes whose golden cases run under the example scope with other disclosure settings.
DISCLOSURE = {"merge_small_rows": {"suppression": "remainder"}}
PASS_CASES = [case for name in PASS_FILES for case in load_cases(GOLDEN_DIR / f"{name}.sql")]
CHECK_CASES = load_cases(GOLDEN_DIR / "checks.sql")


@pytest.mark.parametrize("case", PASS_CASES, ids=lambda c: c.id)
def test_pass_golden(case: GoldenCase) -> None:
    rewrite = getattr(importlib.import_module(f"policies.passes.{case.file}"), case.file)
    ctx, tree, analysis = example_context(case.sql)
    if case.file in DISCLOSURE:
        ctx = replace(ctx, disclosure=ctx.disclosure.model_copy(update=DISCLOSURE[case.file]))
    for name in PREREQUISITES.get(case.file, ()):
        tree = getattr(importlib.import_module(f"policies.passes.{name}"), name)(tree, analysis, ctx)
    assert rewrite(tree, analysis, ctx).sql(dialect="duckdb", comments=False) == case.expected


@pytest.mark.parametrize("case", CHECK_CASES, ids=lambda c: c.id)
def test_check_golden(case: GoldenCase) -> None:
    report = check(case.sql, example_scope(), example_catalog())
    assert not report.allowed
    assert case.expect_error <= {f.rule for f in report.findings}


def test_every_pass_has_a_golden_file() -> None:
    from policies.passes import REWRITES

    assert {r.__name__ for r in REWRITES} == set(PASS_FILES) | set(DP_PASS_FILES)
    for name in PASS_FILES:
        assert load_cases(GOLDEN_DIR / f"{name}.sql"), name
    for name in DP_PASS_FILES:
        assert load_cases(GOLDEN_DIR / "dp" / f"{name}.sql"), name
