"""Cap the number of result rows at the scope's ``max_rows`` (+1, so the output check can tell a
capped result from one that happened to have exactly ``max_rows`` rows and say so in its report)."""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.context import PolicyContext


def cap_rows(tree: exp.Expr, analysis: Analysis, ctx: PolicyContext) -> exp.Expr:
    """Lower (or add) the final LIMIT.

    >>> from policies.examples import example_context
    >>> ctx, tree, analysis = example_context("SELECT COUNT(*) FROM citizens LIMIT 50000")
    >>> cap_rows(tree, analysis, ctx).sql(dialect="duckdb")
    'SELECT COUNT(*) AS "_col_0" FROM "citizens" AS "citizens" LIMIT 101'
    """
    if ctx.disclosure.dp is not None:
        return tree  # DP: capped after the noise, so that exact values never decide which rows leave
    cap = ctx.disclosure.max_rows + 1
    limit = tree.args.get("limit")
    value = limit.expression if isinstance(limit, exp.Limit) else None
    if isinstance(value, exp.Literal) and value.is_int and int(value.name) <= cap:
        return tree
    if isinstance(tree, exp.Select):
        # Built directly: ``Query.limit`` parses its argument.
        tree.set("limit", exp.Limit(expression=exp.Literal.number(cap)))
        return tree
    if isinstance(tree, exp.Query):
        return tree.limit(cap, copy=False)
    return tree
