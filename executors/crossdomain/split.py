"""Split a prepared cross-domain query into each domain's own part and the plan of the private join.

Input: the policy engine's rewritten SQL (masks, clamps and row filters already applied, so each
domain's part inherits them) and which domain holds each table. Output: for each side, one SELECT over
that domain's table only (its unit, its group keys, the arguments of its sums, under its own WHERE
conjuncts), to run on that domain's executor; and the :class:`CrossDomainPlan` for the protocol.
Anything outside the supported shape is refused with findings that say what is supported.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from executors.crossdomain.packing import VALUE_BITS
from executors.crossdomain.plan import Aggregate, CrossDomainPlan, Function, Side, SidePlan, inexact
from executors.crossdomain.records import SLOTS_PER_SUM
from policies import Finding, PolicyViolation
from policies.dp.plan import DpPlan
from policies.model import Disclosure

HIDDEN = "_sbx_"
#: The hidden sum and count of an AVG under differential privacy (``policies.dp.plan.MEAN_SUM`` and
#: ``MEAN_COUNT``): noised separately, so the gateway computes them as cells of their own.
DP_MEAN_SUM = "_sbx_dp_sum_"
DP_MEAN_COUNT = "_sbx_dp_count_"
UNIT_ALIAS = "_xd_unit"
#: The most expressions one side sums: a person's slots (rows, then ``SLOTS_PER_SUM`` per sum) must fit
#: one 2048-bit Paillier plaintext of 64-bit slots (``packing``), under either way of handing values over.
MAX_SUMS = (2048 // 64 - 2) // SLOTS_PER_SUM
RULE = "cross_domain_shape"
SUPPORTED = (
    "Across domains the supported shape is: SELECT <group keys of either side>, COUNT(DISTINCT unit), "
    "COUNT(*), COUNT(<column of one side>), SUM(<column of one side>), AVG(<column of one side>) "
    "FROM a JOIN b ON a.unit = b.unit "
    "[WHERE <conditions each on one side's columns>] GROUP BY <those keys> [ORDER BY <output columns>] "
    "[LIMIT n]."
)


@dataclass(frozen=True)
class DomainPart:
    """One domain's part: the dataset it reads and the SELECT its own executor runs on it."""

    dataset: str
    sql: str


@dataclass(frozen=True)
class SplitQuery:
    """Both parts, the protocol's plan, and the ordering and limit to apply to the released rows."""

    left: DomainPart
    right: DomainPart
    plan: CrossDomainPlan
    order_by: tuple[tuple[str, bool], ...]  # (output column, descending)
    limit: int | None


