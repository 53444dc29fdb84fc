"""Add the hidden sum and count behind every AVG of a DP query (DP only).

The noise module releases a mean as noisy sum / noisy count (each with its own share of epsilon), so
the pre-noise result needs both: ``_sbx_dp_sum_<i>`` and ``_sbx_dp_count_<i>`` for the AVG at output
position ``i``, over the same (clamped) argument. They are hidden columns, removed from the release.
Runs after ``clamp_values``.
"""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.context import PolicyContext
from policies.dp.plan import MEAN_COUNT, MEAN_SUM
from policies.passes._build import generated, ident


def expose_mean_parts(tree: exp.Expr, analysis: Analysis, ctx: PolicyContext) -> exp.Expr:
    """Append SUM(arg) and COUNT(arg) for each AVG(arg) of the final SELECT.

    >>> from policies.dp.examples import dp_context
    >>> ctx, tree, analysis = dp_context("SELECT AVG(cost) AS a FROM visits")
    >>> for select in expose_mean_parts(tree, analysis, ctx).selects:
    ...     print(select.sql(dialect="duckdb"))
    AVG("visits"."cost") AS "a"
    SUM("visits"."cost") AS "_sbx_dp_sum_0"
    COUNT("visits"."cost") AS "_sbx_dp_count_0"
    """
    if ctx.disclosure.dp is None or not isinstance(tree, exp.Select):
        return tree
    for position, projection in enumerate(list(tree.expressions)):
        value = projection.unalias()
        if not isinstance(value, exp.Avg):
            continue
        arg = value.this
        sum_name, count_name = MEAN_SUM.format(i=position), MEAN_COUNT.format(i=position)
        parts = ((exp.Sum(this=arg.copy()), sum_name), (exp.Count(this=arg.copy()), count_name))
        for value, name in parts:
            tree.append("expressions", generated(exp.Alias(this=value, alias=ident(name))))
    return tree
