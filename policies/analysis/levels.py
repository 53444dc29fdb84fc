"""Release levels of a qualified query: the scopes of its SELECTs and the lineage of its expressions.

``Analysis`` walks the qualified tree once: every SELECT becomes a ``SelectScope`` (``scopes.py``).
``info(expr)`` derives, bottom-up through CTEs, subqueries, joins and set operations, the *lineage* of
an expression (``lineage.py``): which catalog columns flow into it and how, its type family, and
whether it is an aggregate. The checks decide from that what may be released.
"""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.lineage import CONST, Info, Origin, Shape, family_of, merge, shape_of
from policies.analysis.markers import (
    FAMILY_META,
    FILTERED_SCAN_META,
    FIRST_ROW_FLAG,
    GENERATED_META,
    MASK_META,
    TRANSPARENT_META,
)
from policies.analysis.scopes import (
    NESTED_QUERY,
    Base,
    Derived,
    Opaque,
    SelectScope,
    Source,
    aggregate_holders,
    expression_subqueries,
    source_nodes,
)
from policies.analysis.syntax import AGGREGATES
from policies.context import PolicyContext

#: Types, units and names: never a value. (An identifier outside a column is a name, such as an
#: alias; its info would be empty, which adds nothing to a merge.)
_NOT_VALUES = (exp.DataType, exp.Var, exp.Identifier)
_PASS_THROUGH = (exp.Alias, exp.Paren, exp.Distinct, exp.Ordered)


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
            self._aggregate_holders = aggregate_holders(self.aggregates())
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
                    while owner is not None and not isinstance(owner, NESTED_QUERY):
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
            if name == FIRST_ROW_FLAG and column.meta_get(GENERATED_META):
                return CONST  # the engine's flag on a sampled scan (never a name a query can write)
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
        if isinstance(node, NESTED_QUERY):
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
        merged = merge(children, shape_of(node))
        aggregate = type(node) in AGGREGATES or any(c.aggregate for c in children)
        return Info(merged.lineage, family_of(node, children), aggregate)
