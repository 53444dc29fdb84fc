"""Keep each privacy unit in at most ``max_groups_per_unit`` groups (DP only).

Applies where the plan can cut groups inside a scan: the final SELECT reads one table directly, so every
group key is a function of that table's row. There, each unit keeps only its rows whose group key comes
first in the order of a keyed hash of the key (ties broken by the key values, so that never more than
``max_groups_per_unit`` distinct keys survive, even if two keys' hashes collide). Elsewhere the rows
bound already limits the groups (a unit with ``M`` rows reaches at most ``M`` groups) and the plan uses
``M``; nothing is rewritten.

The same sample bounds the table's rows too (``bound_rows_per_unit`` leaves the scan alone): of the
kept group's rows, the first ``max_rows_per_unit`` by the hash of the columns the query reads. Two
shapes keep exactly the same rows:

* ``max_groups_per_unit: 1`` (the usual setting): one hash aggregate per unit picks its group and counts
  its rows, a semi-join keeps the rows of that group, and only units with more rows than the rows
  bound are ranked (``_sample.picked_group_scan``). No sort for the others.
* more groups: ``DENSE_RANK() <= G AND ROW_NUMBER() <= m`` over the group order followed by the row
  hash, two windows sharing their partition and order prefix (``_sample.sampled_scan``).

Runs after ``apply_row_filters`` and before ``bound_rows_per_unit``.
"""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.scopes import Base, source_nodes
from policies.context import PolicyContext
from policies.dp.passes._sample import keyed_hash, picked_group_scan, read_columns, sampled_scan
from policies.dp.plan import group_bound_table, rows_per_unit
from policies.passes._build import column


def bound_groups_per_unit(tree: exp.Expr, analysis: Analysis, ctx: PolicyContext) -> exp.Expr:
    """Wrap the one scan of a single-table GROUP BY in the per-unit group sample.

    >>> from policies.dp.examples import dp_context
    >>> ctx, tree, analysis = dp_context("SELECT ward, COUNT(*) AS n FROM visits GROUP BY ward")
    >>> sql = bound_groups_per_unit(tree, analysis, ctx).sql(dialect="duckdb")
    >>> print(sql)  # doctest: +NORMALIZE_WHITESPACE
    SELECT "visits"."ward" AS "ward", COUNT(*) AS "n" FROM (WITH "_sbx_dp_pick" AS (SELECT
    "visits"."person_id", ARG_MIN_NULL("visits"."ward", (HASH($sbx_dp_key, "visits"."ward"),
    "visits"."ward")) AS "_sbx_dp_group", COUNT(*) AS "_sbx_dp_rows" FROM "visits" AS "visits" GROUP BY
    "visits"."person_id") SELECT * FROM "visits" AS "visits" WHERE EXISTS(SELECT 1 FROM "_sbx_dp_pick"
    AS "_sbx_dp_pick" WHERE "_sbx_dp_pick"."person_id" IS NOT DISTINCT FROM "visits"."person_id" AND
    "_sbx_dp_pick"."_sbx_dp_group" IS NOT DISTINCT FROM "visits"."ward" AND "_sbx_dp_pick"."_sbx_dp_rows"
    <= 3) UNION ALL SELECT * FROM "visits" AS "visits" WHERE EXISTS(SELECT 1 FROM "_sbx_dp_pick" AS
    "_sbx_dp_pick" WHERE "_sbx_dp_pick"."person_id" IS NOT DISTINCT FROM "visits"."person_id" AND
    "_sbx_dp_pick"."_sbx_dp_group" IS NOT DISTINCT FROM "visits"."ward" AND "_sbx_dp_pick"."_sbx_dp_rows" >
    3) QUALIFY ROW_NUMBER() OVER (PARTITION BY "visits"."person_id" ORDER BY HASH($sbx_dp_key,
    "visits"."ward")) <= 3) AS "visits" GROUP BY "visits"."ward"
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
    if dp.max_groups_per_unit == 1:
        # The same rows as the window below, without sorting every unit (``picked_group_scan``).
        placeholder.replace(
            picked_group_scan(
                node,
                alias=alias,
                table=table.ref.sql_name,
                unit=table.unit,
                keys=keys,
                rows=[keyed_hash(read)],
                limit=dp.rows_per_unit(table.ref.sql_name),
            )
        )
        return tree
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
