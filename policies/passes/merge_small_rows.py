"""``suppression: remainder``: merge the groups below k into one remainder row, inside the query.

``suppress_small_rows`` keeps only rows of at least k units in every final SELECT, before ORDER BY and
LIMIT. For a remainder scope this pass adds, for every grouped final SELECT, one more UNION ALL branch
that aggregates *all the rows of the groups below k* together, with the group keys shown as NULL::

    SELECT NULL AS district, COUNT(*) AS n, AVG(income) AS a, COUNT(DISTINCT person_id) AS _sbx_units
    FROM citizens WHERE <the query's WHERE>
      AND district IN (SELECT district FROM citizens WHERE <same> GROUP BY district
                       HAVING COUNT(DISTINCT person_id) < k)
    HAVING COUNT(DISTINCT person_id) >= k

Why this shape:

* The remainder is computed from the rows, not from the small rows' results: its unit count is the
  exact number of distinct units behind it (summing the small rows' counts would count a person in
  two small groups twice, and their largest count never reaches k), and every aggregate, AVG included,
  is exact over the merged rows instead of NULL.
* It is released only with k units of its own (the same HAVING as every row). One small group can
  never reach k alone, so a released remainder always merges at least two groups and never stands
  for a single small group that a released total minus the released rows would then expose.
* ORDER BY, LIMIT, OFFSET and the row cap apply to the union, so they see the released rows and the
  remainder only, never a small group: whether one exists changes nothing but the remainder itself, a
  cohort of at least k units. (Like every released cohort, two remainders from different queries can
  still be subtracted: that is the ledger's and differential privacy's part, not this pass's.)
* The small-group test ignores the query's own HAVING: a HAVING over a small group would otherwise
  decide whether that group is merged, an oracle on fewer than k people.

ORDER BY items of a single SELECT that are not output names move into hidden ``_sbx_o<i>`` columns
(the remainder computes them over its rows; ones that need a group key are NULL there), because a
UNION sorts by output columns. Select-list items that are not aggregates of the rows (group keys,
functions of them, window functions over the released rows) are NULL in the remainder. A SELECT
without GROUP BY (one row) or with DISTINCT gets no remainder; NULL group keys are never merged (IN
does not match NULL), so such small groups are withheld.
"""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.scopes import walk_same_query
from policies.analysis.syntax import AGGREGATES
from policies.context import PolicyContext
from policies.passes._build import generated, ident
from policies.passes.add_unit_counts import leaves
from policies.passes.suppress_small_rows import is_unit_count

_CLAUSES = ("order", "limit", "offset", "with_")


def merge_small_rows(tree: exp.Expr, analysis: Analysis, ctx: PolicyContext) -> exp.Expr:
    """Append a remainder branch for every grouped final SELECT (remainder scopes only).

    >>> from policies.examples import example_context
    >>> from policies.passes.add_unit_counts import add_unit_counts
    >>> from policies.passes.suppress_small_rows import suppress_small_rows
    >>> sql = "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district"
    >>> ctx, tree, analysis = example_context(sql)
    >>> from dataclasses import replace
    >>> ctx = replace(ctx, disclosure=ctx.disclosure.model_copy(update={"suppression": "remainder"}))
    >>> tree = add_unit_counts(tree, analysis, ctx)
    >>> out = merge_small_rows(suppress_small_rows(tree, analysis, ctx), analysis, ctx)
    >>> print(out.expression.sql(dialect="duckdb").replace('"citizens".', ""))
    ... # doctest: +NORMALIZE_WHITESPACE
    SELECT NULL AS "district", COUNT(*) AS "n", COUNT(DISTINCT "person_id") AS "_sbx_units"
    FROM "citizens" AS "citizens" WHERE "district" IN (SELECT "district" FROM "citizens" AS "citizens"
    GROUP BY "district" HAVING NOT (COUNT(DISTINCT "person_id") >= 10))
    HAVING COUNT(DISTINCT "person_id") >= 10
    """
    if ctx.disclosure.suppression != "remainder" or not isinstance(tree, exp.Select | exp.Union):
        return tree  # drop scopes; INTERSECT/EXCEPT are refused by the checks
    if ctx.disclosure.dp is not None:
        return tree  # DP: no remainder of small groups; partition selection or the domain decides keys
    k = ctx.disclosure.min_units
    branches = leaves(tree)
    if isinstance(tree, exp.Select):
        if tree.args.get("distinct") is not None:
            return tree
        _hide_order_items(tree)
    remainders = [r for r in (_remainder(select, k) for select in branches) if r is not None]
    if not remainders:
        return tree
    clauses = {key: tree.args.get(key) for key in _CLAUSES}
    for key in _CLAUSES:
        tree.set(key, None)
    out: exp.Expr = tree
    for remainder in remainders:
        out = exp.Union(this=out, expression=remainder, distinct=False)
    for key, value in clauses.items():
        out.set(key, value)
    return out


