"""Scopes, sources and release levels of a qualified query.

``Analysis`` walks the qualified tree once: every SELECT becomes a ``SelectScope`` whose sources are
catalog tables (``Base``), CTEs or subqueries (``Derived``) or something else (``Opaque``, refused by
``only_known_tables``). ``info(expr)`` derives, bottom-up through CTEs, subqueries, joins and set
operations, the *lineage* of an expression: which catalog columns flow into it and how (``Shape``),
its type family, and whether it is an aggregate. The checks decide from that what may be released.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from sqlglot import exp

from policies.analysis.syntax import AGGREGATES
from policies.context import PolicyContext, TablePolicy
from policies.model import Use

#: Meta keys the rewrite passes put on nodes they generate.
MASK_META = "sbx_mask"  # a mask around one column: judged as that column
TRANSPARENT_META = "sbx_transparent"  # a guard around ``this``: judged as ``this``
FAMILY_META = "sbx_family"
GENERATED_META = "sbx_generated"
FILTERED_SCAN_META = "sbx_filtered_scan"
STAR_META = "sbx_star"


class Shape(IntEnum):
    """How a column's value reaches an expression, from most to least direct."""

    PURE = 0  # the value itself (possibly masked)
    ARITH = 1  # arithmetic with constants or other columns
    OTHER = 2  # through any other function
    COND = 3  # through a condition that can blank rows out (CASE, IF, COALESCE, NULLIF, a predicate)


@dataclass(frozen=True)
class Origin:
    table: str
    column: str
    use: Use


@dataclass(frozen=True)
class Info:
    lineage: dict[Origin, Shape]
    family: str | None
    aggregate: bool = False

    @property
    def protected(self) -> bool:
        """Whether any non-``plain`` column flows into the value."""
        return any(o.use is not Use.PLAIN for o in self.lineage)


CONST = Info({}, None)


@dataclass(frozen=True)
class Base:
    table: TablePolicy
    node: exp.Expr


@dataclass(frozen=True)
class Derived:
    query: exp.Expr
    node: exp.Expr


@dataclass(frozen=True)
class Opaque:
    node: exp.Expr


Source = Base | Derived | Opaque


@dataclass(eq=False)
class SelectScope:
    select: exp.Select
    role: str  # top | derived | in | exists | scalar
    parent: SelectScope | None
    ctes: dict[str, exp.CTE]
    sources: dict[str, Source] = field(default_factory=dict)
    _aggregating: bool | None = None
    _nodes: list[exp.Expr] | None = None

    def resolve(self, alias: str) -> tuple[SelectScope, Source] | None:
        """The scope and source an alias refers to, searching outward for correlated references."""
        scope: SelectScope | None = self
        while scope is not None:
            found = scope.sources.get(alias.lower())
            if found is not None:
                return scope, found
            scope = scope.parent
        return None

    @property
    def aggregating(self) -> bool:
        # Decided once, on the tree as analysed (the checks ask for it many times).
        if self._aggregating is None:
            parts = [*self.select.expressions, self.select.args.get("having")]
            self._aggregating = self.select.args.get("group") is not None or any(
                _has_aggregate(p) for p in parts if p is not None
            )
        return self._aggregating

    @property
    def nodes(self) -> list[exp.Expr]:
        """``walk_same_query(select)``, walked once (on the tree as analysed)."""
        if self._nodes is None:
            self._nodes = walk_same_query(self.select)
        return self._nodes


_COND = (exp.Case, exp.If, exp.Coalesce, exp.Nullif, exp.Predicate, exp.Connector, exp.Not, exp.Filter)
_ARITH = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.Neg)
_NUM = (
    *_ARITH,
    exp.Year,
    exp.Month,
    exp.Day,
    exp.Quarter,
    exp.DayOfWeek,
    exp.Extract,
    exp.Length,
    exp.Round,
    exp.Floor,
    exp.Ceil,
    exp.Abs,
    exp.Sign,
    exp.Count,
    exp.Sum,
    exp.Avg,
    exp.Stddev,
    exp.StddevSamp,
    exp.StddevPop,
    exp.Variance,
    exp.VariancePop,
)
_STR = (
    exp.Upper,
    exp.Lower,
    exp.Substring,
    exp.Left,
    exp.Right,
    exp.Concat,
    exp.DPipe,
    exp.Trim,
    exp.TimeToStr,
)
_DATE = (exp.TimestampTrunc, exp.DateTrunc)
_BOOL = (exp.Predicate, exp.Connector, exp.Not, exp.Exists, exp.StartsWith)


