"""Keep at most ``max_rows_per_unit`` rows of each privacy unit in every scan of a table (DP only).

Only units with more rows than the bound are ranked (``_sample.light_units``): the others keep every
row without a sort, which is what the ranking would have kept too. The ranked units keep the rows whose
row number is ``BETWEEN 1 AND n``: the same rows as ``<= n``, written so that DuckDB sorts them rather
than rewriting the filter into a per-unit top-n aggregate (twice as slow, measured).

Every scan of a granted table, inside CTEs and subqueries too, keeps for each unit the rows that come
first in the order of a keyed hash of the columns the query reads from it (deterministic: equal hashes
mean, but for a 2^-64 chance, rows the query cannot tell apart). Runs after ``apply_row_filters``: the
allowance is spent on rows the scope lets the query see. Left alone: a table with one row per unit
(declared ``one_row_per_unit`` or measured ``unique_units`` in the catalog: the sample would keep every
row, and one row reaches one group), and a scan ``bound_groups_per_unit`` already sampled (its one
window bounds the rows too).
"""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.markers import FILTERED_SCAN_META
from policies.analysis.scopes import Base, source_nodes
from policies.context import PolicyContext
from policies.dp.passes._sample import SAMPLED_META, keyed_hash, read_columns, sampled_scan
from policies.passes._build import column


def bound_rows_per_unit(tree: exp.Expr, analysis: Analysis, ctx: PolicyContext) -> exp.Expr:
    """Wrap every table scan in a per-unit ROW_NUMBER sample of ``max_rows_per_unit`` rows.

    >>> from policies.dp.examples import dp_context
    >>> ctx, tree, analysis = dp_context("SELECT SUM(cost) AS s FROM visits v")
    >>> sql = bound_rows_per_unit(tree, analysis, ctx).sql(dialect="duckdb")
    >>> print(sql)  # doctest: +NORMALIZE_WHITESPACE
    SELECT SUM("v"."cost") AS "s" FROM (WITH "_sbx_dp_heavy" AS (SELECT "v"."person_id" FROM "visits" AS
    "v" GROUP BY "v"."person_id" HAVING COUNT(*) > 3) SELECT * FROM "visits" AS "v" WHERE NOT
    EXISTS(SELECT 1 FROM "_sbx_dp_heavy" AS "_sbx_dp_heavy" WHERE "_sbx_dp_heavy"."person_id" IS NOT
    DISTINCT FROM "v"."person_id") UNION ALL SELECT * FROM "visits" AS "v" WHERE EXISTS(SELECT 1 FROM
    "_sbx_dp_heavy" AS "_sbx_dp_heavy" WHERE "_sbx_dp_heavy"."person_id" IS NOT DISTINCT FROM
    "v"."person_id") QUALIFY ROW_NUMBER() OVER (PARTITION BY "v"."person_id" ORDER BY
    HASH($sbx_dp_key, "v"."cost")) BETWEEN 1 AND 3) AS "v"
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
            if table.unsampled:
                continue  # every unit has one row here: the sample would keep every row
            read = read_columns(scope.select, alias, list(table.columns))
            columns: list[exp.Expr] = [column(name, alias) for name in read]
            placeholder = exp.Null()
            node.replace(placeholder)  # detached, the scan itself moves inside the sample (no copy)
            placeholder.replace(
                sampled_scan(
                    node,
                    alias=alias,
                    table=table.ref.sql_name,
                    unit=table.unit,
                    bounds=[(exp.RowNumber(), [keyed_hash(columns)], dp.rows_per_unit(table.ref.sql_name))],
                    light_first=True,
                )
            )
    return tree


def _is_scan(node: exp.Expr, source: Base) -> bool:
    """The table itself, or the filtered scan ``apply_row_filters`` put in its place."""
    if node.meta_get(SAMPLED_META):
        return False
    return node is source.node or bool(isinstance(node, exp.Subquery) and node.meta_get(FILTERED_SCAN_META))
