"""Scopes, sources and release levels of a qualified query.

``Analysis`` walks the qualified tree once: every SELECT becomes a ``SelectScope`` whose sources are
catalog tables (``Base``), CTEs or subqueries (``Derived``) or something else (``Opaque``, refused by
``only_known_tables``). ``info(expr)`` derives, bottom-up through CTEs, subqueries, joins and set
operations, the *lineage* of an expression: which catalog columns flow into it and how (``Shape``),
its type family, and whether it is an aggregate. The checks decide from that what may be released.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType

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
    # Hashed once: origins are dictionary keys in every merge of lineages.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.table, self.column, self.use)))

    def __hash__(self) -> int:
        return self._hash


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
#: Types, units and names: never a value. (An identifier outside a column is a name, such as an
#: alias; its info would be empty, which adds nothing to a merge.)
_NOT_VALUES = (exp.DataType, exp.Var, exp.Identifier)
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


def _aggregate_holders(aggregates: list[exp.Expr]) -> set[int]:
    """Ids of the aggregates with another aggregate below them in the same query: from every
    aggregate up to the first query boundary (the nodes ``walk_same_query`` does not enter)."""
    holders: set[int] = set()
    for node in aggregates:
        current = node
        parent = current.parent
        while parent is not None:
            if type(parent) in AGGREGATES:
                holders.add(id(parent))
            if isinstance(current, _NESTED_QUERY):
                break  # a query: ``walk_same_query`` from anything above does not enter it
            current, parent = parent, parent.parent
    return holders


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

    def __init__(
        self,
        tree: exp.Expr,
        ctx: PolicyContext,
        *,
        generated: bool = False,
        facts_of: Analysis | None = None,
    ) -> None:
        """``facts_of``: an earlier analysis against the same context whose context-only facts (the
        info of each catalog column) this one may reuse; nothing that depends on a tree is shared."""
        self.tree = tree
        self.ctx = ctx
        self.generated = generated  # True for the re-check of the engine's own rewritten tree
        # One breadth-first walk of the whole tree, shared by every check (the order of
        # ``tree.walk()``, so findings come out in the same order as from separate walks).
        self.nodes: list[exp.Expr] = list(tree.walk())
        types = list(map(type, self.nodes))
        self.kinds: frozenset[type[exp.Expr]] = frozenset(types)
        self.scopes: list[SelectScope] = []
        self._by_select: dict[int, SelectScope] = {}
        # Caches keyed by id(node); ``_pinned`` keeps every keyed node alive so that an id cannot be
        # reused by a node the rewrite passes create while this analysis is still in use.
        self._info: dict[int, Info] = {}
        self._columns: dict[int, Info | None] = {}
        self._outputs: dict[int, list[tuple[str, Info]]] = {}
        self._output_names: dict[int, dict[str, Info]] = {}
        self._pinned: list[exp.Expr] = []
        self._aggregate_holders: set[int] | None = None
        self._aggregates: list[exp.Expr] | None = None
        self._scope_columns: list[tuple[exp.Column, SelectScope]] | None = None
        self._covered: frozenset[type] | None = None
        # The info of a catalog column depends on the context alone: one object per column.
        self._base_infos: dict[tuple[str, str], Info | None] = (
            facts_of._base_infos if facts_of is not None and facts_of.ctx is ctx else {}
        )
        # Queries nested in expressions (IN, EXISTS, scalar subqueries) are found by searching every
        # SELECT's expressions. When every SELECT of the tree already has its scope without that
        # search (or sits in a filtered scan, which is not analysed), there is none to find: a scope
        # is only ever made for a SELECT. Otherwise the scopes are built again with the search.
        self._search_expressions = False
        self._unscoped_selects = 0
        self._walk(tree, {}, None, "top")
        selects = sum(types.count(kind) for kind in self.kinds if issubclass(kind, exp.Select))
        if selects != len(self.scopes) + self._unscoped_selects:
            self.scopes.clear()
            self._by_select.clear()
            self._search_expressions = True
            self._walk(tree, {}, None, "top")

    def find_all(self, *kinds: type[exp.Expr]) -> list[exp.Expr]:
        """Like ``tree.find_all(*kinds)`` (same order), from the one walk."""
        if not self.has_any(*kinds):
            return []
        return [n for n in self.nodes if isinstance(n, kinds)]

    def has_any(self, *kinds: type[exp.Expr]) -> bool:
        """Whether the tree holds a node of one of ``kinds`` (or of a subclass)."""
        if self._covered is None:
            # Every class the tree's nodes are instances of: ``issubclass(k, K)`` is ``K in k.__mro__``.
            self._covered = frozenset().union(*(kind.__mro__ for kind in self.kinds))
        covered = self._covered
        return any(kind in covered for kind in kinds)

    def holds_aggregate(self, func: exp.Expr) -> bool:
        """Whether an aggregate sits below ``func`` in the same query, i.e. in
        ``walk_same_query(arg)`` of one of its arguments (decided for every node in one pass)."""
        if self._aggregate_holders is None:
            self._aggregate_holders = _aggregate_holders(self.aggregates())
        return id(func) in self._aggregate_holders

    def aggregates(self) -> list[exp.Expr]:
        """Every aggregate call of the tree, in walk order."""
        if self._aggregates is None:
            self._aggregates = [n for n in self.nodes if type(n) in AGGREGATES]
        return self._aggregates

    def scope_columns(self) -> list[tuple[exp.Column, SelectScope]]:
        """Every column reference that some scope's ``nodes`` hold, with that scope, in walk order.

        A node is in ``walk_same_query(select)`` exactly when ``select`` is the first query (or
        subquery) above it, so climbing from each column of the one walk finds its scope without
        walking every scope again."""
        if self._scope_columns is None:
            out: list[tuple[exp.Column, SelectScope]] = []
            by_select = self._by_select
            for node in self.nodes:
                if isinstance(node, exp.Column):
                    owner = node.parent
                    while owner is not None and not isinstance(owner, _NESTED_QUERY):
                        owner = owner.parent
                    scope = by_select.get(id(owner)) if owner is not None else None
                    if scope is not None and scope.select is owner:
                        out.append((node, scope))
            self._scope_columns = out
        return self._scope_columns

    def scope_of_select(self, select: exp.Expr) -> SelectScope | None:
        """The scope of a SELECT of the analysed tree (``None`` for one the analysis left out)."""
        scope = self._by_select.get(id(select))
        return scope if scope is not None and scope.select is select else None

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
            if isinstance(node, exp.Subquery):
                if not node.meta_get(FILTERED_SCAN_META):
                    self._walk(node.this, ctes, None, "derived")
                elif not self._search_expressions:
                    self._unscoped_selects += sum(1 for _ in node.find_all(exp.Select))
        self.scopes.append(scope)
        self._by_select[id(select)] = scope
        if self._search_expressions:
            for sub, sub_role in expression_subqueries(select):
                self._walk(sub, ctes, scope, sub_role)

    def _source(self, node: exp.Expr, ctes: dict[str, exp.CTE]) -> Source:
        if isinstance(node, exp.Subquery):
            scan = node.meta_get(FILTERED_SCAN_META)
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
            key = (source.table.ref.sql_name, name)
            if key not in self._base_infos:
                policy = source.table.column(name)
                self._base_infos[key] = (
                    None
                    if policy is None
                    else Info({Origin(key[0], name, policy.use): Shape.PURE}, policy.family)
                )
            return self._base_infos[key]
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
        if node.meta_get(MASK_META):
            column = node if isinstance(node, exp.Column) else node.find(exp.Column)
            inner = self.column_info(column, scope) or CONST if column is not None else CONST
            return Info(inner.lineage, node.meta_get(FAMILY_META, inner.family), inner.aggregate)
        if node.meta_get(TRANSPARENT_META):
            inner = self.info(node.this, scope)
            return Info(inner.lineage, node.meta_get(FAMILY_META, inner.family), inner.aggregate)
        children = [
            self.info(child, scope) for child in node.iter_expressions() if not isinstance(child, _NOT_VALUES)
        ]
        if isinstance(node, _PASS_THROUGH):
            return merge(children, Shape.PURE) if children else CONST
        merged = merge(children, _shape_of(node))
        aggregate = type(node) in AGGREGATES or any(c.aggregate for c in children)
        return Info(merged.lineage, _family_of(node, children), aggregate)


def merge(infos: list[Info], shape: Shape) -> Info:
    if len(infos) == 1 and (shape is Shape.PURE or not infos[0].lineage):
        return infos[0]  # nothing to combine, no shape to raise: the same facts (infos are immutable)
    lineage: dict[Origin, Shape] = {}
    for info in infos:
        for origin, inner in info.lineage.items():
            combined = max(inner, shape)
            lineage[origin] = max(lineage.get(origin, Shape.PURE), combined)
    family = next((i.family for i in infos if i.family is not None), None)
    return Info(lineage, family, any(i.aggregate for i in infos))


def _class_shape(kind: type[exp.Expr]) -> Shape:
    if issubclass(kind, _COND):
        return Shape.COND
    if issubclass(kind, _ARITH):
        return Shape.ARITH
    return Shape.OTHER


_BY_CHILDREN = "children"  # the family comes from the node's arguments (or, for casts and CASE, its own)


def _class_family(kind: type[exp.Expr]) -> str | None:
    if issubclass(kind, _BOOL):
        return "bool"
    if issubclass(kind, _NUM):
        return "num"
    if issubclass(kind, _STR):
        return "str"
    if issubclass(kind, _DATE):
        return "date"
    return _BY_CHILDREN


def _expression_classes() -> list[type[exp.Expr]]:
    out: list[type[exp.Expr]] = []
    stack: list[type[exp.Expr]] = [exp.Expr]
    while stack:
        kind = stack.pop()
        out.append(kind)
        stack.extend(kind.__subclasses__())
    return out


#: Shape and class-decided family of every expression class, computed once at import: ``isinstance``
#: against the long tuples above costs more than the rest of an info. (A class defined later, by a
#: dialect, is decided when it is met.)
_SHAPES: Mapping[type[exp.Expr], Shape] = MappingProxyType(
    {k: _class_shape(k) for k in _expression_classes()}
)
_FAMILIES: Mapping[type[exp.Expr], str | None] = MappingProxyType({k: _class_family(k) for k in _SHAPES})


def _shape_of(node: exp.Expr) -> Shape:
    kind = type(node)
    shape = _SHAPES.get(kind)
    return _class_shape(kind) if shape is None else shape


def _family_of(node: exp.Expr, children: list[Info]) -> str | None:
    kind = type(node)
    family = _FAMILIES[kind] if kind in _FAMILIES else _class_family(kind)
    if family is not _BY_CHILDREN:
        return family
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
