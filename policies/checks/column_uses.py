"""Enforce every column's ``use`` level where its value ends up (docs/design.md §4 table).

Lineage carries a column through CTEs, subqueries and set operations, so a value renamed in a CTE is
judged where it is finally used: in a predicate, a GROUP BY key, an aggregate argument or the output.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from policies.analysis.cells import bucket_of
from policies.analysis.levels import Analysis
from policies.analysis.lineage import Info, Origin, Shape
from policies.analysis.markers import GENERATED_META, UNIT_CONTRIBUTION_PREFIX
from policies.analysis.scopes import SelectScope, walk_same_query
from policies.analysis.syntax import AGGREGATES, window_over_aggregates
from policies.context import PolicyContext
from policies.findings import Finding
from policies.model import Use

_GROUPING = (exp.Rollup, exp.Cube, exp.GroupingSets, exp.Tuple, exp.Paren)
_KEY_EQUALITIES = (exp.EQ, exp.NullSafeEQ)
#: The arguments an allowed aggregate may have: its one value (``this``, possibly DISTINCT), and the
#: parser's own flags. Anything else (``MAX(x, n)``'s count, …) is another function in disguise.
_AGGREGATE_ARGS = frozenset({"this", "big_int"})


def column_uses(analysis: Analysis, ctx: PolicyContext) -> Iterator[Finding]:
    """Findings for columns used beyond their ``use`` level."""
    checker = _Checker(analysis, ctx)
    for scope in analysis.scopes:
        checker.scope(scope)
    seen: set[Finding] = set()
    for finding in checker.findings:
        if finding not in seen:
            seen.add(finding)
            yield finding


class _Checker:
    def __init__(self, analysis: Analysis, ctx: PolicyContext) -> None:
        self.a = analysis
        self.ctx = ctx
        self.findings: list[Finding] = []
        self._allowed_functions: dict[Origin, tuple[str, ...]] = {}
        self._buckets = analysis.has_any(exp.Case, exp.If)  # decided once: asked for every aggregate

    # -- per scope ------------------------------------------------------------------------------

    def scope(self, scope: SelectScope) -> None:
        select = scope.select
        if (where := select.args.get("where")) is not None:
            self.predicate(where.this, scope)
        for join in select.args.get("joins") or ():
            if (on := join.args.get("on")) is not None:
                self.predicate(on, scope)
        if scope.role == "top" or scope.aggregating:
            # Nested aggregation is refused by query_shape; its aggregates are still judged here so
            # that every finding is reported, not only the first.
            self.output(scope)
        elif scope.role == "scalar":
            for projection in select.expressions:
                self.output_expr(projection.unalias(), scope, [])
        elif scope.role == "derived":
            for projection in select.expressions:
                self.deny_only(projection, scope)
        if scope.role != "top" and (order := select.args.get("order")) is not None:
            # ORDER BY with LIMIT in a subquery selects rows by value: judged like a filter.
            for ordered in order.expressions:
                for column in walk_same_query(ordered):
                    if isinstance(column, exp.Column):
                        for origin in self.a.info(column, scope).lineage:
                            self.predicate_use(origin, column)

    def output(self, scope: SelectScope) -> None:
        select = scope.select
        group = select.args.get("group")
        keys: list[exp.Expr] = []
        if group is not None:
            if group.args.get("all"):
                keys = [p.unalias() for p in select.expressions if not self.a.info(p, scope).aggregate]
            else:
                keys = _flatten_group(group)
            for key in keys:
                self.group_key(key, scope)
        for projection in select.expressions:
            self.output_expr(projection.unalias(), scope, keys)
        if (having := select.args.get("having")) is not None:
            self.output_expr(having.this, scope, keys)
            self._no_filter_cells(having)
        order = select.args.get("order")
        if order is not None:
            for ordered in order.expressions:
                self.output_expr(ordered.this, scope, keys)
            self._no_filter_cells(order)

    def _no_filter_cells(self, node: exp.Expr) -> None:
        """A FILTER cell is counted only where it is released; in HAVING/ORDER BY it would be an oracle."""
        if not self.a.has_any(exp.Filter):
            return
        for cell in walk_same_query(node):
            if isinstance(cell, exp.Filter) and not cell.meta_get(GENERATED_META):
                self._add(
                    "filter_placement",
                    "AGG(…) FILTER (WHERE …) is allowed only as an output column (where "
                    "its subset is counted), not in HAVING or ORDER BY",
                    cell,
                )

    # -- contexts -------------------------------------------------------------------------------

    def predicate(self, node: exp.Expr, scope: SelectScope) -> None:
        """WHERE, JOIN ON and FILTER (WHERE …): filter, group and plain columns; join keys only in
        key equalities and key semi-joins."""
        consumed: set[int] = set()
        nodes = walk_same_query(node)
        for sub in nodes:
            if isinstance(sub, _KEY_EQUALITIES) and self._key_pair(sub.left, sub.right, scope):
                consumed.update(id(c) for c in sub.find_all(exp.Column))
            elif isinstance(sub, exp.In) and sub.args.get("query") is not None:
                self.semi_join(sub, scope, consumed)
        for column in nodes:
            if isinstance(column, exp.Column) and id(column) not in consumed:
                info = self.a.info(column, scope)
                for origin in info.lineage:
                    self.predicate_use(origin, column)

    def semi_join(self, node: exp.In, scope: SelectScope, consumed: set[int]) -> None:
        query = node.args["query"]
        inner = query.this if isinstance(query, exp.Subquery) else query
        outputs = self.a.outputs(inner)
        left = self.a.info(node.this, scope)
        if len(outputs) == 1 and _pure_key(left) and _pure_key(outputs[0][1]):
            consumed.update(id(c) for c in node.this.find_all(exp.Column))
            return
        for _, info in outputs:
            for origin in info.lineage:
                self.predicate_use(origin, inner)

    def predicate_use(self, origin: Origin, node: exp.Expr) -> None:
        if origin.use in (Use.FILTER, Use.GROUP, Use.PLAIN):
            return
        name = f"{origin.table}.{origin.column}"
        if origin.use is Use.DENY:
            self._denied(origin, node)
        elif origin.use is Use.JOIN_KEY:
            self._add(
                "join_key_use",
                f"{name} is a join key: it may appear only in JOIN … ON a.key = b.key "
                "(or IN a subquery of keys) and COUNT(DISTINCT …)",
                node,
            )
        else:
            self._add(
                "aggregate_use",
                f"{name} may be used only inside {self._functions(origin)}; it cannot filter rows",
                node,
            )

    def group_key(self, key: exp.Expr, scope: SelectScope) -> None:
        info = self.a.info(key, scope)
        if info.aggregate:
            self._add("nested_aggregate", "aggregates cannot be GROUP BY keys", key)
        for origin in info.lineage:
            name = f"{origin.table}.{origin.column}"
            if origin.use in (Use.GROUP, Use.PLAIN):
                continue
            if origin.use is Use.DENY:
                self._denied(origin, key)
            elif origin.use is Use.JOIN_KEY and key.meta_get(GENERATED_META):
                # The engine's per-unit aggregate (``clamp_unit_contributions``): each unit's
                # contribution, clamped there and only ever summed over units, never released.
                continue
            elif origin.use is Use.JOIN_KEY:
                self._add(
                    "join_key_use",
                    f"{name} is a join key and can never be grouped on (each group would "
                    "be one person); group by group columns",
                    key,
                )
            elif origin.use is Use.FILTER:
                self._add(
                    "filter_use",
                    f"{name} may be used only in WHERE or JOIN conditions, not in GROUP BY; "
                    "filter on it with WHERE instead",
                    key,
                )
            else:
                self._add(
                    "aggregate_use",
                    f"{name} may be used only inside {self._functions(origin)}, not in GROUP BY",
                    key,
                )

    def output_expr(self, node: exp.Expr, scope: SelectScope, keys: list[exp.Expr]) -> None:
        """A released value: constants, group keys, allowed aggregates and safe functions of those."""
        if any(node == key for key in keys):
            return
        if isinstance(node, exp.Window) and window_over_aggregates(node):
            # SUM(COUNT(*)) OVER (PARTITION BY key): the released rows combined; judge what it combines.
            parts = [node.this.this, *(node.args.get("partition_by") or [])]
            if (order := node.args.get("order")) is not None:
                parts.extend(o.this for o in order.expressions)
            for part in parts:
                self.output_expr(part, scope, keys)
            return
        if isinstance(node, exp.Filter) or type(node) in AGGREGATES:
            self.aggregate(node, scope)
            return
        if isinstance(node, exp.Column):
            self._row_value(node, scope)
            return
        if isinstance(node, exp.Query | exp.Subquery):
            return  # refused by query_shape (scalar subquery)
        for child in node.iter_expressions():
            self.output_expr(child, scope, keys)

    def _row_value(self, column: exp.Column, scope: SelectScope) -> None:
        if not column.table:
            return  # an output alias in ORDER BY / HAVING
        info = self.a.info(column, scope)
        protected = False
        for origin in info.lineage:
            if origin.use in (Use.GROUP, Use.PLAIN):
                continue
            protected = True
            if origin.use is Use.DENY:
                self._denied(origin, column)
            elif origin.use is Use.JOIN_KEY:
                self._add(
                    "join_key_use",
                    f"{origin.table}.{origin.column} is a join key and is never released; "
                    "count it with COUNT(DISTINCT …)",
                    column,
                )
            elif origin.use is Use.FILTER:
                self._add(
                    "filter_use",
                    f"{origin.table}.{origin.column} may be used only in WHERE or JOIN "
                    "conditions, never released",
                    column,
                )
            else:
                self._add(
                    "aggregate_use",
                    f"{origin.table}.{origin.column} is released only through {self._functions(origin)}",
                    column,
                )
        if not protected:
            self._add(
                "aggregate_only",
                f"{column.sql(dialect='duckdb')} is neither grouped nor aggregated: add "
                "it to GROUP BY or wrap it in an aggregate",
                column,
            )

    def aggregate(self, node: exp.Expr, scope: SelectScope) -> None:
        func = node.this if isinstance(node, exp.Filter) else node
        if isinstance(node, exp.Filter):
            self.predicate(node.expression.this, scope)
        name = AGGREGATES.get(type(func))
        if name is None:
            self._add(
                "function_not_allowed", f"{func.sql(dialect='duckdb')} is not an allowed aggregate", func
            )
            return
        if self.a.holds_aggregate(func):
            self._add("nested_aggregate", "aggregates cannot be nested", func)
            return
        extra = [key for key, value in func.args.items() if key not in _AGGREGATE_ARGS and value]
        if extra:
            # MAX(x, n) / MIN(x, n) return the n largest or smallest values themselves: a list of
            # single people's values, not an aggregate over them.
            self._add(
                "aggregate_arguments",
                f"{name.upper()}(…) takes exactly one argument here; its multi-argument form returns "
                f"individual values (a top-n list), not an aggregate; write {name.upper()}(column)",
                func,
            )
            return
        args = list(func.iter_expressions())
        bucket = None
        if self._buckets and not isinstance(node, exp.Filter):
            bucket = bucket_of(func)
        if bucket is not None:
            # A one-branch CASE bucket is a FILTER cell in another spelling: its condition is judged
            # like a predicate, its branches like the aggregate's argument, and the
            # neutralise_small_subsets pass neutralises it when one side has 1..k-1 units.
            self.predicate(bucket.condition, scope)
            args = [a for a in args if a is not func.this] + list(bucket.branches)  # func.this: CASE/TRY
        info = _merge_args([self.a.info(a, scope) for a in args])
        distinct = isinstance(func.this, exp.Distinct)
        for origin, shape in info.lineage.items():
            self.aggregate_use(origin, shape, name, func, distinct=distinct)

    def aggregate_use(
        self, origin: Origin, shape: Shape, name: str, node: exp.Expr, *, distinct: bool = False
    ) -> None:
        label = f"{origin.table}.{origin.column}"
        if origin.use is Use.DENY:
            self._denied(origin, node)
            return
        # The engine's own sums over its per-unit contributions (``clamp_unit_contributions``: a CASE
        # on each unit's row count, a scaled sum) are the bound itself, not a subset's value. Only
        # those: marked, and summing one ``_sbx_dp_c…`` column (a name a query cannot use).
        engine = _sums_unit_contributions(node)
        if shape is Shape.COND and not engine:
            # Plain columns too: a condition on any column picks a subset of the row, which may be a
            # handful of people; only FILTER cells and one-branch buckets are neutralised for that.
            self._add(
                "conditional_aggregate",
                f"{label} is used in a condition inside {name.upper()}(…) that the engine cannot "
                "neutralise for small subsets; write AGG(…) FILTER (WHERE …) or one bucket per "
                "aggregate (AGG(CASE WHEN … THEN … ELSE … END) with a single WHEN)",
                node,
            )
            return
        if distinct and origin.use is not Use.JOIN_KEY:
            # COUNT(DISTINCT district) counts values, and a value held by one person counts as much as
            # one held by thousands: whether one person's district is the only 'Tiny' one changes it.
            self._add(
                "distinct_values",
                f"{name.upper()}(DISTINCT {origin.column}) counts values that may each be held by fewer "
                f"than k people, so it can change with one person; count people with COUNT(DISTINCT "
                f"<unit>), or GROUP BY {origin.column} to count the people behind each value",
                node,
            )
            return
        if origin.use is Use.PLAIN:
            return
        if origin.use is Use.JOIN_KEY:
            if name != "count" or shape is not Shape.PURE or not distinct:
                self._add(
                    "join_key_use",
                    f"{label} is a join key: only COUNT(DISTINCT {origin.column}) is allowed on it",
                    node,
                )
        elif origin.use is Use.FILTER:
            self._add(
                "filter_use",
                f"{label} may be used only in WHERE or JOIN conditions; to count a subset "
                f"write COUNT(*) FILTER (WHERE {origin.column} = …)",
                node,
            )
        elif origin.use is Use.GROUP:
            if name != "count":
                self._add(
                    "group_use",
                    f"{label} is a group column: it may be grouped on (GROUP BY {origin.column}) or "
                    f"counted, not aggregated with {name.upper()}(…); the scope would have to grant it "
                    "as an aggregate column (use: aggregate) for that",
                    node,
                )
        else:
            allowed = self._allowed(origin)
            if name not in allowed:
                self._add(
                    "aggregate_function",
                    f"{name.upper()}({label}) is not allowed; allowed: "
                    f"{', '.join(f.upper() for f in allowed)}",
                    node,
                )
            elif shape > Shape.ARITH and not engine:
                self._add(
                    "aggregate_use",
                    f"{label} may be aggregated directly or through arithmetic only "
                    f"(e.g. {name.upper()}({origin.column}))",
                    node,
                )

    def deny_only(self, node: exp.Expr, scope: SelectScope) -> None:
        if scope.select.meta_get("sbx_star"):
            return  # reported once as star_expansion
        for origin in self.a.info(node, scope).lineage:
            if origin.use is Use.DENY:
                self._denied(origin, node)

    # -- helpers --------------------------------------------------------------------------------

    def _key_pair(self, left: exp.Expr, right: exp.Expr, scope: SelectScope) -> bool:
        return _pure_key(self.a.info(left, scope)) and _pure_key(self.a.info(right, scope))

    def _allowed(self, origin: Origin) -> tuple[str, ...]:
        allowed = self._allowed_functions.get(origin)
        if allowed is None:
            table = self.ctx.table(origin.table)
            column = table.column(origin.column) if table else None
            allowed = () if column is None else tuple(str(f) for f in column.rule.allowed_functions)
            self._allowed_functions[origin] = allowed
        return allowed

    def _functions(self, origin: Origin) -> str:
        return ", ".join(f"{f.upper()}(…)" for f in self._allowed(origin)) or "no aggregate"

    def _denied(self, origin: Origin, node: exp.Expr) -> None:
        self._add(
            "column_denied",
            f"column {origin.table}.{origin.column} is not granted by this scope (use: deny); remove it",
            node,
        )

    def _add(self, rule: str, message: str, node: exp.Expr) -> None:
        text = node.sql(dialect="duckdb")
        self.findings.append(Finding(rule, message, text if len(text) <= 200 else text[:197] + "..."))


def _pure_key(info: Info) -> bool:
    return len(info.lineage) == 1 and all(
        o.use is Use.JOIN_KEY and s is Shape.PURE for o, s in info.lineage.items()
    )


def _merge_args(infos: list[Info]) -> Info:
    lineage: dict[Origin, Shape] = {}
    for info in infos:
        for origin, shape in info.lineage.items():
            lineage[origin] = max(lineage.get(origin, Shape.PURE), shape)
    return Info(lineage, None)


def _flatten_group(group: exp.Group) -> list[exp.Expr]:
    out: list[exp.Expr] = []
    stack = list(group.iter_expressions())
    while stack:
        node = stack.pop(0)
        if isinstance(node, _GROUPING):
            stack.extend(node.iter_expressions())
        else:
            out.append(node)
    return out


def _sums_unit_contributions(node: exp.Expr) -> bool:
    """``SUM(a._sbx_dp_c<i>)`` as ``clamp_unit_contributions`` generates it (marked by the engine)."""
    if not isinstance(node, exp.Sum) or not node.meta_get(GENERATED_META):
        return False
    argument = node.this
    return isinstance(argument, exp.Column) and argument.name.startswith(UNIT_CONTRIBUTION_PREFIX)
