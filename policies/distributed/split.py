"""Split a rewritten query into a per-part partial query and an exact final merge query.

Dataset versions are stored as parts partitioned by a keyed hash of the privacy unit, so every unit
lives in exactly one part (docs/design.md §7). For an aggregate query that reads its tables row by row
and joins them only on their units, every group's rows in part *i* are exactly the rows of units living
in part *i*. Each aggregate then combines exactly across parts:

==========================  =================================  =========================================
aggregate                   per part (partial)                 merge (final)
==========================  =================================  =========================================
``COUNT(*)``, ``COUNT(x)``  the same                           ``CAST(SUM(p) AS BIGINT)``
``COUNT(DISTINCT unit)``    the same                           ``CAST(SUM(p) AS BIGINT)`` (a unit is
                                                               counted in its one part only)
``SUM(x)``                  the same                           ``SUM(p)`` (DuckDB's SUM type is stable
                                                               under a second SUM)
``AVG(x)``                  ``SUM(x)`` and ``COUNT(x)``        ``SUM(s) / SUM(c)`` as DOUBLE, NULL when
                                                               ``SUM(c) = 0``
``MIN(x)``, ``MAX(x)``      the same                           ``MIN(p)``, ``MAX(p)``
float ``SUM(x)``, ``AVG``   the exact sum's two HUGEINT limbs  the limbs' sums combined once
                            (``policies.exact_sums``), the     (``combine``), divided by ``SUM(c)`` for
                            count in range, ``COUNT(x)``       AVG; the sum of the plain sums where a
                            and a plain ``SUM(x)``             value was out of range
==========================  =================================  =========================================

A float sum is recognised from ``column_types`` (the declared types; without them a float SUM merges
its parts' DOUBLE sums, deterministic but not always the bits one process gives). Integer addition is
associative, so the merged limbs are the one process's limbs, and the result has the same bits as one
process's exact sum (``executors.exact_sums``) on any number of parts.

A ``FILTER (WHERE …)`` stays on the partial aggregate (it decides per row). A derived table may filter
its rows with windows partitioned by its privacy unit (``QUALIFY ROW_NUMBER() OVER (PARTITION BY unit
…) <= n``: differential privacy's per-unit sample): such a window sees one unit's rows only, which all
live in one part, so each part keeps exactly the rows one process would. Group keys are computed per
part under generated aliases and grouped again; HAVING, ORDER BY and LIMIT run only in the final query.
Anything else (another aggregate, ``COUNT(DISTINCT`` of a non-unit column, window functions, set
operations, GROUPING SETS, joins not on the units, a derived table that aggregates) is
:class:`NotSplittable` with the reason, and the caller runs the query as one task over all parts.

The pass is pure: one parse, no I/O, generated aliases ``_sbx_g<i>`` (group keys) and ``_sbx_p<i>``
(partial aggregates) numbered in traversal order, so the same input always gives the same output.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from policies.exact_sums import as_double, combine, kind, kind_of_type, limbs, unshadowed

PARTIALS_TABLE = "_sbx_partials"
#: The CTE of the DP sample that ranks only units above its bound (``policies.dp.passes._sample``).
LIGHT_FIRST_CTE = "_sbx_dp_heavy"
DIALECT = "duckdb"


@dataclass(frozen=True)
class SplitQuery:
    """A query that runs as ``partial_sql`` on every part, then ``final_sql`` over the union of the
    partial results registered as ``partials_table``."""

    partial_sql: str
    final_sql: str
    partials_table: str = PARTIALS_TABLE


@dataclass(frozen=True)
class NotSplittable:
    """The query must run as one task over all parts; ``reason`` says why, for logs and timings."""

    reason: str


class _Refuse(Exception):
    """Internal: the first reason the query cannot be split (caught in ``split_query``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def split_query(
    sql: str, *, units: Mapping[str, str], column_types: Mapping[str, Mapping[str, str]] | None = None
) -> SplitQuery | NotSplittable:
    """Split ``sql`` (DuckDB dialect) for unit-partitioned execution; ``units`` maps every table's SQL
    name to its privacy-unit column, ``column_types`` (where known) every table's columns to their
    DuckDB types: a SUM or AVG it shows to be over floats then merges exactly (see the module's notes).

    >>> plan = split_query("SELECT d, AVG(x) AS a FROM t GROUP BY d ORDER BY a", units={"t": "u"})
    >>> plan.partial_sql
    'SELECT d AS "_sbx_g0", SUM(x) AS "_sbx_p0", COUNT(x) AS "_sbx_p1" FROM t GROUP BY d'
    >>> print(plan.final_sql.replace(" ELSE ", "\\n ELSE ").replace(" FROM ", "\\n FROM "))
    SELECT "_sbx_g0" AS d, CASE WHEN SUM("_sbx_p1") = 0 THEN NULL
     ELSE CAST(SUM("_sbx_p0") AS DOUBLE) / SUM("_sbx_p1") END AS a
     FROM "_sbx_partials" GROUP BY "_sbx_g0" ORDER BY a
    >>> split_query("SELECT MEDIAN(x) AS m FROM t", units={"t": "u"}).reason
    'MEDIAN(…) does not combine exactly across parts'
    """
    try:
        tree = sqlglot.parse_one(sql, dialect=DIALECT)
    except SqlglotError:
        return NotSplittable("the query does not parse")
    try:
        return _Splitter(tree, units, column_types or {}).split()
    except _Refuse as refusal:
        return NotSplittable(refusal.reason)


class _Splitter:
    def __init__(
        self, tree: exp.Expr, units: Mapping[str, str], column_types: Mapping[str, Mapping[str, str]]
    ) -> None:
        self.tree = tree
        self.units = {name.lower(): unit.lower() for name, unit in units.items()}
        self.column_kinds: dict[str, set[str]] = {}  # column name -> kinds of the columns so named
        for columns in column_types.values():
            for column, type_name in columns.items():
                self.column_kinds.setdefault(column.lower(), set()).add(kind_of_type(type_name))
        self.ctes: dict[str, exp.Expr] = {}
        self.source_units: dict[str, str] = {}  # alias in the top FROM -> its unit column
        self.group_keys: list[exp.Expr] = []
        self.partials: list[exp.Expr] = []  # partial projections (aliased)
        self.partial_of: dict[str, str] = {}  # partial aggregate SQL -> its alias
        self._output_aliases: frozenset[str] = frozenset()  # names HAVING may refer to
        self._unit_windows: set[int] = set()  # ids of windows checked to partition by their unit

    # -- shape -------------------------------------------------------------------------------------

    def split(self) -> SplitQuery:
        select = self.tree
        if not isinstance(select, exp.Select):
            raise _Refuse("only a single SELECT splits (no set operations)")
        self._read_ctes(select)
        for key in ("distinct", "qualify", "windows", "prewhere", "connect", "match", "laterals", "pivots"):
            if select.args.get(key):
                raise _Refuse(f"{key.upper()} at the top level does not split")
        if select.args.get("offset") and not select.args.get("limit"):
            raise _Refuse("OFFSET without LIMIT does not split")
        self._read_sources(select)
        # After the sources: only the per-unit windows of derived tables, checked there, may remain.
        if any(id(w) not in self._unit_windows for w in select.find_all(exp.Window)):
            raise _Refuse("window functions do not split")
        group = select.args.get("group")
        if group is not None:
            grouping = any(group.args.get(k) for k in ("grouping_sets", "cube", "rollup", "totals"))
            if grouping or group.find(exp.GroupingSets, exp.Cube, exp.Rollup) is not None:
                raise _Refuse("GROUPING SETS, CUBE and ROLLUP do not split")
            self.group_keys = [self._group_expression(select, e) for e in group.expressions]
        if group is None and not any(select.find_all(exp.AggFunc)):
            raise _Refuse("a query without aggregation does not split")
        return self._build(select)

    def _read_ctes(self, select: exp.Select) -> None:
        with_ = select.args.get("with_") or select.args.get("with")
        if with_ is None:
            return
        if with_.args.get("recursive"):
            raise _Refuse("recursive CTEs do not split")
        for cte in with_.expressions:
            self._require_row_level(cte.this, where=f"CTE {cte.alias}")
            self.ctes[cte.alias.lower()] = cte.this

    def _read_sources(self, select: exp.Select) -> None:
        from_ = select.args.get("from_") or select.args.get("from")
        if from_ is None:
            raise _Refuse("a query without FROM does not split")
        first = from_.this
        self.source_units[first.alias_or_name.lower()] = self._unit_of_source(first)
        for join in select.args.get("joins") or ():
            source = join.this
            alias = source.alias_or_name.lower()
            if alias in self.source_units:
                raise _Refuse(f"source alias {alias!r} is used twice")
            unit = self._unit_of_source(source)
            if join.args.get("using"):
                names = {u.name.lower() for u in join.args["using"]}
                joined_on_unit = unit in names and all(unit == u for u in self.source_units.values())
            else:
                joined_on_unit = self._joins_on_unit(join.args.get("on"), alias, unit)
            if not joined_on_unit:
                raise _Refuse("a join that is not on the privacy units of both sides does not split")
            self.source_units[alias] = unit

    def _unit_of_source(self, source: exp.Expr) -> str:
        """The unit column a source exposes under its alias (so co-partitioning can be checked)."""
        if isinstance(source, exp.Table):
            if source.args.get("db") or source.args.get("catalog"):
                raise _Refuse("qualified table names do not split")
            name = source.name.lower()
            if name in self.ctes:
                return self._unit_of_query(self.ctes[name])
            if name not in self.units:
                raise _Refuse(f"table {source.name!r} has no known privacy unit")
            return self.units[name]
        if isinstance(source, exp.Subquery):
            if isinstance(source.this, exp.Union):
                return self._unit_of_light_first(source.this, alias=source.alias_or_name.lower())
            per_unit = self._unit_of_per_unit_aggregate(source.this)
            if per_unit is not None:
                return per_unit
            self._require_row_level(source.this, where="a derived table")
            return self._unit_of_query(source.this)
        raise _Refuse(f"a {type(source).__name__} source does not split")

    def _unit_of_light_first(self, union: exp.Union, *, alias: str) -> str:
        """The DP sample that ranks only the units above its bound (``policies.dp.passes._sample``):
        ``WITH _sbx_dp_heavy AS (SELECT a.unit FROM src AS a GROUP BY a.unit HAVING …) SELECT * FROM src
        AS a WHERE NOT EXISTS (…) UNION ALL SELECT * FROM src AS a WHERE EXISTS (…) QUALIFY …``, each
        EXISTS matching ``_sbx_dp_heavy.unit`` to ``a.unit``. Every part holds all of a unit's rows, so
        each part finds the same heavy units and keeps the same rows as one process would."""
        with_ = union.args.get("with_") or union.args.get("with")
        ctes = [] if with_ is None else list(with_.expressions)
        if union.args.get("distinct") or len(ctes) != 1 or ctes[0].alias != LIGHT_FIRST_CTE:
            raise _Refuse("a set operation in a derived table does not split")
        heavy, light, ranked = ctes[0].this, union.this, union.expression
        if not all(isinstance(q, exp.Select) for q in (heavy, light, ranked)):
            raise _Refuse("a set operation in a derived table does not split")
        unit = self._unit_of_heavy_units(heavy)
        for original, wanted in ((light, exp.Not), (ranked, exp.Exists)):
            where = original.args.get("where")
            condition = None if where is None else where.this
            if not isinstance(condition, wanted) or original.args.get("joins"):
                raise _Refuse("a set operation in a derived table does not split")
            probe = condition.this.this if isinstance(condition, exp.Not) else condition.this
            if not self._probes_heavy_units(probe, alias=alias, unit=unit):
                raise _Refuse("a set operation in a derived table does not split")
            branch = original.copy()
            branch.set("where", None)  # checked above; the rest must be row-level as any derived table
            self._require_row_level(branch, where="a derived table")
            if self._unit_of_query(branch) != unit:
                raise _Refuse("the branches of a derived table read different units")
            # The copy's windows were checked to partition by the unit: so are the original's.
            self._unit_windows.update(id(w) for w in original.find_all(exp.Window))
        return unit

    def _unit_of_per_unit_aggregate(self, query: exp.Expr) -> str | None:
        """``SELECT a.unit, <aggregates> FROM src AS a [WHERE …] GROUP BY a.unit``: one row per unit
        (DP's clamped per-unit contributions, ``policies.dp.passes.clamp_unit_contributions``). Every
        part holds all of a unit's rows, so each part computes the same rows one process would; the
        unit is projected unchanged. ``None`` when ``query`` is not of this shape."""
        if not isinstance(query, exp.Select) or query.args.get("joins"):
            return None
        group = query.args.get("group")
        from_ = query.args.get("from_") or query.args.get("from")
        if group is None or from_ is None or len(group.expressions) != 1:
            return None
        for key in ("having", "distinct", "limit", "offset", "qualify", "order", "with_", "with"):
            if query.args.get(key):
                return None
        if any(query.find_all(exp.Window)) or any(
            q is not query for q in query.find_all(exp.Select) if q.find_ancestor(exp.From) is None
        ):
            return None
        alias = from_.this.alias_or_name.lower()
        unit = self._unit_of_source(from_.this)
        (key,) = group.expressions

        def is_unit(node: exp.Expr) -> bool:
            if not isinstance(node, exp.Column):
                return False
            return node.name.lower() == unit and node.table.lower() in ("", alias)

        if not is_unit(key) or not any(is_unit(p) for p in query.expressions):
            return None
        return unit

    def _unit_of_heavy_units(self, heavy: exp.Select) -> str:
        """``SELECT a.unit FROM src AS a GROUP BY a.unit HAVING …``: one row per unit of one source."""
        from_ = heavy.args.get("from_") or heavy.args.get("from")
        group = heavy.args.get("group")
        if from_ is None or group is None or heavy.args.get("joins") or heavy.args.get("where"):
            raise _Refuse("a set operation in a derived table does not split")
        unit = self._unit_of_source(from_.this)
        keys = [k for k in group.expressions if isinstance(k, exp.Column) and k.name.lower() == unit]
        if len(group.expressions) != 1 or not keys or len(heavy.expressions) != 1:
            raise _Refuse("a set operation in a derived table does not split")
        return unit

    @staticmethod
    def _probes_heavy_units(probe: exp.Expr, *, alias: str, unit: str) -> bool:
        """``SELECT 1 FROM _sbx_dp_heavy … WHERE _sbx_dp_heavy.unit IS NOT DISTINCT FROM alias.unit``."""
        if not isinstance(probe, exp.Select) or probe.args.get("joins"):
            return False
        from_ = probe.args.get("from_") or probe.args.get("from")
        where = probe.args.get("where")
        if from_ is None or not isinstance(from_.this, exp.Table) or from_.this.name != LIGHT_FIRST_CTE:
            return False
        match = None if where is None else where.this
        if not isinstance(match, exp.NullSafeEQ):
            return False
        sides = {
            (c.table.lower(), c.name.lower())
            for c in (match.this, match.expression)
            if isinstance(c, exp.Column)
        }
        return sides == {(LIGHT_FIRST_CTE, unit), (alias, unit)}

    def _unit_of_query(self, query: exp.Expr) -> str:
        """A row-level SELECT over one source exposes that source's unit if it projects it unchanged."""
        if not isinstance(query, exp.Select) or query.args.get("joins"):
            raise _Refuse("a derived table must read one source row by row")
        from_ = query.args.get("from_") or query.args.get("from")
        if from_ is None:
            raise _Refuse("a derived table without FROM does not split")
        unit = self._unit_of_source(from_.this)
        for projection in query.expressions:
            if isinstance(projection, exp.Star):
                return unit
            target = projection.this if isinstance(projection, exp.Alias) else projection
            unchanged = isinstance(target, exp.Column) and target.name.lower() == unit
            if unchanged and projection.alias_or_name.lower() == unit:
                return unit
        raise _Refuse("a derived table must project the privacy unit unchanged")

    def _require_row_level(self, query: exp.Expr, *, where: str) -> None:
        if not isinstance(query, exp.Select):
            raise _Refuse(f"{where} is not a plain SELECT")
        per_unit = self._per_unit_windows(query)
        for key in ("group", "having", "distinct", "limit", "offset", "qualify", "order", "with_", "with"):
            if query.args.get(key) and not (key == "qualify" and per_unit):
                raise _Refuse(f"{where} is not row-level ({key.upper()})")
        windowed = {id(w.this) for w in query.find_all(exp.Window)}
        if any(id(a) not in windowed for a in query.find_all(exp.AggFunc)):
            raise _Refuse(f"{where} aggregates")
        if any(id(w) not in self._unit_windows for w in query.find_all(exp.Window)):
            raise _Refuse(f"{where} aggregates")

    def _per_unit_windows(self, query: exp.Select) -> bool:
        """Whether ``query`` has windows of its own and every one is partitioned by its source's unit
        (then it is recorded as splittable); deeper derived tables are checked on their own."""
        own = [w for w in query.find_all(exp.Window) if w.find_ancestor(exp.Select) is query]
        if not own:
            return False
        from_ = query.args.get("from_") or query.args.get("from")
        if from_ is None or query.args.get("joins"):
            return False
        alias = from_.this.alias_or_name.lower()
        unit = self._unit_of_source(from_.this)
        for window in own:
            keys = window.args.get("partition_by") or []
            if not any(
                isinstance(k, exp.Column) and k.name.lower() == unit and k.table.lower() in ("", alias)
                for k in keys
            ):
                return False
        self._unit_windows.update(id(w) for w in own)
        return True

    def _joins_on_unit(self, on: exp.Expr | None, alias: str, unit: str) -> bool:
        if on is None:
            return False
        for conjunct in on.flatten() if isinstance(on, exp.And) else (on,):
            if not isinstance(conjunct, exp.EQ):
                continue
            left, right = conjunct.this, conjunct.expression
            if not (isinstance(left, exp.Column) and isinstance(right, exp.Column)):
                continue
            sides = {(left.table.lower(), left.name.lower()), (right.table.lower(), right.name.lower())}
            if (alias, unit) not in sides:
                continue
            (other,) = sides - {(alias, unit)} or {("", "")}
            if other[0] in self.source_units and self.source_units[other[0]] == other[1]:
                return True
        return False

    def _group_expression(self, select: exp.Select, item: exp.Expr) -> exp.Expr:
        if isinstance(item, exp.Literal) and item.is_int:
            index = int(item.name) - 1
            if not 0 <= index < len(select.expressions):
                raise _Refuse("GROUP BY ordinal out of range")
            target = select.expressions[index]
            item = target.this if isinstance(target, exp.Alias) else target
        if any(item.find_all(exp.AggFunc)):
            raise _Refuse("an aggregate in GROUP BY does not split")
        return item

    # -- building ----------------------------------------------------------------------------------

    def _build(self, select: exp.Select) -> SplitQuery:
        group_sql = [key.sql(dialect=DIALECT) for key in self.group_keys]
        for i, key in enumerate(self.group_keys):
            self.partials.append(exp.alias_(key.copy(), f"_sbx_g{i}", quoted=True))

        final_projections = []
        for projection in select.expressions:
            if isinstance(projection, exp.Alias):
                body, name = projection.this, projection.args["alias"].copy()
            elif isinstance(projection, exp.Column):
                body, name = projection, projection.args["this"].copy()
            else:
                raise _Refuse("every output column needs a name")
            final_projections.append(exp.Alias(this=self._merge(body, group_sql), alias=name))
        aliases = {p.alias.lower() for p in final_projections}

        final = exp.Select(expressions=final_projections)
        final.set("from_", exp.From(this=exp.Table(this=exp.to_identifier(PARTIALS_TABLE, quoted=True))))
        if self.group_keys:
            keys = [exp.column(f"_sbx_g{i}", quoted=True) for i in range(len(self.group_keys))]
            final.set("group", exp.Group(expressions=keys))
        having = select.args.get("having")
        if having is not None:
            # HAVING may name an output column (the k rule names the hidden unit counts): the final
            # query has the same output names, so such a reference means the same there.
            self._output_aliases = frozenset(aliases)
            final.set("having", exp.Having(this=self._merge(having.this, group_sql)))
            self._output_aliases = frozenset()
        order = select.args.get("order")
        if order is not None:
            final.set("order", self._merge_order(order, group_sql, aliases))
        for arg in ("limit", "offset"):
            if select.args.get(arg) is not None:
                final.set(arg, select.args[arg].copy())

        partial = exp.Select(expressions=self.partials)
        for arg in ("with_", "with", "from_", "from", "where"):
            if select.args.get(arg) is not None:
                partial.set(arg, select.args[arg].copy())
        if select.args.get("joins"):
            partial.set("joins", [join.copy() for join in select.args["joins"]])
        if self.group_keys:
            partial.set("group", exp.Group(expressions=[k.copy() for k in self.group_keys]))
        return SplitQuery(partial_sql=partial.sql(dialect=DIALECT), final_sql=final.sql(dialect=DIALECT))

    def _merge_order(self, order: exp.Order, group_sql: list[str], aliases: set[str]) -> exp.Order:
        rebuilt = []
        for ordered in order.expressions:
            target = ordered.this
            # An ordinal or an output alias means the same in the final query; anything else is merged.
            by_output = (isinstance(target, exp.Literal) and target.is_int) or (
                isinstance(target, exp.Column) and not target.table and target.name.lower() in aliases
            )
            copy = ordered.copy()
            copy.set("this", target.copy() if by_output else self._merge(target, group_sql))
            rebuilt.append(copy)
        return exp.Order(expressions=rebuilt)

    def _merge(self, node: exp.Expr, group_sql: list[str]) -> exp.Expr:
        """``node`` rewritten for the final query: group keys and aggregates become partial columns."""
        text = node.sql(dialect=DIALECT)
        if text in group_sql:
            return exp.column(f"_sbx_g{group_sql.index(text)}", quoted=True)
        if isinstance(node, exp.Filter | exp.AggFunc):
            return self._merge_aggregate(node)
        if isinstance(node, exp.Column):
            if not node.table and node.name.lower() in self._output_aliases:
                return node.copy()
            raise _Refuse(f"column {text} is neither a group key nor inside an aggregate")
        if isinstance(node, exp.Subquery | exp.Select):
            raise _Refuse("a subquery in the output, HAVING or ORDER BY does not split")
        copy = node.copy()
        for key, value in node.args.items():
            if isinstance(value, exp.Expr):
                copy.set(key, self._merge(value, group_sql))
            elif isinstance(value, list):
                copy.set(key, [self._merge(v, group_sql) if isinstance(v, exp.Expr) else v for v in value])
        return copy

    def _merge_aggregate(self, node: exp.Expr) -> exp.Expr:
        aggregate = node.this if isinstance(node, exp.Filter) else node
        condition = node.expression if isinstance(node, exp.Filter) else None

        def partial(inner: exp.Expr) -> exp.Expr:
            built = exp.Filter(this=inner, expression=condition.copy()) if condition is not None else inner
            return exp.column(self._partial(built), quoted=True)

        if isinstance(aggregate, exp.Count):
            argument = aggregate.this
            if isinstance(argument, exp.Distinct):
                self._require_unit(argument)
            return _cast(exp.Sum(this=partial(aggregate.copy())), "BIGINT")
        if isinstance(aggregate, exp.Sum | exp.Avg) and self._over_floats(aggregate):
            return self._merge_float(aggregate, partial)
        if isinstance(aggregate, exp.Sum):
            return exp.Sum(this=partial(aggregate.copy()))
        if isinstance(aggregate, exp.Min | exp.Max):
            if len(aggregate.expressions) > 0:
                raise _Refuse(f"{aggregate.key.upper()}(…) with several arguments does not split")
            return type(aggregate)(this=partial(aggregate.copy()))
        if isinstance(aggregate, exp.ArrayAgg) and isinstance(aggregate.this, exp.Distinct):
            # The released-cohort ledger's unit lists: parts hold disjoint units, so the final list is
            # the parts' lists one after the other (NULL where no part had one, as in one process).
            self._require_unit(aggregate.this)
            lists = partial(aggregate.copy())
            present = exp.Filter(
                this=exp.ArrayAgg(this=lists),
                expression=exp.Where(this=exp.Not(this=exp.Is(this=lists.copy(), expression=exp.Null()))),
            )
            return exp.Anonymous(this="FLATTEN", expressions=[present])
        if isinstance(aggregate, exp.Avg):
            total = exp.Sum(this=partial(exp.Sum(this=aggregate.this.copy())))
            count = exp.Sum(this=partial(exp.Count(this=aggregate.this.copy())))
            is_empty = exp.EQ(this=count, expression=exp.Literal.number(0))
            ratio = exp.Div(this=_cast(total, "DOUBLE"), expression=count.copy())
            return exp.Case(ifs=[exp.If(this=is_empty, true=exp.Null())], default=ratio)
        name = aggregate.sql_name() if hasattr(aggregate, "sql_name") else type(aggregate).__name__
        raise _Refuse(f"{name}(…) does not combine exactly across parts")

    def _over_floats(self, aggregate: exp.Sum | exp.Avg) -> bool:
        if isinstance(aggregate.this, exp.Distinct) or not self.column_kinds:
            return False
        return kind(aggregate.this, unshadowed(self.column_kinds, self.tree, aggregate)) == "float"

    @staticmethod
    def _merge_float(aggregate: exp.Sum | exp.Avg, partial: Callable[[exp.Expr], exp.Expr]) -> exp.Expr:
        """The exact merge of a float SUM or AVG: each part sums the two integer limbs of its values
        (``policies.exact_sums``), counts the values and those in the limbs' range, and keeps a plain
        sum; the merge adds the limbs and combines them once, the same bits as one process's exact sum
        on any number of parts. A value outside the range (NaN, an infinity, a tiny or huge magnitude)
        makes the merge add the parts' plain sums instead: one process then sums as written too."""
        argument = aggregate.this
        whole, low = limbs(as_double(argument), strict=False)
        # A part's HUGEINT sums reach the merge as Arrow's decimal128(38, 0): HUGEINT again to combine.
        whole_sum, low_sum = (
            exp.Sum(this=_cast(partial(exp.Sum(this=limb)), "HUGEINT")) for limb in (whole, low)
        )
        exact = combine(whole_sum, low_sum)
        in_range = exp.Sum(this=partial(exp.Count(this=whole.copy())))
        count = exp.Sum(this=partial(exp.Count(this=argument.copy())))
        plain = _cast(exp.Sum(this=partial(exp.Sum(this=argument.copy()))), "DOUBLE")
        total = exp.Case(
            ifs=[exp.If(this=exp.EQ(this=in_range, expression=count.copy()), true=exact)], default=plain
        )
        if isinstance(aggregate, exp.Sum):
            return total
        is_empty = exp.EQ(this=count.copy(), expression=exp.Literal.number(0))
        ratio = exp.Div(this=exp.Paren(this=total), expression=count.copy())
        return exp.Case(ifs=[exp.If(this=is_empty, true=exp.Null())], default=ratio)

    def _require_unit(self, distinct: exp.Distinct) -> None:
        (argument, *rest) = distinct.expressions or [None]
        if rest or not isinstance(argument, exp.Column):
            raise _Refuse("COUNT(DISTINCT …) splits only over a privacy unit")
        table = argument.table.lower()
        candidates = [table] if table else list(self.source_units)
        if not any(self.source_units.get(alias) == argument.name.lower() for alias in candidates):
            raise _Refuse("COUNT(DISTINCT …) of a column that is not a privacy unit does not split")
        if not table and len(self.source_units) > 1:
            raise _Refuse("an unqualified COUNT(DISTINCT …) over a join does not split")

    def _partial(self, aggregate: exp.Expr) -> str:
        text = aggregate.sql(dialect=DIALECT)
        if text not in self.partial_of:
            alias = f"_sbx_p{len(self.partial_of)}"
            self.partial_of[text] = alias
            self.partials.append(exp.alias_(aggregate, alias, quoted=True))
        return self.partial_of[text]


def _cast(node: exp.Expr, to: str) -> exp.Cast:
    return exp.Cast(this=node, to=exp.DataType.build(to))