def _hide_order_items(select: exp.Select) -> None:
    """ORDER BY items of a single SELECT become output names (hidden ``_sbx_o<i>`` columns)."""
    order = select.args.get("order")
    if order is None:
        return
    names = {p.alias_or_name for p in select.expressions}
    for i, ordered in enumerate(order.expressions):
        item = ordered.this
        if isinstance(item, exp.Column) and not item.table and item.name in names:
            continue
        if isinstance(item, exp.Literal):
            continue  # a position
        name = f"_sbx_o{i}"
        select.append("expressions", generated(exp.Alias(this=item.copy(), alias=ident(name))))
        ordered.set("this", generated(exp.Column(this=ident(name))))


def _remainder(select: exp.Select, k: int) -> exp.Select | None:
    keys = _keys(select)
    counts = [p.this for p in select.expressions if isinstance(p, exp.Alias) and is_unit_count(p.alias)]
    if not keys or not counts:
        return None
    large = exp.and_(*(exp.GTE(this=c.copy(), expression=exp.Literal.number(k)) for c in counts), copy=False)
    small = exp.Select(expressions=[key.copy() for key in keys])
    _copy_sources(select, small, where=True)
    small.set("group", exp.Group(expressions=[key.copy() for key in keys]))
    small.set("having", exp.Having(this=exp.Not(this=exp.Paren(this=large.copy()))))
    left = keys[0].copy() if len(keys) == 1 else exp.Tuple(expressions=[key.copy() for key in keys])
    member = exp.In(this=left, query=exp.Subquery(this=small))
    merged = exp.Select(expressions=[_merged(p) for p in select.expressions])
    _copy_sources(select, merged, where=False)
    where = select.args.get("where")
    condition = member if where is None else exp.and_(exp.Paren(this=where.this.copy()), member, copy=False)
    merged.set("where", exp.Where(this=condition))
    merged.set("having", exp.Having(this=large))
    return generated(merged)  # type: ignore[return-value]


def _copy_sources(select: exp.Select, into: exp.Select, *, where: bool) -> None:
    """FROM and JOINs of ``select`` (and its WHERE when ``where``) copied into ``into``."""
    into.set("from_", select.args["from_"].copy())
    joins = select.args.get("joins")
    if joins:
        into.set("joins", [join.copy() for join in joins])
    condition = select.args.get("where")
    if where and condition is not None:
        into.set("where", condition.copy())


def _keys(select: exp.Select) -> list[exp.Expr]:
    group = select.args.get("group")
    if group is None:
        return []
    if group.args.get("all"):
        return [p.unalias() for p in select.expressions if not _holds_aggregate(p) and not _hidden(p)]
    return list(group.expressions)


def _merged(projection: exp.Expr) -> exp.Expr:
    """A select-list item of the remainder: the same aggregate over the merged rows, or NULL."""
    value = projection.unalias()
    name = projection.alias_or_name
    keep = _holds_aggregate(value) and value.find(exp.Window) is None and not _outside_aggregates(value)
    return exp.Alias(this=value.copy() if keep else exp.Null(), alias=ident(name))


def _outside_aggregates(node: exp.Expr) -> bool:
    """Whether a column is used outside every aggregate (a group key, or a function of one)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if type(current) in AGGREGATES or isinstance(current, exp.Filter):
            continue
        if isinstance(current, exp.Column):
            return True
        stack.extend(current.iter_expressions())
    return False


def _holds_aggregate(node: exp.Expr) -> bool:
    return any(type(n) in AGGREGATES for n in walk_same_query(node))


def _hidden(projection: exp.Expr) -> bool:
    return projection.alias_or_name.lower().startswith("_sbx_")
