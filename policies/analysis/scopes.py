"""SELECT scopes and their sources: what a table alias in a query refers to.

Every SELECT of a query becomes a ``SelectScope`` whose sources are catalog tables (``Base``), CTEs or
subqueries (``Derived``) or something else (``Opaque``, refused by ``only_known_tables``). The walks
here stay within one query: they never descend into a nested one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from policies.analysis.syntax import AGGREGATES
from policies.context import TablePolicy


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


def _has_aggregate(node: exp.Expr) -> bool:
    return any(type(n) in AGGREGATES for n in walk_same_query(node))


NESTED_QUERY = (exp.Query, exp.Subquery)  # tuples: ``isinstance(x, A | B)`` builds a union per call


def walk_same_query(node: exp.Expr) -> list[exp.Expr]:
    """``node`` and its descendants, not descending into nested queries."""
    out: list[exp.Expr] = []
    stack = [node]
    push, pop, add = stack.append, stack.pop, out.append
    while stack:
        current = pop()
        add(current)
        for child in current.iter_expressions():
            if not isinstance(child, NESTED_QUERY):
                push(child)
    return out


def aggregate_holders(aggregates: list[exp.Expr]) -> set[int]:
    """Ids of the aggregates with another aggregate below them in the same query: from every
    aggregate up to the first query boundary (the nodes ``walk_same_query`` does not enter)."""
    holders: set[int] = set()
    for node in aggregates:
        current = node
        parent = current.parent
        while parent is not None:
            if type(parent) in AGGREGATES:
                holders.add(id(parent))
            if isinstance(current, NESTED_QUERY):
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