def split(
    sql: str,
    *,
    datasets: Mapping[str, str],
    domains: Mapping[str, str],
    one_row: Collection[str] = (),
) -> SplitQuery:
    """Split the rewritten ``sql``; ``datasets`` maps each table's SQL name to its dataset, ``domains``
    each dataset to its domain, ``one_row`` names the datasets that hold at most one row per person (from
    the catalog, before any data is read: ``SidePlan.one_row``). Raises :class:`PolicyViolation` with
    every finding, among them a COUNT(*), SUM or AVG that the rows per person would make inexact.

    >>> sql = ('SELECT c.district AS district, COUNT(DISTINCT v.pid) AS n FROM visits AS v '
    ...        'JOIN citizens AS c ON v.pid = c.pid WHERE v.dx = 1 GROUP BY c.district')
    >>> out = split(sql, datasets={"visits": "h/visits", "citizens": "c/citizens"},
    ...             domains={"h/visits": "h", "c/citizens": "c"})
    >>> out.left.sql
    'SELECT v.pid AS "_xd_unit" FROM visits AS v WHERE v.dx = 1'
    >>> out.right.sql
    'SELECT c.pid AS "_xd_unit", c.district AS "district" FROM citizens AS c'
    >>> out.plan.aggregates[0].function.value, out.plan.right.group_by
    ('count_units', ('district',))
    """
    tree = sqlglot.parse_one(sql, dialect="duckdb")
    if not isinstance(tree, exp.Select):
        raise _refused("only one SELECT is supported", tree)
    sides = _sides(tree, datasets=datasets, domains=domains)
    findings: list[Finding] = []
    where: dict[str, list[exp.Expr]] = {alias: [] for alias in sides}
    for conjunct in _conjuncts(tree.args.get("where")):
        owner = _owner(conjunct, sides)
        if owner is None:
            findings.append(_finding("a condition must use the columns of one side only", conjunct))
        else:
            where[owner].append(conjunct)
    groups = {alias: [] for alias in sides}  # type: dict[str, list[tuple[str, exp.Expr]]]
    group_sql = {g.sql(dialect="duckdb") for g in (tree.args.get("group") or exp.Group()).expressions}
    sums = {alias: [] for alias in sides}  # type: dict[str, list[exp.Expr]]
    aggregates: list[tuple[str, Function, str | None, int | None]] = []
    for item in tree.expressions:
        name = item.alias_or_name
        value = item.this if isinstance(item, exp.Alias) else item
        if name.startswith(DP_MEAN_COUNT) and isinstance(value, exp.Count):
            # COUNT(<clamped value>) of an AVG: the non-NULL values of its argument, a count slot that
            # each domain keeps beside every sum (``records.per_person``).
            owner = _owner(value.this, sides)
            if owner is None:
                findings.append(_finding("AVG takes an expression of one side's columns", value))
                continue
            aggregates.append((name, Function.COUNT_VALUES, owner, _summed(sums[owner], value.this)))
            continue
        if name.startswith(HIDDEN) and not name.startswith(DP_MEAN_SUM):
            continue
        if value.sql(dialect="duckdb") in group_sql:
            owner = _owner(value, sides)
            if owner is None:
                findings.append(_finding("a group key must come from one side", value))
            else:
                groups[owner].append((name, value))
            continue
        shaped = _aggregate(value, sides)
        if isinstance(shaped, Finding):
            findings.append(shaped)
            continue
        function, owner, argument = shaped
        index = None
        if owner is not None and argument is not None:
            index = _summed(sums[owner], argument)
        aggregates.append((name, function, owner, index))
    for alias, summed in sums.items():
        if len(summed) > MAX_SUMS:
            findings.append(
                _finding(f"one side sums at most {MAX_SUMS} expressions across domains", sides[alias].node)
            )
    if tree.args.get("having") is not None and _operator_having(tree.args["having"]):
        findings.append(_finding("HAVING is not supported across domains", tree.args["having"]))
    if findings:
        raise PolicyViolation("the cross-domain query is outside the supported shape", findings=findings)
    aliases = list(sides)
    side_of = {aliases[0]: Side.LEFT, aliases[1]: Side.RIGHT}
    parts = {
        alias: DomainPart(
            dataset=sides[alias].dataset,
            sql=_part_sql(sides[alias], groups[alias], sums[alias], where[alias]),
        )
        for alias in aliases
    }
    plans = {
        alias: SidePlan(
            unit=UNIT_ALIAS,
            group_by=tuple(name for name, _ in groups[alias]),
            sums=tuple(f"_xd_sum_{i}" for i in range(len(sums[alias]))),
            one_row=sides[alias].dataset in one_row,
        )
        for alias in aliases
    }
    plan = CrossDomainPlan(
        left=plans[aliases[0]],
        right=plans[aliases[1]],
        aggregates=tuple(
            Aggregate(
                name,
                function,
                None if owner is None else side_of[owner],
                None if index is None else f"_xd_sum_{index}",
            )
            for name, function, owner, index in aggregates
        ),
    )
    refused = [
        Finding(RULE, f"{output}: {why}. {SUPPORTED}", output)
        for output, why in inexact(plan)
        if not output.startswith(HIDDEN)  # an AVG's parts: the AVG itself is judged
    ]
    if refused:
        raise PolicyViolation("the cross-domain query is outside the supported shape", findings=refused)
    return SplitQuery(
        left=parts[aliases[0]],
        right=parts[aliases[1]],
        plan=plan,
        order_by=_order_by(tree),
        limit=_limit(tree),
    )


def disclosure_findings(disclosure: Disclosure) -> tuple[Finding, ...]:
    """What a scope's disclosure settings ask that cross-domain jobs do not provide yet, each with what
    the policy officer can change (an empty tuple: the scope fits). Differential privacy fits: the
    gateway noises the rebuilt cells through the one release function (``docs/cross-domain.md``).

    >>> disclosure_findings(Disclosure(min_units=10))
    ()
    >>> [f.fragment for f in disclosure_findings(Disclosure(suppression="remainder"))]
    ['suppression: remainder']
    """
    findings = []
    if disclosure.suppression == "remainder":
        findings.append(
            Finding(
                RULE,
                "a remainder row needs the sums of suppressed cells, which a cross-domain job never "
                "decrypts; use suppression: drop for scopes that join across domains",
                "suppression: remainder",
            )
        )
    return tuple(findings)


