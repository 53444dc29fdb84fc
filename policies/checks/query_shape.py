"""The shape of an aggregate-only query: where aggregation, DISTINCT, ORDER BY/LIMIT and set operations
may appear, and that the final result is aggregated.

Derived tables (CTEs, subqueries in FROM) stay row-level so that the privacy unit of every row can be
carried to the final aggregation, where the hidden unit count is computed.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from policies.analysis.levels import STAR_META, Analysis, SelectScope
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
    else:
        if scope.role == "scalar":
            yield Finding(
                "scalar_subquery", "scalar subqueries are not allowed; use a join or a CTE", _short(select)
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
    if select.meta.get(STAR_META) and scope.role not in ("exists",):
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


def _set_operations(analysis: Analysis) -> Iterator[Finding]:
    """Only UNION [ALL], and only at the top (between final aggregates)."""
    for op in analysis.find_all(exp.SetOperation):
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
