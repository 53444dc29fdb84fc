"""Make the k rule part of the query: every final SELECT keeps only rows backed by ``min_units``
distinct units, before ORDER BY, LIMIT, OFFSET, window functions and the row cap see them.

Dropping small rows after the query has run lets a group below k take part in everything that ran
before: it sorts first and fills ``LIMIT 1`` (0 rows instead of 1 say that it exists), a CASE in ORDER BY
binary-searches one person's value, and "LIMIT 5 returned 4 rows" says that something was withheld.
With the threshold in a HAVING of every final SELECT (every branch of a set operation), those clauses
only ever see rows that may be released, so nothing the operator receives depends on whether a group
below k exists. The output check still drops rows below k (defence in depth; it then finds none).

Only the hidden ``_sbx_units*`` columns (one per unit slot, from ``add_unit_counts``) count for k; any
other ``_sbx_`` column a later pass adds is hidden but not a unit count. The condition names them by
their output alias (DuckDB resolves select-list aliases in HAVING; the ``_sbx`` prefix is reserved, so
no name a query writes can shadow them), which keeps the rewritten query small to re-check and
generate.

``suppression: remainder`` scopes get the same condition; ``merge_small_rows`` then adds the remainder
as a branch of its own, computed from the rows of the small groups, so ORDER BY and LIMIT still never
see a small group.
"""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.context import PolicyContext
from policies.passes._build import generated
from policies.passes.add_unit_counts import UNITS, leaves


def suppress_small_rows(tree: exp.Expr, analysis: Analysis, ctx: PolicyContext) -> exp.Expr:
    """Add ``HAVING <every unit count> >= min_units`` to every final SELECT.

    >>> from policies.examples import example_context
    >>> from policies.passes.add_unit_counts import add_unit_counts
    >>> ctx, tree, analysis = example_context(
    ...     "SELECT sex, COUNT(*) AS n FROM citizens GROUP BY sex HAVING COUNT(*) > 1 ORDER BY n LIMIT 1")
    >>> tree = suppress_small_rows(add_unit_counts(tree, analysis, ctx), analysis, ctx)
    >>> tree.args["having"].sql(dialect="duckdb")
    'HAVING COUNT(*) > 1 AND "_sbx_units" >= 10'
    """
    if ctx.disclosure.dp is not None:
        return tree  # DP: released keys are the public domain's or DP partition selection's, not k's
    k = ctx.disclosure.min_units
    for select in leaves(tree):
        counts = [p.alias for p in select.expressions if isinstance(p, exp.Alias) and is_unit_count(p.alias)]
        if not counts:
            continue
        conditions = [
            generated(exp.GTE(this=exp.column(name, quoted=True), expression=exp.Literal.number(k)))
            for name in counts
        ]
        having = select.args.get("having")
        if having is not None:
            conditions.insert(0, _grouped(having.this))
        condition = conditions[0]
        for more in conditions[1:]:
            condition = exp.And(this=condition, expression=more)
        select.set("having", exp.Having(this=condition))
    return tree


def is_unit_count(name: str) -> bool:
    """Whether a hidden column is one of the unit counts that decide k (``_sbx_units``,
    ``_sbx_units_1``, …), as opposed to any other hidden ``_sbx_`` column.

    >>> is_unit_count("_sbx_units_2"), is_unit_count("_sbx_cohort")
    (True, False)
    """
    return name == UNITS or name.startswith(UNITS + "_")


def _grouped(condition: exp.Expr) -> exp.Expr:
    """The user's HAVING condition, parenthesised when an OR would otherwise bind looser than AND."""
    return exp.Paren(this=condition) if isinstance(condition, exp.Or) else condition
