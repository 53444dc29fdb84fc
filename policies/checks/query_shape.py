"""The shape of an aggregate-only query: where aggregation, DISTINCT, ORDER BY/LIMIT and set operations
may appear, and that the final result is aggregated.

Derived tables (CTEs, subqueries in FROM) stay row-level so that the privacy unit of every row can be
carried to the final aggregation, where the hidden unit count is computed.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.lineage import Info, Shape
from policies.analysis.markers import GENERATED_META, STAR_META
from policies.analysis.scopes import SelectScope
from policies.context import PolicyContext
from policies.findings import Finding
from policies.model import Use


def query_shape(analysis: Analysis, ctx: PolicyContext) -> Iterator[Finding]:
    """Findings for nested aggregation, row-level output, and ORDER/LIMIT/DISTINCT in the wrong place."""
    yield from _set_operations(analysis)
    yield from _limits(analysis)
    for node in analysis.find_all(exp.Rollup, exp.Cube, exp.GroupingSets):
        yield Finding(
            "grouping_sets",
            "ROLLUP, CUBE and GROUPING SETS are not allowed: a subtotal minus the "
            "released cells would reveal a suppressed one; run one GROUP BY per level",
            _short(node),
        )
    for scope in analysis.scopes:
        yield from _scope(analysis, scope)


def _scope(analysis: Analysis, scope: SelectScope) -> Iterator[Finding]:
    select = scope.select
    if scope.role == "top":
        if not scope.aggregating:
            yield Finding(
                "aggregate_only",
                "the result must be aggregated: add GROUP BY with aggregates such "
                "as COUNT(*), SUM(...), AVG(...)",
                _short(select),
            )
        distinct = select.args.get("distinct")
        if distinct is not None and distinct.args.get("on") is not None:
            yield Finding("distinct_on", "DISTINCT ON is not allowed; use GROUP BY", _short(select))
    elif select.meta_get(GENERATED_META):
        # The engine's own subquery (merge_small_rows' set of groups below k): built from the query's
        # checked FROM, WHERE and GROUP BY keys; it gates nothing on a single row.
        return
    else:
        if scope.role == "scalar":
            yield Finding(
                "scalar_subquery", "scalar subqueries are not allowed; use a join or a CTE", _short(select)
            )
        elif scope.role == "exists":
            # An uncorrelated EXISTS gates the whole result on whether one row exists anywhere: a
            # membership test about one person that no unit count can see.
            yield Finding(
                "exists_subquery",
                "EXISTS and NOT EXISTS are not allowed (the whole result would depend on whether a "
                "single row exists); join on the privacy unit or write unit IN (SELECT unit FROM …)",
                _short(select),
            )
        elif scope.role == "in" and not _unit_semi_join(analysis, scope):
            yield Finding(
                "in_subquery",
                "IN (SELECT …) is allowed only as a semi-join on the privacy unit: a bare join key "
                "column IN (SELECT one bare join key column of the same unit FROM …); anything else "
                "could gate the result on a single row",
                _short(select),
            )
        elif scope.aggregating:
            yield Finding(
                "nested_aggregate",
                "aggregate only in the outermost query: CTEs and subqueries must "
                "return rows, and the final SELECT groups them",
                _short(select),
            )
        if select.args.get("distinct") is not None and scope.role == "derived":
            yield Finding(
                "derived_distinct",
                "DISTINCT inside a CTE or subquery is not allowed; use COUNT(DISTINCT …) in the final SELECT",
                _short(select),
            )
        for key in ("order", "limit", "offset"):
            if select.args.get(key) is not None and scope.role != "exists":
                yield Finding(
                    "derived_limit",
                    "ORDER BY, LIMIT and OFFSET are allowed only on the final result",
                    _short(select),
                )
                break
    if select.meta_get(STAR_META) and scope.role not in ("exists",):
        protected = sorted(
            {
                f"{o.table}.{o.column}"
                for p in select.expressions
                for o in analysis.info(p, scope).lineage
                if o.use not in (Use.GROUP, Use.PLAIN)
            }
        )
        if protected:
            yield Finding(
                "star_expansion",
                f"SELECT * would include protected columns ({', '.join(protected)}); "
                "list the columns you need",
                _short(select),
            )


def _unit_semi_join(analysis: Analysis, scope: SelectScope) -> bool:
    """``a.unit IN (SELECT b.unit …)``: both sides bare join key columns of tables with the same unit
    column (the subquery then only narrows the people counted behind each row, like a join)."""
    node: exp.Expr | None = scope.select
    while node is not None and not isinstance(node, exp.In):
        node = node.parent
    if node is None or not isinstance(node.this, exp.Column):
        return False
    outer = analysis.scope_of(node)
    projections = scope.select.expressions
    if outer is None or len(projections) != 1 or not isinstance(projections[0].unalias(), exp.Column):
        return False
    left = _bare_unit(analysis, analysis.info(node.this, outer))
    right = _bare_unit(analysis, analysis.info(projections[0], scope))
    return left is not None and left == right


def _bare_unit(analysis: Analysis, info: Info) -> str | None:
    """The privacy unit behind a value that is exactly one table's unit column (a join key), else
    ``None``."""
    if len(info.lineage) != 1:
        return None
    ((origin, shape),) = info.lineage.items()
    table = analysis.ctx.table(origin.table)
    if origin.use is not Use.JOIN_KEY or shape is not Shape.PURE or table is None:
        return None
    return origin.column if origin.column == table.unit else None


def _set_operations(analysis: Analysis) -> Iterator[Finding]:
    """Only UNION [ALL], and only at the top (between final aggregates). The engine's own UNION ALL
    (marked generated: the DP sample that ranks only units above the bound, ``policies.dp.passes``)
    splits one table's rows by unit, never pads one cohort with another's rows."""
    for op in analysis.find_all(exp.SetOperation):
        if op.meta_get(GENERATED_META):
            continue
        at_top = _is_top(op)
        if isinstance(op, exp.Intersect | exp.Except):
            yield Finding(
                "set_operation", "INTERSECT and EXCEPT are not allowed; use UNION ALL or WHERE", _short(op)
            )
        elif not at_top:
            yield Finding(
                "set_operation",
                "UNION inside a CTE or subquery is not allowed (rows of one branch could pad the people "
                "counted behind another); UNION the final aggregates instead",
                _short(op),
            )


def _is_top(op: exp.Expr) -> bool:
    parent = op.parent
    while isinstance(parent, exp.SetOperation):
        parent = parent.parent
    return parent is None


def _limits(analysis: Analysis) -> Iterator[Finding]:
    for node in analysis.find_all(exp.Limit, exp.Offset):
        value = node.args.get("expression")
        if not (isinstance(value, exp.Literal) and value.is_int):
            yield Finding("limit_not_literal", "LIMIT and OFFSET take an integer literal", _short(node))


def _short(node: exp.Expr) -> str:
    text = node.sql(dialect="duckdb")
    return text if len(text) <= 200 else text[:197] + "..."
