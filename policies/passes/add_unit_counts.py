"""Add the hidden per-row count of distinct privacy units that the output check compares with k.

Every protected table scan behind the final aggregation contributes one *unit slot*: its unit column,
carried up through CTEs and subqueries as ``_sbx_u<i>``. The final SELECT gets one
``COUNT(DISTINCT slot)`` per slot (``_sbx_units``, ``_sbx_units_1``, …) and, for every aggregate with a
``FILTER (WHERE …)``, one count of the units in that subset and one of its complement within the row.
The output check takes the minimum, so a row released from a join is backed by k
people *in each joined table*, and padding rows (joins that repeat a person) cannot inflate it.
"""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.scopes import Base, Derived, source_nodes
from policies.context import PolicyContext
from policies.passes._build import column, generated, ident

UNITS = "_sbx_units"


def add_unit_counts(tree: exp.Expr, analysis: Analysis, ctx: PolicyContext) -> exp.Expr:
    """Append the hidden unit-count columns to the final SELECT(s).

    >>> from policies.examples import example_context
    >>> ctx, tree, analysis = example_context("SELECT sex, COUNT(*) AS n FROM citizens GROUP BY sex")
    >>> add_unit_counts(tree, analysis, ctx).selects[-1].sql(dialect="duckdb")
    'COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units"'
    """
    _Units(analysis).top(tree)
    return tree


class _Units:
    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        self.exported: dict[int, int] = {}

    def top(self, query: exp.Expr) -> None:
        branches = _leaves(query)
        hidden = [self.hidden(select) for select in branches]
        width = max((len(h) for h in hidden), default=0)
        for select, columns in zip(branches, hidden, strict=True):
            padded = columns + [columns[0].copy() for _ in range(width - len(columns))]
            for i, value in enumerate(padded):
                name = UNITS if i == 0 else f"{UNITS}_{i}"
                select.append("expressions", generated(exp.Alias(this=value, alias=ident(name))))

    def hidden(self, select: exp.Select) -> list[exp.Expr]:
        slots = self.slots(select)
        if not slots:
            return [exp.Literal.number(0)]
        out: list[exp.Expr] = [_distinct_count(slot) for slot in slots]
        if not self.analysis.has_any(exp.Filter):
            return out  # no FILTER cell anywhere in the analysed query (and no pass before adds one)
        for projection in select.expressions:
            for cell in projection.find_all(exp.Filter):
                condition = cell.expression.this
                for slot in slots:
                    out.append(_filtered_count(slot, condition.copy()))
                    # The complement too: otherwise SUM(x) - SUM(x) FILTER (WHERE NOT <one person>)
                    # reveals that person. An empty complement (the subset is the whole row) is fine.
                    rest = exp.Is(this=exp.Paren(this=condition.copy()), expression=exp.Not(this=exp.true()))
                    out.append(
                        exp.Coalesce(
                            this=exp.Nullif(
                                this=_filtered_count(slot, rest), expression=exp.Literal.number(0)
                            ),
                            expressions=[_distinct_count(slot)],
                        )
                    )
        return out

    def slots(self, select: exp.Select) -> list[exp.Expr]:
        scope = self.analysis.scope_of(select)
        if scope is None:
            return []
        out: list[exp.Expr] = []
        for node in source_nodes(select):
            alias = node.alias_or_name
            source = scope.sources.get(alias.lower())
            if isinstance(source, Base):
                out.append(column(source.table.unit, alias))
            elif isinstance(source, Derived):
                count = self.export(source.query)
                out.extend(column(f"_sbx_u{i}", alias) for i in range(count))
        return out

    def export(self, query: exp.Expr) -> int:
        """Make ``query`` project its unit slots as ``_sbx_u<i>``; returns how many."""
        key = id(query)
        if key in self.exported:
            return self.exported[key]
        leaves = _leaves(query)
        per_leaf = [self.slots(leaf) for leaf in leaves]
        width = max((len(s) for s in per_leaf), default=0)
        for leaf, slots in zip(leaves, per_leaf, strict=True):
            filler: list[exp.Expr] = [slots[-1] if slots else exp.Null()] * (width - len(slots))
            for i, slot in enumerate(slots + filler):
                leaf.append("expressions", generated(exp.Alias(this=slot.copy(), alias=ident(f"_sbx_u{i}"))))
        self.exported[key] = width
        return width


def _filtered_count(slot: exp.Expr, condition: exp.Expr) -> exp.Expr:
    return exp.Filter(this=_distinct_count(slot), expression=exp.Where(this=condition))


def _distinct_count(slot: exp.Expr) -> exp.Expr:
    return exp.Count(this=exp.Distinct(expressions=[slot.copy()]))


def _leaves(query: exp.Expr) -> list[exp.Select]:
    """The SELECTs whose rows a query returns (through set operations and parentheses)."""
    if isinstance(query, exp.Subquery):
        return _leaves(query.this)
    if isinstance(query, exp.SetOperation):
        return _leaves(query.left) + _leaves(query.right)
    if isinstance(query, exp.Select):
        return [query]
    return []