def dp_findings(query: SplitQuery, plan: DpPlan, *, rows_per_unit: Mapping[str, int]) -> tuple[Finding, ...]:
    """What differential privacy cannot bound across domains, decided from the scope alone.

    ``rows_per_unit`` maps each dataset to the most rows one person keeps in it after the rows bound
    (``policies.dp.plan.table_rows_per_unit``: 1 for a register). The protocol computes ``COUNT(*)``,
    ``SUM`` and ``AVG`` over the join only when the other side has one row per person; under DP that
    follows from the rows bound (a bound of 1, or a register), decided from the scope and never from
    the data. The bounds must lie within the exact range of one person's value
    (``records.MAX_SCALED``), negative ones included.

    >>> from executors.crossdomain.plan import CrossDomainPlan, SidePlan
    >>> two = SplitQuery(DomainPart("a/x", ""), DomainPart("b/y", ""),
    ...                  CrossDomainPlan(SidePlan("u"), SidePlan("u"), (Aggregate("n", Function.COUNT),)),
    ...                  order_by=(), limit=None)
    >>> empty = DpPlan((), 1, 1, None, None)
    >>> [f.fragment for f in dp_findings(two, empty, rows_per_unit={"a/x": 2, "b/y": 3})]
    ['n']
    >>> dp_findings(two, empty, rows_per_unit={"a/x": 1, "b/y": 3})
    ()
    """
    many = {
        # A table whose rows per person are not known counts as several: refused, never assumed exact.
        Side.LEFT: rows_per_unit.get(query.left.dataset, 2) > 1,
        Side.RIGHT: rows_per_unit.get(query.right.dataset, 2) > 1,
    }
    findings: list[Finding] = []
    for aggregate in query.plan.aggregates:
        if aggregate.output.startswith(HIDDEN):
            continue  # an AVG's parts: the AVG itself is judged
        if aggregate.function is Function.COUNT and all(many.values()):
            findings.append(
                Finding(
                    RULE,
                    f"{aggregate.output}: under differential privacy COUNT(*) across domains needs one "
                    "side with one row per person (a register declared one_row_per_unit, or "
                    "dp.max_rows_per_unit of 1 for its table); or ask COUNT(DISTINCT unit)",
                    aggregate.output,
                )
            )
        if aggregate.side is not None and many[aggregate.side.other]:
            findings.append(
                Finding(
                    RULE,
                    f"{aggregate.output}: under differential privacy SUM and AVG across domains need the "
                    "other side to have one row per person (a register declared one_row_per_unit, or "
                    "dp.max_rows_per_unit of 1 for its table)",
                    aggregate.output,
                )
            )
    decimals = max(query.plan.left.decimals, query.plan.right.decimals)
    for column in plan.noised:
        # A clamped value past the encrypted sums' range would fail the run on one person's value.
        # A clamped value past the exact range would be clamped again there, on one person's value:
        # the cells would no longer be one query's over the bounded rows. Negative values have their
        # own slot (``records.per_person``), so the low is held to the same magnitude as the high.
        if column.bounds is not None and max(map(abs, column.bounds)) * 10**decimals >= 1 << VALUE_BITS:
            findings.append(
                Finding(
                    RULE,
                    f"{column.name}: across domains summed values must stay within ±"
                    f"{(1 << VALUE_BITS) / 10**decimals:.0f}; declare bounds of a smaller magnitude",
                    column.name,
                )
            )
    return tuple(findings)


@dataclass(frozen=True)
class _Source:
    alias: str
    dataset: str
    node: exp.Expr  # the FROM/JOIN source as rewritten (a table, or the row filter's subquery)
    unit: exp.Column


def _sides(
    tree: exp.Select, *, datasets: Mapping[str, str], domains: Mapping[str, str]
) -> dict[str, _Source]:
    joins = tree.args.get("joins") or []
    source = tree.args.get("from_") or tree.args.get("from")
    if source is None or len(joins) != 1:
        raise _refused("exactly two tables, joined once", tree)
    join = joins[0]
    if join.args.get("kind") or join.side or not isinstance(join.args.get("on"), exp.EQ):
        raise _refused("an inner JOIN ... ON a.unit = b.unit", join)
    on = join.args["on"]
    if not (isinstance(on.this, exp.Column) and isinstance(on.expression, exp.Column)):
        raise _refused("the join condition compares the two units", on)
    units = {on.this.table: on.this, on.expression.table: on.expression}
    out: dict[str, _Source] = {}
    for node in (source.this, join.this):
        alias = node.alias_or_name
        tables = _tables_read(node)
        if len(tables) != 1 or alias not in units:
            raise _refused("each side reads one table and joins on its unit", node)
        dataset = datasets.get(tables[0])
        if dataset is None:
            raise _refused("a table of the scope", node)
        out[alias] = _Source(alias, dataset, node, units[alias])
    if len({domains.get(s.dataset) for s in out.values()}) != 2:
        raise _refused("two tables of two different domains (one domain's joins run as usual)", tree)
    return out


