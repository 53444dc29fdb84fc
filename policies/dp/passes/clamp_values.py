"""Clamp the argument of every SUM and AVG of a DP query to its column's bounds (DP only).

Under DP the argument is a bare column (``policies.dp.plan`` refuses anything else). The sensitivity
of a sum is ``rows × max(|low|, |high|)`` only if every summed value lies in ``[low, high]``.
``apply_masks`` already clamps bounded columns where they are read; this pass clamps the aggregate's
argument as well (unless that is apply_masks' clamp to the same bounds), so the bound holds whatever a
CTE computed from the column on the way (``WITH t AS (SELECT income * 2 AS y …) SELECT SUM(y)`` is
clamped to ``income``'s bounds). A CASE rather than ``LEAST(GREATEST(x, lo), hi)``: those skip NULLs
in DuckDB and would turn a NULL into a bound.
"""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.markers import FAMILY_META, MASK_META
from policies.context import PolicyContext
from policies.dp.plan import aggregate_bounds
from policies.errors import PassOrderError
from policies.passes._build import generated, number


def clamp_values(tree: exp.Expr, analysis: Analysis, ctx: PolicyContext) -> exp.Expr:
    """Wrap each SUM/AVG argument of the final SELECT in a clamp to the plan's bounds.

    >>> from policies.dp.examples import dp_context
    >>> ctx, tree, analysis = dp_context("SELECT ward, SUM(cost) AS s FROM visits GROUP BY ward")
    >>> sum_s = clamp_values(tree, analysis, ctx).selects[1]
    >>> print(sum_s.sql(dialect="duckdb"))  # doctest: +NORMALIZE_WHITESPACE
    SUM(CASE WHEN "visits"."cost" < 0 THEN 0 WHEN "visits"."cost" > 500 THEN 500
        ELSE "visits"."cost" END) AS "s"
    """
    if ctx.disclosure.dp is None or not isinstance(tree, exp.Select):
        return tree
    top = analysis.scope_of_select(tree)
    if top is None:
        return tree
    for projection in tree.expressions:
        aggregate = projection.unalias()
        if not isinstance(aggregate, exp.Sum | exp.Avg):
            continue
        arg = aggregate.this
        bounded = aggregate_bounds(analysis, top, arg, ctx)
        if bounded is None:
            raise PassOrderError("clamp_values: a SUM or AVG without bounds; dp_query_shape must refuse it")
        low, high = bounded[1]
        if arg.meta_get(MASK_META) and _clamped_to(arg, low, high):
            continue  # apply_masks clamped this very column to these bounds where it is read
        placeholder = exp.Null()
        arg.replace(placeholder)
        clamped = exp.Case(
            ifs=[
                exp.If(this=exp.LT(this=arg.copy(), expression=number(low)), true=number(low)),
                exp.If(this=exp.GT(this=arg.copy(), expression=number(high)), true=number(high)),
            ],
            default=arg,
        )
        generated(clamped)
        # Judged as the column it clamps (as apply_masks' clamp is): the re-check must not read the
        # engine's own CASE as a conditional aggregate written by the operator.
        clamped.meta[MASK_META] = True
        clamped.meta[FAMILY_META] = "num"
        placeholder.replace(clamped)
    return tree


def _clamped_to(node: exp.Expr, low: float, high: float) -> bool:
    """Whether ``node`` is apply_masks' clamp ``CASE WHEN x < low … WHEN x > high …`` of one column."""
    if not isinstance(node, exp.Case) or len(node.args.get("ifs") or []) != 2:
        return False
    below, above = node.args["ifs"]
    return (
        isinstance(below.this, exp.LT)
        and isinstance(above.this, exp.GT)
        and below.this.expression == number(low)
        and above.this.expression == number(high)
    )
