"""Add the hidden per-row count of distinct privacy units that the output check compares with k.

Every protected table scan behind the final aggregation contributes one *unit slot*: its unit column,
carried up through CTEs and subqueries as ``_sbx_u<i>``. The final SELECT gets one
``COUNT(DISTINCT slot)`` per slot (``_sbx_units``, ``_sbx_units_1``, …). The k rule
(``suppress_small_rows``, and the output check after it) takes the minimum, so a row released from a
join is backed by k people *in each joined table*, and padding rows (joins that repeat a person) cannot
inflate it. Conditions inside aggregates (FILTER cells, CASE buckets) withhold nothing: they are
neutralised by ``neutralise_small_subsets`` instead, which reads the slots from these columns.

Under differential privacy no k rule applies; the one reader of the counts is DP partition selection
(the noisy threshold that decides which keys from the data are released). A DP query whose keys all
come from public domains, or that has none, therefore gets no unit counts: ``COUNT(DISTINCT unit)``
costs several times the rest of an aggregate.
"""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.scopes import Base, Derived, source_nodes
from policies.context import PolicyContext
from policies.dp.plan import keys_from_data
from policies.passes._build import column, generated, ident

UNITS = "_sbx_units"


def add_unit_counts(tree: exp.Expr, analysis: Analysis, ctx: PolicyContext) -> exp.Expr:
    """Append the hidden unit-count columns to the final SELECT(s).

    >>> from policies.examples import example_context
    >>> ctx, tree, analysis = example_context("SELECT sex, COUNT(*) AS n FROM citizens GROUP BY sex")
    >>> add_unit_counts(tree, analysis, ctx).selects[-1].sql(dialect="duckdb")
    'COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units"'
    """
    if ctx.disclosure.dp is not None and not keys_from_data(analysis, ctx):
        return tree
    _Units(analysis).top(tree)
    return tree


class _Units:
    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        self.exported: dict[int, int] = {}

    def top(self, query: exp.Expr) -> None:
        branches = leaves(query)
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
        return [_distinct_count(slot) for slot in slots]

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
        selects = leaves(query)
        per_leaf = [self.slots(leaf) for leaf in selects]
        width = max((len(s) for s in per_leaf), default=0)
        for leaf, slots in zip(selects, per_leaf, strict=True):
            filler: list[exp.Expr] = [slots[-1] if slots else exp.Null()] * (width - len(slots))
            for i, slot in enumerate(slots + filler):
                leaf.append("expressions", generated(exp.Alias(this=slot.copy(), alias=ident(f"_sbx_u{i}"))))
        self.exported[key] = width
        return width


def _distinct_count(slot: exp.Expr) -> exp.Expr:
    return exp.Count(this=exp.Distinct(expressions=[slot.copy()]))


def leaves(query: exp.Expr) -> list[exp.Select]:
    """The SELECTs whose rows a query returns (through set operations and parentheses).

    >>> import sqlglot
    >>> [s.sql() for s in leaves(sqlglot.parse_one("SELECT 1 UNION ALL (SELECT 2)"))]
    ['SELECT 1', 'SELECT 2']
    """
    if isinstance(query, exp.Subquery):
        return leaves(query.this)
    if isinstance(query, exp.SetOperation):
        return leaves(query.left) + leaves(query.right)
    if isinstance(query, exp.Select):
        return [query]
    return []
