"""Collect, per released row, the set of units behind it, for the released-cohort ledger (docs/design.md §5).

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
from policies.analysis.markers import GENERATED_META
from policies.context import PolicyContext
from policies.errors import PassOrderError
from policies.passes._build import generated, ident
from policies.passes.add_unit_counts import leaves

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
    selects = leaves(tree)
    subsets = [_subset_cohorts(select) for select in selects]
    width = max((len(s) for s in subsets), default=0)
    for select, cells in zip(selects, subsets, strict=True):
        counts = [p for p in select.expressions if _is_units(p.alias_or_name)]
        if not counts:
            raise PassOrderError("collect_cohorts needs the hidden unit counts: run add_unit_counts first")
        for projection in counts:
            name = COHORT + projection.alias_or_name.removeprefix(UNITS)
            value = _cohort_of(projection.unalias())
            select.append("expressions", generated(exp.Alias(this=value, alias=ident(name))))
        # Every branch of a set operation keeps the same columns: NULL where a branch has fewer cells.
        for i, value in enumerate(cells + [exp.Null()] * (width - len(cells))):
            select.append("expressions", generated(exp.Alias(this=value, alias=ident(f"{COHORT}_s{i}"))))
    return tree


def _subset_cohorts(select: exp.Select) -> list[exp.Expr]:
    """The cohort each neutralised FILTER cell or CASE bucket of ``select`` releases as written.

    ``neutralise_small_subsets`` computes such a cell over its subset only when the subset has at least
    k units and the rest none or at least k; otherwise the cell is NULL or the whole row's (whose cohort
    is the row's own). So the subset's units are listed under exactly that condition, and NULL (no
    cohort) otherwise: the ledger then sees what each released cell stands for, and a subset that
    differs from a cohort released earlier by 1..k-1 units is caught like a row.
    """
    out: list[exp.Expr] = []
    for projection in select.expressions:
        for case in projection.find_all(exp.Case):
            if not case.meta_get(GENERATED_META):
                continue
            guards = [branch.this for branch in case.args.get("ifs") or []]
            if len(guards) != 2:
                continue
            for subset in guards[0].find_all(exp.Filter):
                listed = _cohort_of(subset)
                if isinstance(listed, exp.Null):
                    continue
                out.append(
                    exp.Case(
                        ifs=[exp.If(this=g.copy(), true=exp.Null()) for g in guards],
                        default=listed,
                    )
                )
    return out


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