def _has_aggregate(node: exp.Expr) -> bool:
    return any(type(n) in AGGREGATES for n in walk_same_query(node))


_NESTED_QUERY = (exp.Query, exp.Subquery)  # tuples: ``isinstance(x, A | B)`` builds a union per call
_NOT_VALUES = (exp.DataType, exp.Var)
_PASS_THROUGH = (exp.Alias, exp.Paren, exp.Distinct, exp.Ordered)


def walk_same_query(node: exp.Expr) -> list[exp.Expr]:
    """``node`` and its descendants, not descending into nested queries."""
    out: list[exp.Expr] = []
    stack = [node]
    push, pop, add = stack.append, stack.pop, out.append
    while stack:
        current = pop()
        add(current)
        for child in current.iter_expressions():
            if not isinstance(child, _NESTED_QUERY):
                push(child)
    return out


def source_nodes(select: exp.Select) -> list[exp.Expr]:
    """The FROM item and every joined item of a SELECT, in order."""
    out: list[exp.Expr] = []
    from_ = select.args.get("from_")
    if from_ is not None:
        out.append(from_.this)
    out.extend(join.this for join in select.args.get("joins") or ())
    return out


class Analysis:
    """Scopes and lineage of one qualified query (built per call, never shared)."""

    def __init__(self, tree: exp.Expr, ctx: PolicyContext, *, generated: bool = False) -> None:
        self.tree = tree
        self.ctx = ctx
        self.generated = generated  # True for the re-check of the engine's own rewritten tree
        # One breadth-first walk of the whole tree, shared by every check (the order of
        # ``tree.walk()``, so findings come out in the same order as from separate walks).
        self.nodes: list[exp.Expr] = list(tree.walk())
        self.kinds: frozenset[type[exp.Expr]] = frozenset(type(n) for n in self.nodes)
        self.scopes: list[SelectScope] = []
        self._by_select: dict[int, SelectScope] = {}
        # Caches keyed by id(node); ``_pinned`` keeps every keyed node alive so that an id cannot be
        # reused by a node the rewrite passes create while this analysis is still in use.
        self._info: dict[int, Info] = {}
        self._columns: dict[int, Info | None] = {}
        self._outputs: dict[int, list[tuple[str, Info]]] = {}
        self._output_names: dict[int, dict[str, Info]] = {}
        self._pinned: list[exp.Expr] = []
        self._walk(tree, {}, None, "top")

    def find_all(self, *kinds: type[exp.Expr]) -> list[exp.Expr]:
        """Like ``tree.find_all(*kinds)`` (same order), from the one walk."""
        if not any(issubclass(k, kinds) for k in self.kinds):
            return []
        return [n for n in self.nodes if isinstance(n, kinds)]

    # -- scopes ---------------------------------------------------------------------------------

    def _walk(self, query: exp.Expr, ctes: dict[str, exp.CTE], parent: SelectScope | None, role: str) -> None:
        ctes = dict(ctes)
        with_ = query.args.get("with_")
        if with_ is not None:
            for cte in with_.expressions:
                self._walk(cte.this, ctes, None, "derived")
                ctes[cte.alias_or_name.lower()] = cte
        if isinstance(query, exp.Subquery):
            self._walk(query.this, ctes, parent, role)
        elif isinstance(query, exp.SetOperation):
            self._walk(query.left, ctes, parent, role)
            self._walk(query.right, ctes, parent, role)
        elif isinstance(query, exp.Select):
            self._walk_select(query, ctes, parent, role)

    def _walk_select(
        self, select: exp.Select, ctes: dict[str, exp.CTE], parent: SelectScope | None, role: str
    ) -> None:
        scope = SelectScope(select, role, parent, ctes)
        for node in source_nodes(select):
            alias = node.alias_or_name.lower()
            scope.sources[alias] = self._source(node, ctes)
            if isinstance(node, exp.Subquery) and not node.meta.get(FILTERED_SCAN_META):
                self._walk(node.this, ctes, None, "derived")
        self.scopes.append(scope)
        self._by_select[id(select)] = scope
        for sub, sub_role in expression_subqueries(select):
            self._walk(sub, ctes, scope, sub_role)

    def _source(self, node: exp.Expr, ctes: dict[str, exp.CTE]) -> Source:
        if isinstance(node, exp.Subquery):
            scan = node.meta.get(FILTERED_SCAN_META)
            if isinstance(scan, str) and (table := self.ctx.table(scan)) is not None:
                return Base(table, node)
            return Derived(node.this, node)
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
            name = node.name.lower()
            plain = not node.args.get("db") and not node.args.get("catalog")
            if plain and name in ctes:
                return Derived(ctes[name].this, node)
            table = self.ctx.table(name)
            if plain and table is not None:
                return Base(table, node)
        return Opaque(node)

    def scope_of(self, node: exp.Expr) -> SelectScope | None:
        """The SELECT scope an expression belongs to."""
        current: exp.Expr | None = node
        while current is not None:
            if isinstance(current, exp.Select):
                found = self._by_select.get(id(current))
                if found is not None:
                    return found
            current = current.parent
        return None

    # -- lineage --------------------------------------------------------------------------------

    def outputs(self, query: exp.Expr) -> list[tuple[str, Info]]:
        """Name and info of every output column of a query (set operations merged by position)."""
        key = id(query)
        cached = self._outputs.get(key)
        if cached is not None:
            return cached
        result: list[tuple[str, Info]] = []
        if isinstance(query, exp.Subquery):
            result = self.outputs(query.this)
        elif isinstance(query, exp.SetOperation):
            left, right = self.outputs(query.left), self.outputs(query.right)
            for i, (name, info) in enumerate(left):
                other = right[i][1] if i < len(right) else CONST
                result.append((name, merge([info, other], Shape.PURE)))
        elif isinstance(query, exp.Select):
            scope = self._by_select.get(id(query))
            for projection in query.expressions:
                name = projection.alias_or_name.lower()
                result.append((name, self.info(projection, scope) if scope else CONST))
        self._outputs[key] = result
        names: dict[str, Info] = {}
        for name, info in result:
            names.setdefault(name, info)  # the first column of a name is the one a reference sees
        self._output_names[key] = names
        self._pinned.append(query)
        return result

    def _output_named(self, query: exp.Expr, name: str) -> Info | None:
        if id(query) not in self._output_names:
            self.outputs(query)
        return self._output_names[id(query)].get(name)

    def column_info(self, column: exp.Column, scope: SelectScope | None) -> Info | None:
        """Info of a column reference; ``None`` when it does not resolve."""
        if scope is None or not column.table:
            return None
        key = id(column)
        if key in self._columns:
            return self._columns[key]
        result = self._column_info(column, scope)
        self._columns[key] = result
        self._pinned.append(column)
        return result

    def _column_info(self, column: exp.Column, scope: SelectScope) -> Info | None:
        found = scope.resolve(column.table)
        if found is None:
            return None
        _, source = found
        name = column.name.lower()
        if isinstance(source, Base):
            policy = source.table.column(name)
            if policy is None:
                return None
            return Info({Origin(source.table.ref.sql_name, name, policy.use): Shape.PURE}, policy.family)
        if isinstance(source, Derived):
            return self._output_named(source.query, name)
        return CONST

    def info(self, node: exp.Expr, scope: SelectScope | None = None) -> Info:
        """Lineage, family and aggregate-ness of ``node``."""
        key = id(node)
        cached = self._info.get(key)
        if cached is not None:
            return cached
        if scope is None:
            scope = self.scope_of(node)
        result = self._compute(node, scope)
        self._info[key] = result
        self._pinned.append(node)
        return result

    def _compute(self, node: exp.Expr, scope: SelectScope | None) -> Info:
        if isinstance(node, exp.Column):
            if isinstance(node.this, exp.Star):
                return CONST
            return self.column_info(node, scope) or CONST
        if isinstance(node, exp.Literal):
            return Info({}, "str" if node.is_string else "num")
        if isinstance(node, exp.Boolean):
            return Info({}, "bool")
        if isinstance(node, _NESTED_QUERY):
            outs = self.outputs(node)
            return merge([outs[0][1]], Shape.OTHER) if outs else CONST
        if node.meta.get(MASK_META):
            column = node if isinstance(node, exp.Column) else node.find(exp.Column)
            inner = self.column_info(column, scope) or CONST if column is not None else CONST
            return Info(inner.lineage, node.meta.get(FAMILY_META, inner.family), inner.aggregate)
        if node.meta.get(TRANSPARENT_META):
            inner = self.info(node.this, scope)
            return Info(inner.lineage, node.meta.get(FAMILY_META, inner.family), inner.aggregate)
        children = [
            self.info(child, scope) for child in node.iter_expressions() if not isinstance(child, _NOT_VALUES)
        ]
        if isinstance(node, _PASS_THROUGH):
            return merge(children, Shape.PURE) if children else CONST
        merged = merge(children, _shape_of(node))
        aggregate = type(node) in AGGREGATES or any(c.aggregate for c in children)
        return Info(merged.lineage, _family_of(node, children), aggregate)


