"""Collect, per released row, the set of units behind it, for the released-cohort ledger (DESIGN §5a).

For every hidden unit count that ``add_unit_counts`` put in a final SELECT, ``COUNT(DISTINCT slot)``
(optionally with a ``FILTER``), this pass adds ``ARRAY_AGG(DISTINCT slot)`` (DuckDB's ``LIST``) with
the same filter as ``_sbx_cohort`` / ``_sbx_cohort_<i>`` (the same suffix as the count it mirrors).
Counts that are not a plain distinct count (the complement of a ``FILTER`` subset, the literal 0 of a
query without protected tables) get ``NULL``, so every branch of a set operation keeps the same
columns. The lists never leave the sandbox: ``executors.cohort_sketches`` replaces them by keyed
sketches there.

It reads the counts rather than the tables, so it runs after ``add_unit_counts``, and it runs *last*,
after the re-check of the rewritten query: the checks rightly refuse a list of join keys in any query,
and ``contain_errors`` would wrap the new aggregate in ``TRY``, which cannot hold an aggregate. What
it adds is not released by construction: the output check drops every ``_sbx_`` column, and the
sandbox turns the lists into sketches before the result leaves it. The distinct sets it asks for are
the ones the counts already build.
"""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.context import PolicyContext
from policies.errors import PassOrderError
from policies.passes._build import generated, ident

UNITS = "_sbx_units"
COHORT = "_sbx_cohort"


def collect_cohorts(tree: exp.Expr, analysis: Analysis, ctx: PolicyContext) -> exp.Expr:
    """Append a hidden ``ARRAY_AGG(DISTINCT unit)`` per hidden unit count of each final SELECT.

    >>> from policies.examples import example_context
    >>> from policies.passes.add_unit_counts import add_unit_counts
    >>> ctx, tree, analysis = example_context("SELECT sex, COUNT(*) AS n FROM citizens GROUP BY sex")
    >>> tree = collect_cohorts(add_unit_counts(tree, analysis, ctx), analysis, ctx)
    >>> tree.selects[-1].sql(dialect="duckdb")
    'ARRAY_AGG(DISTINCT "citizens"."person_id") AS "_sbx_cohort"'
    """
    leaves = _leaves(tree)
    for select in leaves:
        counts = [p for p in select.expressions if _is_units(p.alias_or_name)]
        if not counts:
            raise PassOrderError("collect_cohorts needs the hidden unit counts: run add_unit_counts first")
        for projection in counts:
            name = COHORT + projection.alias_or_name.removeprefix(UNITS)
            value = _cohort_of(projection.unalias())
            select.append("expressions", generated(exp.Alias(this=value, alias=ident(name))))
    return tree


def _is_units(name: str) -> bool:
    return name == UNITS or name.startswith(UNITS + "_")


def _cohort_of(count: exp.Expr) -> exp.Expr:
    """``ARRAY_AGG(DISTINCT slot)`` (with the count's FILTER) for a distinct count; NULL for anything else."""
    condition = None
    if isinstance(count, exp.Try):
        count = count.this
    if isinstance(count, exp.Filter):
        condition, count = count.expression, count.this
    if not (isinstance(count, exp.Count) and isinstance(count.this, exp.Distinct)):
        return exp.Null()
    slots = count.this.expressions
    if len(slots) != 1:
        return exp.Null()
    listed: exp.Expr = exp.ArrayAgg(this=exp.Distinct(expressions=[slots[0].copy()]))
    if condition is not None:
        listed = exp.Filter(this=listed, expression=condition.copy())
    return listed


def _leaves(query: exp.Expr) -> list[exp.Select]:
    """The SELECTs whose rows a query returns (through set operations and parentheses)."""
    if isinstance(query, exp.Subquery):
        return _leaves(query.this)
    if isinstance(query, exp.SetOperation):
        return _leaves(query.left) + _leaves(query.right)
    if isinstance(query, exp.Select):
        return [query]
    return []
