"""Keep each privacy unit in at most ``max_groups_per_unit`` groups (DP only).

Applies where the plan can cut groups inside a scan: the final SELECT reads one table directly, so every
group key is a function of that table's row. There, each unit keeps only its rows whose group key comes
first in the order of a keyed hash of the key (DENSE_RANK, ties broken by the key values, so that
never more than ``max_groups_per_unit`` distinct keys survive, even if two keys' hashes collide).
Elsewhere the rows bound already limits the groups (a unit with ``M`` rows reaches at most ``M``
groups) and the plan uses ``M``; nothing is rewritten.

The same sample bounds the table's rows too: ``ROW_NUMBER()`` over the group order followed by the
hash of the columns the query reads, at most ``max_rows_per_unit``. The two windows share their
partition and an order prefix, so each unit's rows are sorted once (measured: about a third less than
two nested samples), and ``bound_rows_per_unit`` leaves the scan alone. The kept rows are the first
``m`` of the unit's rows in its first ``G`` groups: still at most ``m`` rows and ``G`` groups, chosen
from the unit's own rows only. Runs after ``apply_row_filters`` and before ``bound_rows_per_unit``.
"""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.scopes import Base, source_nodes
from policies.context import PolicyContext
from policies.dp.passes._sample import keyed_hash, read_columns, sampled_scan
from policies.dp.plan import group_bound_table, rows_per_unit
from policies.passes._build import column


def bound_groups_per_unit(tree: exp.Expr, analysis: Analysis, ctx: PolicyContext) -> exp.Expr:
    """Wrap the one scan of a single-table GROUP BY in a per-unit DENSE_RANK over its group keys.

    >>> from policies.dp.examples import dp_context
    >>> ctx, tree, analysis = dp_context("SELECT ward, COUNT(*) AS n FROM visits GROUP BY ward")
    >>> sql = bound_groups_per_unit(tree, analysis, ctx).sql(dialect="duckdb")
    >>> print(sql)  # doctest: +NORMALIZE_WHITESPACE
    SELECT "visits"."ward" AS "ward", COUNT(*) AS "n" FROM (SELECT * FROM "visits" AS "visits" QUALIFY
    DENSE_RANK() OVER (PARTITION BY "visits"."person_id" ORDER BY HASH($sbx_dp_key, "visits"."ward"),
    "visits"."ward") <= 1 AND ROW_NUMBER() OVER (PARTITION BY "visits"."person_id" ORDER BY
    HASH($sbx_dp_key, "visits"."ward"), "visits"."ward", HASH($sbx_dp_key, "visits"."ward")) <= 3)
    AS "visits" GROUP BY "visits"."ward"
    """
    dp = ctx.disclosure.dp
    if dp is None or not isinstance(tree, exp.Select):
        return tree
    bounded = group_bound_table(analysis)
    if bounded is None or dp.max_groups_per_unit >= rows_per_unit(analysis, dp):
        return tree  # the rows bound already keeps every unit within max_groups_per_unit groups
    policy = ctx.table(bounded)
    if policy is not None and policy.unsampled:
        return tree  # one row per unit: one group per unit, the sample would keep every row
    top = analysis.scope_of_select(tree)
    group = tree.args.get("group")
    if top is None or group is None:
        return tree
    node = source_nodes(tree)[0]
    alias = node.alias_or_name
    source = top.sources.get(alias.lower())
    if not isinstance(source, Base):
        return tree
    keys = [_key(k, tree) for k in group.expressions]
    table = source.table
    read: list[exp.Expr] = [column(name, alias) for name in read_columns(tree, alias, list(table.columns))]
    groups = [keyed_hash(keys), *(k.copy() for k in keys)]
    rows = [*(g.copy() for g in groups), keyed_hash(read)]
    placeholder = exp.Null()
    node.replace(placeholder)
    placeholder.replace(
        sampled_scan(
            node,
            alias=alias,
            table=table.ref.sql_name,
            unit=table.unit,
            bounds=[
                (exp.DenseRank(), groups, dp.max_groups_per_unit),
                (exp.RowNumber(), rows, dp.rows_per_unit(table.ref.sql_name)),
            ],
        )
    )
    return tree


def _key(key: exp.Expr, select: exp.Select) -> exp.Expr:
    """A GROUP BY item as an expression (``GROUP BY 1`` names the first output column)."""
    if isinstance(key, exp.Literal) and key.is_int:
        position: exp.Expr = select.expressions[int(key.name) - 1].unalias()
        return position
    return key
