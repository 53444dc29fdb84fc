"""Collect, per released row, each unit's contributions to its sums and means, for the dominance and
p% rules (``policies/cell_rules.py``) under a scope with ``disclosure.dominance``.

For every ``SUM`` and ``AVG`` of a final SELECT (not a window), this pass adds a hidden
``ARRAY_AGG({'u': unit, 'v': CAST(value AS DOUBLE)})`` with the aggregate's own ``FILTER``, as
``_sbx_contrib_<i>``: the unit is the slot of the row's hidden distinct count ``_sbx_units``. An
aggregate that a ``CASE`` uses only on some branches (the guards ``neutralise_small_subsets`` puts
around a small ``FILTER`` subset, or the operator's own) gets its list only on those branches, NULL
otherwise, so a cell that is not released as computed is not judged. Every branch of a set operation
keeps the same columns (NULL where a branch has fewer aggregates).

The lists never leave the sandbox: ``executors.contribution_summaries`` turns each into a few numbers
per row (totals, the largest contributions, how many units deviate), and the output check
(``policies/contribution_check.py``) withholds the rows that fail a rule. Like ``collect_cohorts`` it
runs last, after the re-check (the checks rightly refuse a list of units in any query), and it reads
the hidden counts, so it needs ``add_unit_counts``.
"""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.context import PolicyContext
from policies.errors import PassOrderError
from policies.passes._build import cast, generated, ident
from policies.passes.add_unit_counts import leaves

UNITS = "_sbx_units"
CONTRIBUTIONS = "_sbx_contrib"
HIDDEN = "_sbx_"


def collect_contributions(tree: exp.Expr, analysis: Analysis, ctx: PolicyContext) -> exp.Expr:
    """Append a hidden list of (unit, value) per ``SUM``/``AVG`` of each final SELECT.

    >>> from policies.examples import example_context
    >>> from policies.passes.add_unit_counts import add_unit_counts
    >>> ctx, tree, analysis = example_context("SELECT sex, SUM(income) AS s FROM citizens GROUP BY sex")
    >>> tree = collect_contributions(add_unit_counts(tree, analysis, ctx), analysis, ctx)
    >>> print(tree.selects[-1].sql(dialect="duckdb"))
    ARRAY_AGG({'u': "citizens"."person_id", 'v': CAST("citizens"."income" AS DOUBLE)}) AS "_sbx_contrib_0"
    """
    selects = leaves(tree)
    lists = [_contribution_lists(select) for select in selects]
    width = max((len(found) for found in lists), default=0)
    for select, found in zip(selects, lists, strict=True):
        for i, value in enumerate(found + [exp.Null()] * (width - len(found))):
            select.append(
                "expressions", generated(exp.Alias(this=value, alias=ident(f"{CONTRIBUTIONS}_{i}")))
            )
    return tree


def _contribution_lists(select: exp.Select) -> list[exp.Expr]:
    slot = _unit_slot(select)
    if slot is None:
        return []  # no protected table: nothing about a unit to judge
    out: list[exp.Expr] = []
    seen: set[str] = set()
    for projection in select.expressions:
        if projection.alias_or_name.startswith(HIDDEN):
            continue
        for aggregate in projection.find_all(exp.Sum, exp.Avg):
            if aggregate.find_ancestor(exp.Window) is not None:
                continue  # a window over released rows, not a cell of its own
            listed = _listed(aggregate, slot)
            guarded = _guarded(
                aggregate.parent if isinstance(aggregate.parent, exp.Filter) else aggregate, listed
            )
            key = guarded.sql(dialect="duckdb")
            if key not in seen:
                seen.add(key)
                out.append(guarded)
    return out


def _unit_slot(select: exp.Select) -> exp.Expr | None:
    """The unit column the row's hidden distinct count counts (None: the count is not one)."""
    counts = [p for p in select.expressions if p.alias_or_name == UNITS]
    if not counts:
        raise PassOrderError("collect_contributions needs the hidden unit counts: run add_unit_counts first")
    count = counts[0].unalias()
    if isinstance(count, exp.Try):
        count = count.this
    if isinstance(count, exp.Filter):
        count = count.this
    if not (isinstance(count, exp.Count) and isinstance(count.this, exp.Distinct)):
        return None
    slots = count.this.expressions
    return slots[0] if len(slots) == 1 else None


def _listed(aggregate: exp.Expr, slot: exp.Expr) -> exp.Expr:
    value = aggregate.this
    if isinstance(value, exp.Distinct):
        value = value.expressions[0]
    pair = exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier("u"), expression=slot.copy()),
            exp.PropertyEQ(this=exp.to_identifier("v"), expression=cast(value.copy(), "DOUBLE")),
        ]
    )
    listed: exp.Expr = exp.ArrayAgg(this=pair)
    parent = aggregate.parent
    if isinstance(parent, exp.Filter) and parent.this is aggregate:
        listed = exp.Filter(this=listed, expression=parent.expression.copy())
    return listed


def _guarded(node: exp.Expr, listed: exp.Expr) -> exp.Expr:
    """``listed`` on exactly the ``CASE`` branches that use ``node`` (NULL on the others), from the
    innermost ``CASE`` out."""
    out = listed
    current = node
    while current.parent is not None and not isinstance(current, exp.Select):
        parent = current.parent
        case = parent.parent if isinstance(parent, exp.If) else parent
        if isinstance(case, exp.Case):
            ifs = list(case.args.get("ifs") or [])
            if isinstance(parent, exp.If) and current is parent.args.get("true") and parent in ifs:
                at = ifs.index(parent)
                earlier = [exp.If(this=c.this.copy(), true=exp.Null()) for c in ifs[:at]]
                out = exp.Case(ifs=[*earlier, exp.If(this=parent.this.copy(), true=out)], default=exp.Null())
                current = case
                continue
            if parent is case and current is case.args.get("default"):
                out = exp.Case(ifs=[exp.If(this=c.this.copy(), true=exp.Null()) for c in ifs], default=out)
        current = parent
    return out
