"""Replace every scan of a table that has a row filter by a filtered subquery of it.

A subquery (rather than a WHERE conjunct) keeps outer joins correct: the filtered-out rows are simply
absent from the table, whichever side of a join it is on. Scans inside CTEs and subqueries are covered
because every SELECT scope is visited.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.markers import FILTERED_SCAN_META
from policies.analysis.scopes import Base, source_nodes
from policies.context import PolicyContext
from policies.passes._build import generated, ident


def apply_row_filters(tree: exp.Expr, analysis: Analysis, ctx: PolicyContext) -> exp.Expr:
    """Inject the scope's row filter into every scan of its table.

    >>> from policies.examples import example_context
    >>> ctx, tree, analysis = example_context("SELECT COUNT(*) FROM citizens c")
    >>> apply_row_filters(tree, analysis, ctx).sql(dialect="duckdb")
    'SELECT COUNT(*) AS "_col_0" FROM (SELECT * FROM "citizens" WHERE district <> \\'Military Zone\\') AS "c"'
    """
    for scope in analysis.scopes:
        for node in source_nodes(scope.select):
            source = scope.sources.get(node.alias_or_name.lower())
            if not isinstance(source, Base) or source.node is not node or not isinstance(node, exp.Table):
                continue
            text = source.table.row_filter
            if text is None:
                continue
            name = source.table.ref.sql_name
            condition = source.table.row_filter_condition
            if condition is None:  # a context built by hand: parse the filter here
                condition = sqlglot.parse_one(text, dialect=ctx.sql_dialect, into=exp.Condition)
            # Built from nodes rather than with exp.select(...), which parses its string arguments.
            inner = exp.Select(
                expressions=[exp.Star()],
                from_=exp.From(this=exp.Table(this=ident(name))),
                where=exp.Where(this=condition.copy()),
            )
            scan = exp.Subquery(this=inner, alias=exp.TableAlias(this=ident(node.alias_or_name)))
            generated(scan)
            scan.meta[FILTERED_SCAN_META] = name
            node.replace(scan)
    return tree
