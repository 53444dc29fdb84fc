"""Bound an ungrouped aggregate over one table by clamping each unit's contribution (DP only).

Where a DP query has no GROUP BY and reads one table that is not a register, and releases only
``COUNT(*)``, ``COUNT(x)``, ``SUM(x)`` and ``AVG(x)`` (with ``expose_mean_parts``' hidden parts), each
unit's contribution is computed in one hash aggregate per unit and clamped there, instead of sampling
``max_rows_per_unit`` of its rows (``bound_rows_per_unit``, which must sort the units above the bound):

    SELECT SUM(a._sbx_dp_c0) AS n, SUM(a._sbx_dp_c1) AS s
    FROM (SELECT a.unit,
                 CASE WHEN COUNT(*) > m THEN m ELSE COUNT(*) END AS _sbx_dp_c0,
                 CASE WHEN COUNT(*) > m THEN SUM(x) * m / COUNT(*) ELSE SUM(x) END AS _sbx_dp_c1
          FROM <scan> AS a WHERE <the query's filter> GROUP BY a.unit) AS a

This is per-partition contribution bounding as PipelineDP and Tumult do it. A count moves by at most
``m`` per unit, and a sum over ``c`` rows of values clamped to ``[lo, hi]`` is scaled by
``min(c, m) / c``, so it moves by at most ``m × max(|lo|, |hi|)``: exactly the sensitivities
``policies.dp.plan`` states for the sample, so the noise, the dry run and the report are unchanged. A
mean's sum and count are both scaled to ``min(k, m)`` of its ``k`` values, so their ratio is the unit's
own mean. A unit with at most ``m`` rows contributes exactly its rows, as in the sample. A NULL unit
is one group, as it is one partition of the sample's window. The query's WHERE moves inside, before the
clamp: the allowance is spent on the rows the query counts.

Only this shape: with groups, a unit's rows mostly fall in different groups (visits over wards), so the
(unit, group) table is as large as the input and the groups window still sorts it (measured slower than
the sample; ``docs/dp.md``). Runs before ``bound_rows_per_unit``, which then leaves the scan alone.
"""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.markers import FILTERED_SCAN_META, UNIT_CONTRIBUTION_PREFIX
from policies.analysis.scopes import Base, source_nodes
from policies.context import PolicyContext, TablePolicy
from policies.dp.passes._sample import SAMPLED_META
from policies.dp.plan import MEAN_SUM
from policies.passes._build import generated, ident

#: The per-unit contribution behind output position ``i``.
CONTRIBUTION = UNIT_CONTRIBUTION_PREFIX + "{i}"
_MEAN_SUM = MEAN_SUM.split("{", 1)[0]


def clamp_unit_contributions(tree: exp.Expr, analysis: Analysis, ctx: PolicyContext) -> exp.Expr:
    """Rewrite an eligible ungrouped DP aggregate into clamped per-unit contributions.

    >>> from policies.dp.examples import dp_context
    >>> ctx, tree, analysis = dp_context("SELECT COUNT(*) AS n FROM visits v")
    >>> print(clamp_unit_contributions(tree, analysis, ctx).sql(dialect="duckdb"))
    ... # doctest: +NORMALIZE_WHITESPACE
    SELECT SUM("v"."_sbx_dp_c0") AS "n" FROM (SELECT "v"."person_id", CASE WHEN COUNT(*) > 3 THEN 3
    ELSE COUNT(*) END AS "_sbx_dp_c0" FROM "visits" AS "v" GROUP BY "v"."person_id") AS "v"
    """
    dp = ctx.disclosure.dp
    if dp is None or not isinstance(tree, exp.Select):
        return tree
    eligible = _eligible(tree, analysis)
    if eligible is None:
        return tree
    scan, alias, table, unit = eligible
    m = dp.rows_per_unit(table.ref.sql_name)
    unit_column = exp.Column(this=ident(unit), table=ident(alias))
    inner: list[exp.Expr] = [unit_column.copy()]
    outer: list[exp.Expr] = []
    for position, projection in enumerate(tree.expressions):
        value = projection.unalias()
        name = CONTRIBUTION.format(i=position)
        if isinstance(value, exp.Count):
            contribution = _at_most(value.copy(), m)
        else:
            assert isinstance(value, exp.Sum | exp.Avg)
            # A mean (and its hidden sum) scales by its own value count, so that its sum and count
            # shrink together; a plain sum by the row count, which COUNT(*) computes anyway (one
            # aggregate less per person: measured 1.02 against 1.20 on 10 million rows).
            mean = isinstance(value, exp.Avg) or projection.alias_or_name.startswith(_MEAN_SUM)
            by = exp.Count(this=value.this.copy()) if mean else exp.Count(this=exp.Star())
            contribution = _scaled_sum(value.this, m, by)
        inner.append(exp.Alias(this=contribution, alias=ident(name)))
        total: exp.Expr = exp.Sum(this=exp.Column(this=ident(name), table=ident(alias)))
        if isinstance(value, exp.Avg):
            # Not released (the noise module divides the noisy parts); kept so the exact result reads
            # as the query asked: the mean of the clamped contributions.
            count = CONTRIBUTION.format(i=f"{position}_n")
            inner.append(exp.Alias(this=_at_most(exp.Count(this=value.this.copy()), m), alias=ident(count)))
            total = exp.Div(
                this=exp.Cast(this=total, to=exp.DataType.build("DOUBLE")),
                expression=exp.Sum(this=exp.Column(this=ident(count), table=ident(alias))),
            )
        outer.append(exp.Alias(this=total, alias=ident(projection.alias_or_name)))
    where = tree.args.get("where")
    placeholder = exp.Null()
    scan.replace(placeholder)  # detached: the scan moves inside the per-unit aggregate (no copy)
    per_unit = exp.Select(expressions=inner, group=exp.Group(expressions=[unit_column.copy()]))
    wrapped = generated(exp.Subquery(this=per_unit, alias=exp.TableAlias(this=ident(alias))))
    # Marked before the scan and the query's own filter move in: the re-check still checks those.
    per_unit.set("from_", exp.From(this=scan))
    if where is not None:
        per_unit.set("where", where.pop())
    wrapped.meta[SAMPLED_META] = True
    scan.meta[SAMPLED_META] = True
    placeholder.replace(wrapped)
    tree.set("expressions", [generated(o) for o in outer])
    return tree


