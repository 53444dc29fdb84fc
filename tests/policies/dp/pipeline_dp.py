"""The DP rewrite as the lead will register it, for tests: the existing passes with the DP passes in
their places, and the DP plan computed from the original query (as ``prepare`` will)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.context import PolicyContext
from policies.dp.passes import (
    bound_groups_per_unit,
    bound_rows_per_unit,
    clamp_unit_contributions,
    clamp_values,
    expose_mean_parts,
)
from policies.dp.plan import DpPlan, plan_dp
from policies.errors import PolicyViolation
from policies.passes.add_unit_counts import add_unit_counts
from policies.passes.apply_masks import apply_masks
from policies.passes.apply_row_filters import apply_row_filters
from policies.passes.contain_errors import contain_errors
from policies.passes.guard_arithmetic import guard_arithmetic
from policies.pipeline import parse_and_qualify, run_checks

DP_REWRITES = (
    apply_masks,
    guard_arithmetic,
    clamp_values,
    expose_mean_parts,
    add_unit_counts,
    apply_row_filters,
    clamp_unit_contributions,
    bound_groups_per_unit,
    bound_rows_per_unit,
    contain_errors,
)


@dataclass(frozen=True)
class DpPrepared:
    sql: str
    plan: DpPlan
    tree: exp.Expr


def prepare_dp(sql: str, ctx: PolicyContext) -> DpPrepared:
    tree, findings = parse_and_qualify(sql, ctx)
    if tree is None:
        raise PolicyViolation("refused", findings=findings)
    analysis = Analysis(tree, ctx)
    findings = run_checks(analysis, ctx)
    if findings:
        raise PolicyViolation("refused", findings=findings)
    plan = plan_dp(analysis, ctx)
    for rewrite in DP_REWRITES:
        tree = rewrite(tree, analysis, ctx)
    return DpPrepared(tree.sql(dialect="duckdb", comments=False), plan, tree)
