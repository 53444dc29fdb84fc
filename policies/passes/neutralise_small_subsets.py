"""Neutralise conditions inside aggregates whose effect on a row is smaller than k units.

A FILTER cell (``AGG(…) FILTER (WHERE c)``) or a one-branch CASE bucket (``AGG(CASE WHEN c THEN a ELSE
b END)``, ``AGG(IF(c, a, b))``) splits the units behind its row into a *subset* (some row of the unit
satisfies ``c``) and a *rest* (some row does not). Withholding the row when either side has 1..k-1 units
is itself an oracle: ``FILTER (WHERE country <> 'X')``, where X holds one person, then drops exactly the
row that person is in. So no row is withheld for it; instead, following Diffix's treatment of
low-effect conditions, the *cell* is computed as if the condition had no effect on anyone:

* subset of 0..k-1 units (empty included): the cell is **NULL**, "fewer than k", whatever the
  aggregate (a COUNT too: 0 for an empty subset and NULL for a small one would tell them apart);
* otherwise, rest of 1..k-1 units: as if the rest were empty, i.e. the condition held for the whole
  row (``c`` replaced by TRUE), which is exactly what an empty rest gives;
* otherwise (subset of at least k, rest empty or at least k): the cell as written.

Why these: an empty and a small subset read the same (NULL), and so do an empty and a small rest (the
whole row's aggregate), so ``SUM(x) - SUM(x) FILTER (WHERE NOT <one person>)`` is 0 whether or not that
person is in the row, and ``COUNT(*) FILTER (WHERE sex = 'X')`` is NULL whether the one X lives there
or not. What a cell shows depends only on the row's cohort (at least k units, enforced by
``suppress_small_rows``) and on sides of at least k units. When both sides are small (a row of fewer
than 2k units) the first rule wins. A one-branch CASE bucket follows the same rules (a rate over a
subset below k is NULL). The subset and rest are counted per unit slot, so in a join a condition on any
table is judged by the units of every table behind the row.

This runs after ``add_unit_counts`` and reads the unit slots from its hidden ``_sbx_units*`` columns
(``COUNT(DISTINCT slot)``); it rewrites every such cell of a final SELECT, in the select list, HAVING and
ORDER BY alike (a CASE bucket in ORDER BY would otherwise sort the one person's row first).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from policies.analysis.cells import bucket_of
from policies.analysis.levels import Analysis
from policies.analysis.markers import GENERATED_META
from policies.analysis.scopes import walk_same_query
from policies.context import PolicyContext
from policies.passes._build import generated
from policies.passes.add_unit_counts import leaves
from policies.passes.suppress_small_rows import is_unit_count


def neutralise_small_subsets(tree: exp.Expr, analysis: Analysis, ctx: PolicyContext) -> exp.Expr:
    """Wrap every FILTER cell and one-branch CASE bucket of the final SELECTs in its neutralised form.

    >>> from policies.examples import example_context
    >>> from policies.passes.add_unit_counts import add_unit_counts
    >>> ctx, tree, analysis = example_context(
    ...     "SELECT district, COUNT(*) FILTER (WHERE sex = 'X') AS x FROM citizens GROUP BY district")
    >>> tree = neutralise_small_subsets(add_unit_counts(tree, analysis, ctx), analysis, ctx)
    >>> cell = tree.selects[1].sql(dialect="duckdb").replace('"citizens".', "")
    >>> print(cell.replace(" WHEN", "\\nWHEN").replace(" THEN", "\\n  THEN").replace(" ELSE", "\\nELSE"))
    CASE
    WHEN COUNT(DISTINCT "person_id") FILTER(WHERE "sex" = 'X') BETWEEN 0 AND 9
      THEN NULL
    WHEN COUNT(DISTINCT "person_id") FILTER(WHERE ("sex" = 'X') IS NOT TRUE) BETWEEN 1 AND 9
      THEN COUNT(*) FILTER(WHERE TRUE)
    ELSE COUNT(*) FILTER(WHERE "sex" = 'X') END AS "x"
    """
    if ctx.disclosure.dp is not None:
        return tree  # DP: every released cell is noised; no exact unit count may decide a cell
    if not analysis.has_any(exp.Filter, exp.Case, exp.If):
        return tree  # no condition inside any aggregate (and no pass before adds one)
    small = ctx.disclosure.min_units - 1
    for select in leaves(tree):
        slots = _slots(select)
        if not slots:
            continue
        roots = [p for p in select.expressions if not _hidden(p)]
        if (having := select.args.get("having")) is not None:
            roots.append(having.this)
        if (order := select.args.get("order")) is not None:
            roots.extend(order.expressions)
        cells = [c for root in roots for c in walk_same_query(root) if _condition_of(c) is not None]
        for cell in cells:
            cell.replace(_neutralised(cell, slots, small))
    return tree


def _condition_of(node: exp.Expr) -> exp.Expr | None:
    if node.meta_get(GENERATED_META):
        return None
    if isinstance(node, exp.Filter):
        condition = node.expression.this
    elif isinstance(node.parent, exp.Filter):
        return None  # the FILTER around it is the cell
    else:
        bucket = bucket_of(node)
        if bucket is None:
            return None
        condition = bucket.condition
    return condition if condition.find(exp.Column) is not None else None


def _neutralised(cell: exp.Expr, slots: list[exp.Expr], small: int) -> exp.Expr:
    condition = _condition_of(cell)
    assert condition is not None
    rest = exp.Is(this=exp.Paren(this=condition.copy()), expression=exp.Not(this=exp.true()))
    out = exp.Case(
        ifs=[
            exp.If(this=_small(slots, condition, 0, small), true=exp.Null()),
            exp.If(this=_small(slots, rest, 1, small), true=_with(cell, condition, exp.true)),
        ],
        default=cell.copy(),
    )
    return generated(out)


def _with(cell: exp.Expr, condition: exp.Expr, constant: Callable[[], exp.Boolean]) -> exp.Expr:
    """A copy of ``cell`` with ``condition`` replaced by a constant."""
    path: list[int] = []
    node: exp.Expr = condition
    while node is not cell:
        parent = node.parent
        assert parent is not None
        path.append(next(i for i, child in enumerate(parent.iter_expressions()) if child is node))
        node = parent
    copy = cell.copy()
    target: exp.Expr = copy
    for index in reversed(path):
        target = list(target.iter_expressions())[index]
    target.replace(constant())
    return copy


def _small(slots: list[exp.Expr], condition: exp.Expr, low: int, small: int) -> exp.Expr:
    tests = [
        exp.Between(
            this=exp.Filter(
                this=exp.Count(this=exp.Distinct(expressions=[slot.copy()])),
                expression=exp.Where(this=condition.copy()),
            ),
            low=exp.Literal.number(low),
            high=exp.Literal.number(small),
        )
        for slot in slots
    ]
    return exp.or_(*tests, copy=False) if len(tests) > 1 else tests[0]


def _slots(select: exp.Select) -> list[exp.Expr]:
    """The unit slots of a final SELECT, read from its hidden ``COUNT(DISTINCT slot)`` columns."""
    out: list[exp.Expr] = []
    for projection in select.expressions:
        if isinstance(projection, exp.Alias) and is_unit_count(projection.alias):
            count = projection.this
            if isinstance(count, exp.Count) and isinstance(count.this, exp.Distinct):
                out.extend(count.this.expressions)
    return out


def _hidden(projection: exp.Expr) -> bool:
    return projection.alias_or_name.lower().startswith("_sbx_")