def _tables_read(node: exp.Expr) -> list[str]:
    """The tables a FROM/JOIN source reads, once each. Under differential privacy the rows bound reads
    its table in several branches (``bound_rows_per_unit``: the people above the bound, and the others)
    and through its own CTE, whose name is not a table: one side still reads one table."""
    ctes = {cte.alias_or_name for cte in node.find_all(exp.CTE)}
    return sorted({t.name for t in node.find_all(exp.Table) if t.name not in ctes})


def _summed(summed: list[exp.Expr], argument: exp.Expr) -> int:
    """The index of ``argument`` among a side's summed expressions, added if new (an AVG's hidden sum
    and count under differential privacy read the same expression: one set of slots)."""
    for index, seen in enumerate(summed):
        if seen == argument:
            return index
    summed.append(argument)
    return len(summed) - 1


def _conjuncts(where: exp.Expr | None) -> list[exp.Expr]:
    if where is None:
        return []
    return list(where.this.flatten()) if isinstance(where.this, exp.And) else [where.this]


def _owner(node: exp.Expr, sides: Mapping[str, _Source]) -> str | None:
    tables = {column.table for column in node.find_all(exp.Column)}
    if len(tables) == 1 and next(iter(tables)) in sides:
        return next(iter(tables))
    return None


def _aggregate(
    value: exp.Expr, sides: Mapping[str, _Source]
) -> tuple[Function, str | None, exp.Expr | None] | Finding:
    if isinstance(value, exp.Count):
        argument = value.this
        if isinstance(argument, exp.Star):
            return Function.COUNT, None, None
        if isinstance(argument, exp.Distinct) and len(argument.expressions) == 1:
            column = argument.expressions[0]
            if isinstance(column, exp.Column) and any(column == s.unit for s in sides.values()):
                return Function.COUNT_UNITS, None, None
        if isinstance(argument, exp.Distinct):
            return _finding("COUNT(DISTINCT ...) is supported on the unit only", value)
        owner = _owner(argument, sides)
        if owner is None:
            return _finding("COUNT takes *, DISTINCT <unit> or an expression of one side's columns", value)
        # COUNT(x) is the non-NULL count of x. Each domain keeps a non-NULL count beside every summed
        # slot; summing x itself would miscount text, so the slot sums 1 where x is not NULL.
        present = exp.Case(
            ifs=[
                exp.If(
                    this=exp.Not(this=exp.Is(this=argument.copy(), expression=exp.Null())),
                    true=exp.Literal.number(1),
                )
            ]
        )
        return Function.COUNT_VALUES, owner, present
    if isinstance(value, exp.Sum | exp.Avg):
        owner = _owner(value.this, sides)
        if owner is None:
            return _finding("SUM and AVG take an expression of one side's columns", value)
        return (Function.SUM if isinstance(value, exp.Sum) else Function.AVG), owner, value.this
    return _finding("an output column must be a group key or a supported aggregate", value)


def _operator_having(having: exp.Expr) -> bool:
    """Whether HAVING holds more than the rewrite's own unit thresholds on ``_sbx_`` columns."""
    return any(not c.name.startswith(HIDDEN) for c in having.find_all(exp.Column))


def _part_sql(
    source: _Source, groups: list[tuple[str, exp.Expr]], sums: list[exp.Expr], where: list[exp.Expr]
) -> str:
    columns = [exp.alias_(source.unit.copy(), UNIT_ALIAS, quoted=True)]
    columns += [exp.alias_(value.copy(), name, quoted=True) for name, value in groups]
    columns += [exp.alias_(value.copy(), f"_xd_sum_{i}", quoted=True) for i, value in enumerate(sums)]
    select = exp.select(*columns).from_(source.node.copy())
    if where:
        select = select.where(exp.and_(*(c.copy() for c in where)))
    return select.sql(dialect="duckdb")


def _order_by(tree: exp.Select) -> tuple[tuple[str, bool], ...]:
    order = tree.args.get("order")
    if order is None:
        return ()
    out = []
    for key in order.expressions:
        if not isinstance(key.this, exp.Column) or key.this.table:
            raise _refused("ORDER BY output columns by name", key)
        out.append((key.this.name, bool(key.args.get("desc"))))
    return tuple(out)


def _limit(tree: exp.Select) -> int | None:
    limit = tree.args.get("limit")
    value = limit.expression if limit is not None else None
    return int(value.name) if isinstance(value, exp.Literal) and value.is_int else None


def _finding(what: str, node: exp.Expr) -> Finding:
    return Finding(RULE, f"{what}. {SUPPORTED}", node.sql(dialect="duckdb")[:200])


def _refused(what: str, node: exp.Expr) -> PolicyViolation:
    finding = Finding(
        RULE, f"a cross-domain query needs {what}. {SUPPORTED}", node.sql(dialect="duckdb")[:200]
    )
    return PolicyViolation("the cross-domain query is outside the supported shape", findings=[finding])