def _eligible(tree: exp.Select, analysis: Analysis) -> tuple[exp.Expr, str, TablePolicy, str] | None:
    """The one scan, its alias, table and unit where ``tree`` has the shape this pass bounds."""
    for key in ("group", "having", "qualify", "distinct", "joins", "with_", "windows", "order", "limit"):
        if tree.args.get(key):
            return None
    scope = analysis.scope_of_select(tree)
    sources = source_nodes(tree)
    if scope is None or len(sources) != 1 or len(scope.sources) != 1:
        return None
    node = sources[0]
    alias = node.alias_or_name
    source = scope.sources.get(alias.lower())
    if not isinstance(source, Base) or source.table.unsampled or node.meta_get(SAMPLED_META):
        return None
    if not (node is source.node or (isinstance(node, exp.Subquery) and node.meta_get(FILTERED_SCAN_META))):
        return None
    if not tree.expressions:
        return None
    for projection in tree.expressions:
        value = projection.unalias()
        if not isinstance(value, exp.Count | exp.Sum | exp.Avg) or value.args.get("distinct"):
            return None
        argument = value.this
        if isinstance(argument, exp.Distinct) or argument is None:
            return None
        if any(isinstance(n, exp.AggFunc | exp.Window | exp.Query) for n in argument.walk()):
            return None
    if any(isinstance(n, exp.Query) for n in (tree.args.get("where") or exp.Null()).walk()):
        return None
    return node, alias, source.table, source.table.unit


def _at_most(count: exp.Expr, m: int) -> exp.Expr:
    """``CASE WHEN <count> > m THEN m ELSE <count> END``."""
    limit = exp.Literal.number(m)
    return exp.Case(
        ifs=[exp.If(this=exp.GT(this=count.copy(), expression=limit.copy()), true=limit.copy())],
        default=count,
    )


def _scaled_sum(argument: exp.Expr, m: int, count: exp.Expr) -> exp.Expr:
    """``CASE WHEN <count> > m THEN SUM(x) * m / <count> ELSE SUM(x) END``: the unit's sum scaled to
    ``m`` of its ``count`` rows (or values); exactly its sum when ``count <= m``. With ``k <= count``
    values in ``[lo, hi]`` the result lies within ``min(count, m) × [min(lo, 0), max(hi, 0)]``."""
    scaled = exp.Div(
        this=exp.Mul(this=exp.Sum(this=argument.copy()), expression=exp.Literal.number(m)),
        expression=count.copy(),
    )
    return exp.Case(
        ifs=[exp.If(this=exp.GT(this=count, expression=exp.Literal.number(m)), true=scaled)],
        default=exp.Sum(this=argument.copy()),
    )
