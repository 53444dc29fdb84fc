"""Refuse what could still raise at run time outside the engine's ``TRY(…)``.

The ``contain_errors`` pass wraps every row-level expression in ``TRY``, but ``TRY`` cannot hold an
aggregate, so the expressions computed *from* aggregates (select list, HAVING, ORDER BY of an
aggregating SELECT) are judged here: only operators that cannot raise once the pass has guarded them
(arithmetic runs in DOUBLE, divisors become ``NULLIF(…, 0)``) are allowed there. A job that fails only
for some groups would answer a question about those groups by its state alone.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from policies.analysis.levels import GENERATED_META, Analysis, walk_same_query
from policies.analysis.syntax import AGGREGATES
from policies.context import PolicyContext
from policies.findings import Finding

#: Operators that cannot raise above an aggregate (arithmetic and divisions once guarded).
_SAFE_ABOVE_AGGREGATES = (
    exp.Alias,
    exp.Paren,
    exp.Ordered,
    exp.Predicate,
    exp.Connector,
    exp.Not,
    exp.Case,
    exp.If,
    exp.Coalesce,
    exp.Nullif,
    exp.Greatest,
    exp.Least,
    exp.Round,
    exp.Floor,
    exp.Ceil,
    exp.Sign,
    exp.Abs,
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Neg,
    exp.Div,
    exp.IntDiv,
    exp.Mod,
    exp.Filter,
)
#: Casts that cannot fail from a number.
_SAFE_CASTS = frozenset({"DOUBLE", "FLOAT", "VARCHAR", "TEXT"})


def error_containment(analysis: Analysis, ctx: PolicyContext) -> Iterator[Finding]:
    """Findings for expressions over aggregates that could raise an error for some groups."""
    for scope in analysis.scopes:
        if not scope.aggregating:
            continue
        select = scope.select
        roots: list[exp.Expr] = list(select.expressions)
        if (having := select.args.get("having")) is not None:
            roots.append(having.this)
        if (order := select.args.get("order")) is not None:
            roots.extend(order.expressions)
        for root in roots:
            yield from _above_aggregates(root)


def _above_aggregates(node: exp.Expr) -> Iterator[Finding]:
    if type(node) in AGGREGATES or not _has_aggregate(node):
        return  # row level: contained by TRY
    if not node.meta.get(GENERATED_META):
        if isinstance(node, exp.Cast):
            if node.to.this.name.upper() not in _SAFE_CASTS:
                yield _finding(node)
        elif not isinstance(node, _SAFE_ABOVE_AGGREGATES):
            yield _finding(node)
    for child in node.iter_expressions():
        yield from _above_aggregates(child)


def _has_aggregate(node: exp.Expr) -> bool:
    return any(type(n) in AGGREGATES for n in walk_same_query(node))


def _finding(node: exp.Expr) -> Finding:
    text = node.sql(dialect="duckdb")
    return Finding(
        "uncontained_error",
        "this expression over aggregates could fail for some groups, and a failed job would say so; "
        "use arithmetic, comparisons, CASE, ROUND or a cast to DOUBLE/VARCHAR over aggregates",
        text if len(text) <= 200 else text[:197] + "...",
    )
