"""Turn every runtime error that rows could trigger into NULL, so failing is never an answer.

A query that raises only when some row matches (``CASE WHEN <one person has D> THEN CAST('x' AS
INTEGER) …``, an overflow, a division by zero) answers a membership question through the job's state
alone, whatever the error message says. DuckDB's ``TRY(expr)`` returns NULL instead of raising, so this
pass wraps every row-level expression that could raise:

* every WHERE, JOIN ON and FILTER (WHERE …) condition (split at AND; a conjunct that cannot raise,
  such as ``a.unit = b.unit`` or ``column = 'literal'`` of the column's type, stays bare so that DuckDB
  still plans hash joins and pushes filters into scans);
* every GROUP BY key, with the same wrapped expression wherever the key is repeated in the select
  list, HAVING or ORDER BY (DuckDB matches keys structurally);
* every aggregate's argument and every select-list expression of a row-level SELECT.

``TRY`` cannot hold an aggregate or a subquery, so the expressions *above* aggregates (post-aggregate
arithmetic in the select list, HAVING and ORDER BY) are made error-free instead: their arithmetic
operands computed from aggregates are cast to DOUBLE (which saturates to infinity instead of
overflowing) and divisors become ``NULLIF(…, 0)``. The aggregates themselves do not raise: integer SUM
is computed in HUGEINT, the others in DOUBLE. Whatever else could still raise above an aggregate
(casts to narrow types) is refused by the ``error_containment`` check.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.markers import FAMILY_META, GENERATED_META, TRANSPARENT_META
from policies.analysis.scopes import walk_same_query
from policies.analysis.syntax import AGGREGATES
from policies.context import PolicyContext
from policies.passes._build import cast

_COMPARISONS = (
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.NullSafeEQ,
    exp.NullSafeNEQ,
    exp.Is,
)
_NESTED_QUERY = (exp.Query, exp.Subquery)
_ATOMS = (exp.Column, exp.Literal, exp.Null, exp.Boolean)
_ATOMS_OR_STAR = (*_ATOMS, exp.Star)
_NOT_CONTAINED = (*_NESTED_QUERY, exp.DataType, exp.Var)
_GUARDED = (exp.Add, exp.Sub, exp.Mul, exp.Neg, exp.Abs, exp.Div, exp.IntDiv, exp.Mod)
_DIVISIONS = (exp.Div, exp.IntDiv, exp.Mod)
_UNARY = (exp.Paren, exp.Not)
_CONNECTORS = (exp.And, exp.Or)
_GROUPINGS = (exp.Rollup, exp.Cube, exp.GroupingSets, exp.Tuple)
_TYPES = (exp.DataType, exp.Var)


def contain_errors(tree: exp.Expr, analysis: Analysis, ctx: PolicyContext) -> exp.Expr:
    """Wrap what could raise in ``TRY(…)``; make post-aggregate arithmetic error-free.

    >>> from policies.examples import example_context
    >>> ctx, tree, analysis = example_context(
    ...     "SELECT year(birth_date) AS y, COUNT(*) AS n FROM citizens WHERE income / 2 > 10 GROUP BY y")
    >>> print(contain_errors(tree, analysis, ctx).sql(dialect="duckdb"))  # doctest: +NORMALIZE_WHITESPACE
    SELECT TRY(YEAR("citizens"."birth_date")) AS "y", COUNT(*) AS "n" FROM "citizens" AS "citizens"
    WHERE TRY("citizens"."income" / 2 > 10) GROUP BY TRY(YEAR("citizens"."birth_date"))
    """
    _Containment(analysis).run(tree)
    return tree


class _Containment:
    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis

    def run(self, tree: exp.Expr) -> None:
        for select in list(tree.find_all(exp.Select)):
            self.select(select)

    def select(self, select: exp.Select) -> None:
        where = select.args.get("where")
        if where is not None:
            where.set("this", self.condition(where.this))
        for join in select.args.get("joins") or ():
            if join.args.get("on") is not None:
                join.set("on", self.condition(join.args["on"]))
        if _aggregating(select):
            self.aggregating(select)
            return
        for projection in list(select.expressions):
            inner = projection.unalias()
            if isinstance(inner, exp.Star) or _generated_window(projection):
                continue
            self._swap(projection, inner, self.contain)

    def aggregating(self, select: exp.Select) -> None:
        keys: list[tuple[exp.Expr, exp.Expr]] = []
        group = select.args.get("group")
        if group is not None:
            for key in _group_keys(group):
                if _trivial(key, self.analysis):
                    continue
                # ``key`` moves into its wrapper and stays the original to compare uses with.
                wrapped = _substitute(key, self.contain)
                if wrapped is not key:
                    keys.append((key, wrapped))
        for projection in list(select.expressions):
            inner = projection.unalias()
            self._swap(projection, inner, lambda node: self.post(node, keys))
        having = select.args.get("having")
        if having is not None:
            having.set("this", self.post(having.this, keys))
        order = select.args.get("order")
        if order is not None:
            for ordered in order.expressions:
                ordered.set("this", self.post(ordered.this, keys))

    # -- row level ------------------------------------------------------------------------------

    def condition(self, node: exp.Expr) -> exp.Expr:
        """A WHERE/ON/FILTER condition: each AND conjunct contained on its own."""
        if isinstance(node, exp.And):
            return exp.And(this=self.condition(node.this), expression=self.condition(node.expression))
        return self.contain(node)

    def contain(self, node: exp.Expr) -> exp.Expr:
        """``node`` itself when it cannot raise, else ``TRY(node)`` (or its parts, around subqueries,
        which TRY cannot hold)."""
        if _trivial(node, self.analysis) or isinstance(node, exp.Try):
            return node
        if node.find(*_NESTED_QUERY) is not None:
            for child in list(node.iter_expressions()):
                if not isinstance(child, _NOT_CONTAINED):
                    _substitute(child, self.contain)
            return node
        return _try(node)

    # -- above aggregates -----------------------------------------------------------------------

    def post(self, node: exp.Expr, keys: list[tuple[exp.Expr, exp.Expr]]) -> exp.Expr:
        """An expression of an aggregating SELECT (select list, HAVING, ORDER BY)."""
        for original, wrapped in keys:
            if node == original:
                return wrapped.copy()
        if _trivial(node, self.analysis) or isinstance(node, exp.Try):
            return node
        if isinstance(node, exp.Filter):
            self.aggregate(node.this)
            condition = node.expression
            condition.set("this", self.condition(condition.this))
            return node
        if type(node) in AGGREGATES:
            self.aggregate(node)
            return node
        if isinstance(node, exp.Window):
            # Only over aggregates (SUM(COUNT(*)) OVER …): what it combines is above aggregates too.
            parts = [node.this.this, *(node.args.get("partition_by") or [])]
            if (order := node.args.get("order")) is not None:
                parts.extend(o.this for o in order.expressions)
            for part in parts:
                _substitute(part, lambda c: self.post(c, keys))
            return node
        if not _has_aggregate(node):
            _keys_within(node, keys)
            return self.contain(node)
        for child in list(node.iter_expressions()):
            if not isinstance(child, _TYPES):
                _substitute(child, lambda c: self.post(c, keys))
        if isinstance(node, _GUARDED):
            _guard(node)
        return node

    def aggregate(self, func: exp.Expr) -> None:
        for arg in list(func.iter_expressions()):
            if isinstance(arg, exp.Distinct):
                for value in list(arg.expressions):
                    if not isinstance(value, _ATOMS):
                        _substitute(value, self.contain)
            elif not isinstance(arg, _ATOMS_OR_STAR):
                _substitute(arg, self.contain)

    @staticmethod
    def _swap(projection: exp.Expr, inner: exp.Expr, fn: Callable[[exp.Expr], exp.Expr]) -> None:
        if isinstance(inner, _ATOMS_OR_STAR):
            return  # the common case, decided without moving nodes around
        if projection is inner:
            # Keep the output name: a bare expression would otherwise be renamed by the wrapper.
            name = projection.alias_or_name
            replaced = _substitute(inner, fn)
            if replaced is not inner:
                replaced.replace(exp.Alias(this=replaced.copy(), alias=exp.to_identifier(name)))
        else:
            _substitute(inner, fn)


def _keys_within(node: exp.Expr, keys: list[tuple[exp.Expr, exp.Expr]]) -> None:
    """Replace every part of ``node`` that is a wrapped GROUP BY key by the wrapped key."""
    for child in list(node.iter_expressions()):
        match = next((wrapped for original, wrapped in keys if child == original), None)
        if match is not None:
            child.replace(match.copy())
        else:
            _keys_within(child, keys)


def _substitute(node: exp.Expr, fn: Callable[[exp.Expr], exp.Expr]) -> exp.Expr:
    """Put ``fn(node)`` where ``node`` is (``fn`` may wrap ``node``, which moves it)."""
    hole = exp.Null()
    node.replace(hole)
    replaced = fn(node)
    hole.replace(replaced)
    return replaced


def _generated_window(projection: exp.Expr) -> bool:
    """The engine's own window projection (``bound_groups_per_unit``'s first-row flag: a row number
    compared with 1 and a NULL test, which cannot raise); TRY cannot hold a window."""
    return bool(projection.meta_get(GENERATED_META)) and projection.find(exp.Window) is not None


def _try(node: exp.Expr) -> exp.Expr:
    wrapper = exp.Try(this=node)
    # Judged as what it holds (a TRY changes no lineage), and known to be the engine's own.
    wrapper.meta[TRANSPARENT_META] = True
    wrapper.meta[GENERATED_META] = True
    return wrapper


def _guard(node: exp.Expr) -> None:
    """Post-aggregate arithmetic in DOUBLE, divisors never zero."""
    operands = list(node.iter_expressions())
    for operand in operands:
        if _has_aggregate(operand) and not _is_double(operand):
            guard = cast(operand.copy(), "DOUBLE")
            guard.meta[TRANSPARENT_META] = True
            guard.meta[GENERATED_META] = True
            guard.meta[FAMILY_META] = "num"
            operand.replace(guard)
    if isinstance(node, _DIVISIONS):
        divisor = node.expression
        if not (isinstance(divisor, exp.Literal) and not divisor.is_string):
            if not _is_double(divisor):
                divisor = divisor.replace(cast(divisor.copy(), "DOUBLE"))
                divisor.meta[TRANSPARENT_META] = True
                divisor.meta[GENERATED_META] = True
                divisor.meta[FAMILY_META] = "num"
            nonzero = exp.Nullif(this=divisor.copy(), expression=exp.Literal.number(0))
            nonzero.meta[GENERATED_META] = True
            divisor.replace(nonzero)


def _is_double(node: exp.Expr) -> bool:
    return isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.DOUBLE


def _has_aggregate(node: exp.Expr) -> bool:
    return any(type(n) in AGGREGATES for n in walk_same_query(node))


def _aggregating(select: exp.Select) -> bool:
    parts = [*select.expressions, select.args.get("having")]
    return select.args.get("group") is not None or any(_has_aggregate(p) for p in parts if p is not None)


def _group_keys(group: exp.Group) -> list[exp.Expr]:
    out: list[exp.Expr] = []
    stack = list(group.iter_expressions())
    while stack:
        node = stack.pop(0)
        if isinstance(node, _GROUPINGS):
            stack.extend(node.iter_expressions())
        else:
            out.append(node)
    return out


def _trivial(node: exp.Expr, analysis: Analysis) -> bool:
    """Whether ``node`` certainly cannot raise: names, literals, and comparisons between names and
    literals of the same type family (combined with AND/OR/NOT)."""
    if isinstance(node, _ATOMS_OR_STAR):
        return True
    if node.meta_get(GENERATED_META) and isinstance(node, exp.GTE) and _output_alias(node.this):
        return True  # the k rule: a hidden unit count (an output alias) against an integer
    if node.meta_get(GENERATED_META) and isinstance(node, exp.NullSafeEQ):
        # The DP sample's match of a unit to the same table's heavy units (policies.dp.passes._sample):
        # one column against itself, which cannot raise; bare, DuckDB plans it as a hash semi-join.
        return isinstance(node.this, exp.Column) and isinstance(node.expression, exp.Column)
    if isinstance(node, _UNARY):
        return _trivial(node.this, analysis)
    if isinstance(node, _CONNECTORS):
        return _trivial(node.this, analysis) and _trivial(node.expression, analysis)
    if isinstance(node, _COMPARISONS):
        return _comparable(node.this, node.expression, analysis)
    if isinstance(node, exp.In):
        if node.args.get("query") is not None:
            # A semi-join on a column: the subquery is contained by its own SELECT.
            return isinstance(node.this, exp.Column)
        return all(_comparable(node.this, value, analysis) for value in node.expressions)
    return False


def _output_alias(node: exp.Expr) -> bool:
    return isinstance(node, exp.Column) and not node.table


def _comparable(left: exp.Expr, right: exp.Expr, analysis: Analysis) -> bool:
    if not isinstance(left, _ATOMS) or not isinstance(right, _ATOMS):
        return False
    families = {
        _family(side, analysis) for side in (left, right) if not isinstance(side, exp.Null | exp.Boolean)
    }
    return len(families) <= 1 and None not in families


def _family(node: exp.Expr, analysis: Analysis) -> str | None:
    if isinstance(node, exp.Literal):
        return "str" if node.is_string else "num"
    if isinstance(node, exp.Column) and node.table:
        family = analysis.info(node).family
        return family if family in ("str", "num", "bool") else None
    return None
