"""The DP plan of a query: which output columns are group keys and which are noised, and how much one
privacy unit can move each of them (its sensitivity), derived from the qualified query alone.

The guarantee is about *neighbouring* data sets: the same data with or without every row of one unit.
After the bounding passes a unit has at most ``m_t`` rows in each table ``t`` it reads
(``bound_rows_per_unit``). Tables may only be joined on their privacy units, so a joined row belongs to
exactly one unit, and one unit has at most ``M = ∏ m_t`` rows in the aggregation's input (an inner or
outer join of its ``m_a`` and ``m_b`` rows yields at most ``m_a × m_b``). A join on any other key could
pair one unit's row with many others' and is refused, as is reading one table twice (a self-join
multiplies the unit's rows beyond what the plan counts). ``M`` rows reach at most ``M`` groups; where
``bound_groups_per_unit`` can cut the groups too (one table, group keys from it), at most
``G = min(max_groups_per_unit, M)``.

Sensitivities over the whole released vector of a column (L1; L2 for the Gaussian mechanism):

============================  ===========  ===========================
cell                          L1           L2
============================  ===========  ===========================
``COUNT(*)``, ``COUNT(x)``    ``M``        ``M``
``COUNT(DISTINCT unit)``      ``G``        ``√G``
``SUM(x)``, x in [lo, hi]     ``M·c``      ``M·c``   (c = max(|lo|, |hi|))
``AVG(x)``                    its sum and its count, noised separately
============================  ===========  ===========================
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.lineage import Origin, Shape
from policies.analysis.scopes import Base, SelectScope, source_nodes
from policies.context import PolicyContext
from policies.errors import PolicyViolation
from policies.findings import Finding
from policies.model import DifferentialPrivacy, PublicKey, Use

RULE = "dp_query_shape"
#: Hidden columns the ``expose_mean_parts`` pass adds for an AVG at output position ``i``.
MEAN_SUM = "_sbx_dp_sum_{i}"
MEAN_COUNT = "_sbx_dp_count_{i}"


class Cell(StrEnum):
    """What an output column of a DP query holds."""

    KEY = "key"
    COUNT_ROWS = "count"
    COUNT_UNITS = "count_units"
    SUM = "sum"
    MEAN = "mean"


@dataclass(frozen=True)
class DpColumn:
    """One output column: its name, what it holds, its source column (keys and bounded values) and
    the bounds its values are clamped to (SUM and AVG)."""

    name: str
    cell: Cell
    position: int
    source: str | None = None
    bounds: tuple[float, float] | None = None

    @property
    def mean_parts(self) -> tuple[str, str]:
        """Names of the hidden sum and count columns of an AVG."""
        return MEAN_SUM.format(i=self.position), MEAN_COUNT.format(i=self.position)


@dataclass(frozen=True)
class Sensitivity:
    """How much adding or removing one unit can change a noised quantity, over all released groups."""

    l1: float
    l2: float
    integer: bool  # counts: the discrete (integer) samplers apply


@dataclass(frozen=True)
class DpPlan:
    """Everything the cost preview and the noise need, known before any data is read."""

    columns: tuple[DpColumn, ...]
    rows_per_unit: int  # M: rows of one unit in the aggregation's input
    groups_per_unit: int  # G: groups one unit can reach
    #: The table whose scan ``bound_groups_per_unit`` limits (``None``: the groups bound is ``M``).
    group_bound_table: str | None
    #: Per key column (in output order), its public domain; ``None`` when the keys come from the data.
    public_keys: tuple[tuple[PublicKey, ...], ...] | None

    @property
    def keys(self) -> tuple[DpColumn, ...]:
        return tuple(c for c in self.columns if c.cell is Cell.KEY)

    @property
    def noised(self) -> tuple[DpColumn, ...]:
        return tuple(c for c in self.columns if c.cell is not Cell.KEY)

    @property
    def selects_keys(self) -> bool:
        """Whether released keys come from the data (DP partition selection) rather than a domain."""
        return bool(self.keys) and self.public_keys is None

    def sensitivity(self, cell: Cell, bounds: tuple[float, float] | None = None) -> Sensitivity:
        """Sensitivity of one noised quantity (an AVG is a SUM and a COUNT_ROWS).

        >>> plan = DpPlan((), rows_per_unit=2, groups_per_unit=2, group_bound_table=None, public_keys=None)
        >>> plan.sensitivity(Cell.SUM, (-5.0, 100.0)).l1, plan.sensitivity(Cell.COUNT_UNITS).l2
        (200.0, 1.4142135623730951)
        """
        m, g = self.rows_per_unit, self.groups_per_unit
        if cell is Cell.COUNT_UNITS:
            return Sensitivity(float(g), math.sqrt(g), integer=True)
        if cell is Cell.SUM:
            assert bounds is not None
            c = max(abs(bounds[0]), abs(bounds[1]))
            return Sensitivity(m * c, m * c, integer=False)
        return Sensitivity(float(m), float(m), integer=True)


def plan_dp(analysis: Analysis, ctx: PolicyContext) -> DpPlan:
    """The DP plan of an analysed, qualified query; ``PolicyViolation`` when DP cannot bound it.

    >>> from policies.dp.examples import dp_context
    >>> ctx, tree, analysis = dp_context(
    ...     "SELECT district, COUNT(*) AS n, AVG(income) AS mean FROM citizens GROUP BY district")
    >>> plan = plan_dp(analysis, ctx)
    >>> [(c.name, c.cell.value) for c in plan.columns], plan.rows_per_unit, plan.groups_per_unit
    ([('district', 'key'), ('n', 'count'), ('mean', 'mean')], 2, 1)
    >>> plan.public_keys
    (('North', 'South', 'East', 'West'),)
    """
    plan, findings = _derive(analysis, ctx)
    if findings or plan is None:
        raise PolicyViolation(f"query refused under differential privacy ({RULE})", findings=findings)
    return plan


def dp_query_shape(analysis: Analysis, ctx: PolicyContext) -> Iterator[Finding]:
    """Findings for everything differential privacy cannot bound (a no-op when the scope has no ``dp``).

    >>> from policies.dp.examples import dp_context
    >>> ctx, tree, analysis = dp_context(
    ...     "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district ORDER BY n DESC LIMIT 3")
    >>> for rule in sorted({f.message.split(':')[0] for f in dp_query_shape(analysis, ctx)}):
    ...     print(rule)
    LIMIT and OFFSET are refused under differential privacy
    ORDER BY is refused under differential privacy
    """
    if ctx.disclosure.dp is None or analysis.generated:
        # The re-check after rewriting: the shape rule is about the operator's query (the plan is
        # derived from it before any pass); the rewrite's own keyed sample (QUALIFY over the unit) is
        # the bound itself, and the syntax re-check accepts only its marked nodes.
        return
    _, findings = _derive(analysis, ctx)
    yield from findings


def _derive(analysis: Analysis, ctx: PolicyContext) -> tuple[DpPlan | None, list[Finding]]:
    dp = ctx.disclosure.dp
    if dp is None:
        return None, [Finding(RULE, "the scope has no differential privacy settings")]
    findings: list[Finding] = []
    tree = analysis.tree
    if not isinstance(tree, exp.Select):
        findings.append(
            Finding(
                RULE,
                "UNION, INTERSECT and EXCEPT are refused under differential privacy: "
                "each branch would spend the same people's budget again; run one query per part",
                _short(tree),
            )
        )
        return None, findings
    tables: dict[str, int] = {}
    for scope in analysis.scopes:
        findings.extend(_scope_findings(analysis, scope))
    for name in read_tables(analysis):
        tables[name] = tables.get(name, 0) + 1
    for name, count in tables.items():
        if count > 1:
            findings.append(
                Finding(
                    RULE,
                    f"table {name!r} is read {count} times: under differential privacy each "
                    "table may be read once (a self-join multiplies one person's rows); "
                    "read it once and aggregate with FILTER-free conditions instead",
                    name,
                )
            )
    top = analysis.scope_of_select(tree)
    if top is None:
        return None, findings
    columns = _columns(analysis, top, tree, ctx, findings)
    m = rows_per_unit(analysis, dp)
    group_table = group_bound_table(analysis)
    keys = [c for c in columns if c.cell is Cell.KEY]
    if not keys:
        g = 1
    elif group_table is not None:
        g = min(dp.max_groups_per_unit, m)
    else:
        g = m
    public = _public_keys(keys, dp)
    if keys and public is None and dp.delta == 0:
        missing = ", ".join(c.name for c in keys if _domain(c, dp) is None)
        findings.append(
            Finding(
                RULE,
                f"group keys {missing} have no public domain, and under differential privacy keys "
                "chosen from the data need delta > 0: list their values under dp.public_groups, or set "
                "a delta",
                missing,
            )
        )
    if findings:
        return None, findings
    return DpPlan(tuple(columns), m, g, group_table, public), []


def _scope_findings(analysis: Analysis, scope: SelectScope) -> Iterator[Finding]:
    select = scope.select
    refused = {
        "order": "ORDER BY is refused under differential privacy: the release is put in a canonical "
        "order after the noise; sort the released table yourself",
        "limit": "LIMIT and OFFSET are refused under differential privacy: which rows a limit keeps "
        "would depend on exact values",
        "offset": "LIMIT and OFFSET are refused under differential privacy: which rows a limit keeps "
        "would depend on exact values",
        "having": "HAVING is refused under differential privacy: it filters on exact aggregates; "
        "filter the released (noisy) table instead",
        "distinct": "DISTINCT is refused under differential privacy: use GROUP BY",
        "qualify": "QUALIFY is refused under differential privacy",
    }
    for key, message in refused.items():
        if select.args.get(key) is not None:
            yield Finding(RULE, f"{message}: {_short(select)}", _short(select))
    if scope.role in ("in", "exists", "scalar"):
        yield Finding(
            RULE,
            "subqueries in expressions are refused under differential privacy: one person's rows "
            "could change which rows of others are kept; join on the privacy unit instead",
            _short(select),
        )
    for join in select.args.get("joins") or ():
        if not _joins_on_units(analysis, scope, join):
            yield Finding(
                RULE,
                "under differential privacy tables may only be joined on their privacy units "
                "(JOIN … ON a.<unit> = b.<unit>): a join on another key can pair one person's row with "
                "many others' and no bound on their contribution holds",
                _short(join),
            )


def _joins_on_units(analysis: Analysis, scope: SelectScope, join: exp.Join) -> bool:
    on = join.args.get("on")
    if on is None:
        return False
    conjuncts = list(on.flatten()) if isinstance(on, exp.And) else [on]
    for conjunct in conjuncts:
        if isinstance(conjunct, exp.EQ):
            left = _unit_origin(analysis, scope, conjunct.this)
            right = _unit_origin(analysis, scope, conjunct.expression)
            if left is not None and right is not None and left.table != right.table:
                return True
    return False


def _unit_origin(analysis: Analysis, scope: SelectScope, node: exp.Expr) -> Origin | None:
    info = analysis.info(node, scope)
    if len(info.lineage) != 1:
        return None
    origin, shape = next(iter(info.lineage.items()))
    table = analysis.ctx.table(origin.table)
    if shape is not Shape.PURE or table is None or table.unit != origin.column:
        return None
    return origin


def _columns(
    analysis: Analysis, top: SelectScope, tree: exp.Select, ctx: PolicyContext, findings: list[Finding]
) -> list[DpColumn]:
    out: list[DpColumn] = []
    for position, projection in enumerate(tree.expressions):
        name = projection.alias_or_name
        value = projection.unalias()
        info = analysis.info(projection, top)
        if not info.aggregate:
            source = _pure_source(info.lineage)
            out.append(DpColumn(name, Cell.KEY, position, source=source))
            continue
        column = _aggregate_column(analysis, top, name, position, value, ctx)
        if isinstance(column, Finding):
            findings.append(column)
        else:
            out.append(column)
    return out


def _aggregate_column(
    analysis: Analysis, top: SelectScope, name: str, position: int, value: exp.Expr, ctx: PolicyContext
) -> DpColumn | Finding:
    allowed = (
        f"{name}: under differential privacy an output column is a group key or exactly one of "
        "COUNT(*), COUNT(col), COUNT(DISTINCT <unit>), SUM(col) or AVG(col) of a bare column (compute "
        "in a CTE; no FILTER, no arithmetic over aggregates: compute those from the released table)"
    )
    if isinstance(value, exp.Count):
        arg = value.this
        if isinstance(arg, exp.Star):
            return DpColumn(name, Cell.COUNT_ROWS, position)
        if isinstance(arg, exp.Distinct):
            parts = arg.expressions
            if len(parts) == 1 and _unit_origin(analysis, top, parts[0]) is not None:
                return DpColumn(name, Cell.COUNT_UNITS, position)
            return Finding(
                RULE,
                f"{name}: COUNT(DISTINCT …) is only allowed on the privacy unit under differential privacy",
                _short(value),
            )
        if _plain_argument(analysis, top, arg):
            return DpColumn(name, Cell.COUNT_ROWS, position)
        return Finding(RULE, allowed, _short(value))
    if isinstance(value, exp.Sum | exp.Avg) and isinstance(value.this, exp.Column):
        bounded = aggregate_bounds(analysis, top, value.this, ctx)
        if bounded is None:
            return Finding(
                RULE,
                f"{name}: SUM and AVG under differential privacy need exactly one aggregate "
                "column with bounds: [low, high] in the scope (the noise is scaled to them)",
                _short(value),
            )
        source, bounds = bounded
        cell = Cell.SUM if isinstance(value, exp.Sum) else Cell.MEAN
        return DpColumn(name, cell, position, source=source, bounds=bounds)
    return Finding(RULE, allowed, _short(value))


def _plain_argument(analysis: Analysis, top: SelectScope, arg: exp.Expr) -> bool:
    """No aggregate, window or FILTER inside the argument."""
    return not analysis.info(arg, top).aggregate and arg.find(exp.Window, exp.Filter) is None


def aggregate_bounds(
    analysis: Analysis, scope: SelectScope, arg: exp.Expr, ctx: PolicyContext
) -> tuple[str, tuple[float, float]] | None:
    """The one bounded ``aggregate`` column behind ``arg`` (``table.column``) and its bounds."""
    origins = [o for o in analysis.info(arg, scope).lineage if o.use is Use.AGGREGATE]
    if len(origins) != 1:
        return None
    origin = origins[0]
    table = ctx.table(origin.table)
    policy = table.column(origin.column) if table is not None else None
    if policy is None or policy.rule.bounds is None:
        return None
    low, high = policy.rule.bounds
    return f"{origin.table}.{origin.column}", (float(low), float(high))


def _pure_source(lineage: dict[Origin, Shape]) -> str | None:
    if len(lineage) != 1:
        return None
    origin, shape = next(iter(lineage.items()))
    return origin.column if shape is Shape.PURE else None


def _domain(column: DpColumn, dp: DifferentialPrivacy) -> tuple[PublicKey, ...] | None:
    lowered = {name.lower(): values for name, values in dp.public_groups.items()}
    for candidate in (column.source, column.name):
        if candidate is not None and candidate.lower() in lowered:
            return lowered[candidate.lower()]
    return None


def _public_keys(keys: list[DpColumn], dp: DifferentialPrivacy) -> tuple[tuple[PublicKey, ...], ...] | None:
    domains = [_domain(c, dp) for c in keys]
    if not keys or any(d is None for d in domains):
        return None
    return tuple(d for d in domains if d is not None)


def read_tables(analysis: Analysis) -> list[str]:
    """Every table scan of the query, by table name (a table read twice is listed twice)."""
    out: list[str] = []
    for scope in analysis.scopes:
        for node in source_nodes(scope.select):
            source = scope.sources.get(node.alias_or_name.lower())
            if isinstance(source, Base):
                out.append(source.table.ref.sql_name)
    return out


def rows_per_unit(analysis: Analysis, dp: DifferentialPrivacy) -> int:
    """M: the most rows one unit can have in the final aggregation's input (product over the tables).

    A table whose every unit has one row (``one_row_per_unit``, measured when its version was stored)
    counts 1, whatever ``max_rows_per_unit`` allows: nothing is sampled there, and less noise is needed.

    >>> from policies.dp.examples import dp_context
    >>> ctx, _, analysis = dp_context("SELECT COUNT(*) AS n FROM citizens c JOIN visits v "
    ...                               "ON c.person_id = v.person_id")
    >>> rows_per_unit(analysis, ctx.disclosure.dp)
    6
    """
    return math.prod(
        table_rows_per_unit(analysis.ctx, dp, name) for name in sorted(set(read_tables(analysis)))
    )


def table_rows_per_unit(ctx: PolicyContext, dp: DifferentialPrivacy, name: str) -> int:
    """``m_t``: rows of one unit kept from table ``name`` (1 where the table has one row per unit)."""
    table = ctx.table(name)
    if table is not None and table.one_row_per_unit:
        return 1
    return dp.rows_per_unit(name)


def keys_from_data(analysis: Analysis, ctx: PolicyContext) -> bool:
    """Whether a DP query releases group keys that no public domain lists: only then does the release
    need each group's distinct-unit count (the noisy threshold of DP partition selection), so only then
    does the rewrite compute it (``COUNT(DISTINCT unit)`` is the dearest part of an aggregate).

    >>> from policies.dp.examples import dp_context
    >>> ctx, _, analysis = dp_context("SELECT district, COUNT(*) AS n FROM citizens GROUP BY district")
    >>> keys_from_data(analysis, ctx)
    False
    >>> ctx, _, analysis = dp_context("SELECT ward, COUNT(*) AS n FROM visits GROUP BY ward")
    >>> keys_from_data(analysis, ctx)
    True
    """
    dp = ctx.disclosure.dp
    tree = analysis.tree
    top = analysis.scope_of_select(tree) if isinstance(tree, exp.Select) else None
    if dp is None or top is None or not isinstance(tree, exp.Select):
        return True  # not a plan DP accepts; counting costs only time
    for position, projection in enumerate(tree.expressions):
        info = analysis.info(projection, top)
        if info.aggregate:
            continue
        key = DpColumn(projection.alias_or_name, Cell.KEY, position, source=_pure_source(info.lineage))
        if _domain(key, dp) is None:
            return True
    return False


def group_bound_table(analysis: Analysis) -> str | None:
    """The table whose scan can cut one unit's groups: the query reads one table, directly from the
    final SELECT, with no join (then every group key is a function of that table's row).

    >>> from policies.dp.examples import dp_context
    >>> group_bound_table(dp_context("SELECT ward, COUNT(*) AS n FROM visits GROUP BY ward")[2])
    'visits'
    """
    tree = analysis.tree
    if not isinstance(tree, exp.Select) or tree.args.get("group") is None:
        return None
    top = analysis.scope_of_select(tree)
    sources = source_nodes(tree)
    if top is None or len(set(read_tables(analysis))) != 1 or len(sources) != 1:
        return None
    source = top.sources.get(sources[0].alias_or_name.lower())
    return source.table.ref.sql_name if isinstance(source, Base) else None


def _short(node: exp.Expr) -> str:
    text = node.sql(dialect="duckdb")
    return text if len(text) <= 200 else text[:197] + "..."
