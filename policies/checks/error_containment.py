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

from policies.analysis.levels import Analysis
from policies.analysis.markers import GENERATED_META
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
    exp.Window,  # only over aggregates (syntax): SUM/COUNT/AVG/MIN/MAX of released rows, guarded below
)
_NESTED_QUERY = (exp.Query, exp.Subquery)
#: Casts that cannot fail from a number.
_SAFE_CASTS = frozenset({"DOUBLE", "FLOAT", "VARCHAR", "TEXT"})


def error_containment(analysis: Analysis, ctx: PolicyContext) -> Iterator[Finding]:
    """Findings for expressions over aggregates that could raise an error for some groups."""
    if any_suspect(analysis):
        yield from findings_in_order(analysis)


def findings_in_order(analysis: Analysis) -> Iterator[Finding]:
    """Every finding, root by root of every aggregating SELECT (the order they are reported in)."""
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


def any_suspect(analysis: Analysis) -> bool:
    """Whether ``_visit`` reports anything: the nodes it reports lie between an aggregate and the
    root (select-list item, HAVING condition, ORDER BY item) of an aggregating SELECT that it hangs
    from, so climbing from every aggregate finds them without descending every expression. The
    climb stops where ``_visit`` does not descend: at a query and at another aggregate (which climbs
    on its own)."""
    for aggregate in analysis.aggregates():
        path: list[exp.Expr] = []
        node = aggregate.parent
        while node is not None and not isinstance(node, _NESTED_QUERY) and type(node) not in AGGREGATES:
            path.append(node)
            node = node.parent
        if not path or not isinstance(node, exp.Select):
            continue
        scope = analysis.scope_of_select(node)
        if scope is None or not scope.aggregating:
            continue
        top = path[-1].arg_key
        if top in ("having", "order"):
            path.pop()  # the clause itself; its condition or ORDER BY items are the roots
        elif top != "expressions":
            continue  # WHERE, GROUP BY, JOIN …: not roots
        if any(_reported(n) for n in path):
            return True
    return False


def _reported(node: exp.Expr) -> bool:
    """Whether ``_visit`` reports ``node`` once it holds an aggregate."""
    if node.meta_get(GENERATED_META):
        return False
    if isinstance(node, exp.Cast):
        return bool(node.to.this.name.upper() not in _SAFE_CASTS)
    return not isinstance(node, _SAFE_ABOVE_AGGREGATES)


def _above_aggregates(root: exp.Expr) -> Iterator[Finding]:
    findings: list[exp.Expr] = []
    _visit(root, findings)
    return (_finding(node) for node in findings)


def _visit(node: exp.Expr, out: list[exp.Expr]) -> bool:
    """Whether ``node`` holds an aggregate (not looking into nested queries); collects, in one
    bottom-up pass, the nodes above an aggregate that could raise."""
    if type(node) in AGGREGATES:
        return True  # its arguments are row level: contained by TRY
    found: list[exp.Expr] = []
    has = False
    for child in node.iter_expressions():
        if not isinstance(child, _NESTED_QUERY) and _visit(child, found):
            has = True
    if not has:
        return False
    if _reported(node):
        out.append(node)
    out.extend(found)
    return True


def _finding(node: exp.Expr) -> Finding:
    text = node.sql(dialect="duckdb")
    return Finding(
        "uncontained_error",
        "this expression over aggregates could fail for some groups, and a failed job would say so; "
        "use arithmetic, comparisons, CASE, ROUND or a cast to DOUBLE/VARCHAR over aggregates",
        text if len(text) <= 200 else text[:197] + "...",
    )
