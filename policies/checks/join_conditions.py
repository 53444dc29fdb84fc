"""Joins only on privacy units and join keys, or on declared public dimensions.

A condition that links two tables (in JOIN … ON, or in WHERE across a comma join) on anything else
pairs people by their attributes: ``ON b.sex = c.sex`` multiplies every row by the size of a group,
an inequality join ranks people against each other, and either makes the work (and so the time and
the memory a job takes) depend on single rows. So every comparison of values from two or more sources
must be an equality of two join keys (``a.person_id = b.person_id``) or of two ``public`` columns
(a steward's declared public dimension, such as a facility code), and every JOIN … ON must hold one
such equality (joins without ON are refused by ``only_known_tables``). Conditions on one source
(``LEFT JOIN d ON … AND d.sex = 'F'``) only filter it and are judged by ``column_uses`` like WHERE; so
do comparisons between sources joined on their privacy units, which compare one person's own rows
(``v.visit_date > c.birth_date`` after ``ON c.person_id = v.person_id``).
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.lineage import Info, Shape
from policies.analysis.scopes import SelectScope, walk_same_query
from policies.catalog import ColumnClass
from policies.context import PolicyContext
from policies.findings import Finding
from policies.model import Use

#: Nodes that compare values; the conditions inside them are judged on their own.
_COMPARISONS = (exp.Predicate,)
_CONDITIONS = (exp.Predicate, exp.Connector, exp.Not, exp.Query, exp.Subquery)
_ALLOWED = (
    "join only on the privacy unit or join keys (JOIN … ON a.person_id = b.person_id), or on columns "
    "the data steward declared public (a.code = b.code); put conditions on one table in WHERE"
)


def join_conditions(analysis: Analysis, ctx: PolicyContext) -> Iterator[Finding]:
    """Findings for join conditions on anything but keys and public dimensions, and for cross joins."""
    for scope in analysis.scopes:
        select = scope.select
        joins = select.args.get("joins") or ()
        if not joins:
            continue
        yield from _scope(analysis, ctx, scope, joins)


def _scope(
    analysis: Analysis, ctx: PolicyContext, scope: SelectScope, joins: list[exp.Join]
) -> Iterator[Finding]:
    # Each conjunct once: how it links two sources ("unit", "key", "public"), or None.
    conditions: list[tuple[exp.Expr, str | None]] = []
    for join in joins:
        on = join.args.get("on")
        if on is None:
            continue  # a join without ON is refused by only_known_tables (join_without_condition)
        own = [(c, _link(analysis, ctx, scope, c)) for c in _conjuncts(on)]
        if not any(kind for _, kind in own):
            yield _finding(f"{join.this.alias_or_name} is not joined on a key: {_ALLOWED}", join.this)
        conditions.extend(own)
    if (where := scope.select.args.get("where")) is not None:
        conditions.extend((c, _link(analysis, ctx, scope, c)) for c in _conjuncts(where.this))
    # Sources joined on their privacy units hold the same person's rows: comparing their values
    # compares one person with themselves (``v.visit_date > c.birth_date``), which links nobody.
    person = _SamePerson()
    for condition, kind in conditions:
        if kind == "unit":
            person.join(condition.this.table.lower(), condition.expression.table.lower())
    for condition, kind in conditions:
        if kind is not None:
            continue
        for comparison in walk_same_query(condition):
            if not isinstance(comparison, _COMPARISONS):
                continue
            aliases = _compared_aliases(comparison)
            if len(aliases) > 1 and not person.same(aliases):
                yield _finding(f"this condition links tables on something else: {_ALLOWED}", comparison)


class _SamePerson:
    """Aliases known to hold the same unit's rows (a union-find over unit equalities)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, alias: str) -> str:
        while self.parent.get(alias, alias) != alias:
            alias = self.parent[alias]
        return alias

    def join(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)

    def same(self, aliases: set[str]) -> bool:
        return len({self.find(a) for a in aliases}) == 1


def _link(analysis: Analysis, ctx: PolicyContext, scope: SelectScope, condition: exp.Expr) -> str | None:
    """How an allowed equality links two sources: ``unit`` (two privacy-unit columns: the same person
    on both sides), ``key`` (two other join keys), ``public`` (two public columns); else ``None``."""
    if not isinstance(condition, exp.EQ | exp.NullSafeEQ):
        return None
    left, right = condition.this, condition.expression
    if not (isinstance(left, exp.Column) and isinstance(right, exp.Column)):
        return None
    infos = (analysis.info(left, scope), analysis.info(right, scope))
    kinds = {_kind(ctx, info) for info in infos}
    if kinds == {"public"}:
        return "public"
    if kinds != {"key"}:
        return None
    return "unit" if all(_is_unit(ctx, info) for info in infos) else "key"


def _is_unit(ctx: PolicyContext, info: Info) -> bool:
    ((origin, _),) = info.lineage.items()
    table = ctx.table(origin.table)
    return table is not None and origin.column == table.unit


def _kind(ctx: PolicyContext, info: Info) -> str | None:
    if len(info.lineage) != 1:
        return None
    ((origin, shape),) = info.lineage.items()
    if shape is not Shape.PURE:
        return None
    if origin.use is Use.JOIN_KEY:
        return "key"
    table = ctx.table(origin.table)
    column = table.column(origin.column) if table is not None else None
    if column is not None and column.cls is ColumnClass.PUBLIC and origin.use in (Use.GROUP, Use.PLAIN):
        return "public"
    return None


def _conjuncts(node: exp.Expr) -> list[exp.Expr]:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    return [node]


def _compared_aliases(comparison: exp.Expr) -> set[str]:
    """The table aliases whose *values* a comparison compares (its own query's, and outer ones when
    correlated). Conditions nested in it (a CASE's WHEN) are comparisons of their own and are not
    counted: ``CASE WHEN c.a = 1 AND v.b = 2 THEN 1 END = 1`` filters rows, it links nothing."""
    out: set[str] = set()
    stack = list(comparison.iter_expressions())
    while stack:
        node = stack.pop()
        if isinstance(node, exp.Column):
            if node.table:
                out.add(node.table.lower())
        elif not isinstance(node, _CONDITIONS):
            stack.extend(node.iter_expressions())
    return out


def _finding(message: str, node: exp.Expr) -> Finding:
    text = node.sql(dialect="duckdb")
    return Finding("join_condition", message, text if len(text) <= 200 else text[:197] + "...")
