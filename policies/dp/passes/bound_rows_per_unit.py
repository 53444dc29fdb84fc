"""Keep at most ``max_rows_per_unit`` rows of each privacy unit in every scan of a table (DP only).

Every scan of a granted table, inside CTEs and subqueries too, keeps for each unit the rows that come
first in the order of a keyed hash of the whole row (deterministic: equal hashes mean, but for a
2^-64 chance, identical rows). Runs after ``apply_row_filters``: the allowance is spent on rows the
scope lets the query see.
"""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.markers import FILTERED_SCAN_META
from policies.analysis.scopes import Base, source_nodes
from policies.context import PolicyContext
from policies.dp.passes._sample import keyed_hash, sampled_scan
from policies.passes._build import column


def bound_rows_per_unit(tree: exp.Expr, analysis: Analysis, ctx: PolicyContext) -> exp.Expr:
    """Wrap every table scan in a per-unit ROW_NUMBER sample of ``max_rows_per_unit`` rows.

    >>> from policies.dp.examples import dp_context
    >>> ctx, tree, analysis = dp_context("SELECT COUNT(*) AS n FROM visits v")
    >>> sql = bound_rows_per_unit(tree, analysis, ctx).sql(dialect="duckdb")
    >>> print(sql)  # doctest: +NORMALIZE_WHITESPACE
    SELECT COUNT(*) AS "n" FROM (SELECT * FROM "visits" AS "v" QUALIFY ROW_NUMBER() OVER
    (PARTITION BY "v"."person_id" ORDER BY HASH($sbx_dp_key, "v"."cost", "v"."person_id", "v"."ward")) <= 3)
    AS "v"
    """
    dp = ctx.disclosure.dp
    if dp is None:
        return tree
    for scope in analysis.scopes:
        for node in source_nodes(scope.select):
            alias = node.alias_or_name
            source = scope.sources.get(alias.lower())
            if not isinstance(source, Base) or not _is_scan(node, source):
                continue
            table = source.table
            columns: list[exp.Expr] = [column(name, alias) for name in sorted(table.columns)]
            placeholder = exp.Null()
            node.replace(placeholder)  # detached, the scan itself moves inside the sample (no copy)
            placeholder.replace(
                sampled_scan(
                    node,
                    alias=alias,
                    table=table.ref.sql_name,
                    unit=table.unit,
                    rank=exp.RowNumber(),
                    order=[keyed_hash(columns)],
                    limit=dp.rows_per_unit(table.ref.sql_name),
                )
            )
    return tree


def _is_scan(node: exp.Expr, source: Base) -> bool:
    """The table itself, or the filtered scan ``apply_row_filters`` put in its place."""
    return node is source.node or bool(isinstance(node, exp.Subquery) and node.meta_get(FILTERED_SCAN_META))