def merge(infos: list[Info], shape: Shape) -> Info:
    lineage: dict[Origin, Shape] = {}
    for info in infos:
        for origin, inner in info.lineage.items():
            combined = max(inner, shape)
            lineage[origin] = max(lineage.get(origin, Shape.PURE), combined)
    family = next((i.family for i in infos if i.family is not None), None)
    return Info(lineage, family, any(i.aggregate for i in infos))


def _shape_of(node: exp.Expr) -> Shape:
    if isinstance(node, _COND):
        return Shape.COND
    if isinstance(node, _ARITH):
        return Shape.ARITH
    return Shape.OTHER


def _family_of(node: exp.Expr, children: list[Info]) -> str | None:
    if isinstance(node, _BOOL):
        return "bool"
    if isinstance(node, _NUM):
        return "num"
    if isinstance(node, _STR):
        return "str"
    if isinstance(node, _DATE):
        return "date"
    if isinstance(node, exp.Cast):
        return cast_family(node.to)
    if isinstance(node, exp.Case):
        values = [node.args.get("default")] + [i.args.get("true") for i in node.args.get("ifs") or ()]
        return next(
            (f for v in values if v is not None and (f := _literal_family(v)) is not None), None
        ) or next((c.family for c in children if c.family), None)
    return next((c.family for c in children if c.family is not None), None)


def _literal_family(node: exp.Expr) -> str | None:
    if isinstance(node, exp.Literal):
        return "str" if node.is_string else "num"
    return None


def cast_family(to: exp.DataType) -> str | None:
    name = to.this.name.upper() if to.this is not None else ""
    if name in {"VARCHAR", "TEXT", "CHAR"}:
        return "str"
    if name in {"DATE", "TIMESTAMP", "DATETIME"}:
        return "date"
    if name in {"BOOLEAN"}:
        return "bool"
    return "num"


def expression_subqueries(select: exp.Select) -> list[tuple[exp.Expr, str]]:
    """Queries nested in a SELECT's expressions (not its FROM items), with their role."""
    roots: list[exp.Expr] = [*select.expressions]
    for key in ("where", "group", "having", "order", "qualify", "limit", "offset"):
        if (value := select.args.get(key)) is not None:
            roots.append(value)
    roots.extend(j.args["on"] for j in select.args.get("joins") or () if j.args.get("on") is not None)
    out: list[tuple[exp.Expr, str]] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        if isinstance(node, exp.Query):
            parent = node.parent.parent if isinstance(node.parent, exp.Subquery) else node.parent
            role = (
                "exists"
                if isinstance(parent, exp.Exists)
                else "in"
                if isinstance(parent, exp.In)
                else "scalar"
            )
            out.append((node, role))
            continue
        stack.extend(node.iter_expressions())
    return out
