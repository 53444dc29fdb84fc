"""Make a query's result independent of how many threads compute it, or say why it cannot be.

DuckDB splits an aggregate across threads and combines the per-thread partial states in whichever order
the threads finish. For COUNT, MIN, MAX and the SUM of integers or decimals the order does not matter;
for the SUM or AVG of a DOUBLE it does, because floating-point addition is not associative (a 2-million-
row grouped SUM gave 17 different results in 20 runs on 2 threads). Replay must reproduce the released
bytes, so :func:`plan_threads` rewrites every SUM and AVG over a float into an *exact* sum: each value is
split into three integer limbs at fixed binary scales,

    x = r0 * 2**A + r1 * 2**(A - 62) + r2 * 2**(A - 124)        (r0, r1, r2 integers, |ri| <= 2**62)

the limbs are summed as integers (associative: any order, any thread count, any split into parts gives
the same three totals) and the totals are combined once, in a fixed order, into a DOUBLE. The split is
exact for zero and for every value with ``2**LOW <= |x| < 2**HIGH`` (a double has 53 significant bits,
so the lowest limb's unit is below the last bit of such a value). A value outside that range (a NaN, an
infinity, a magnitude below about 1e-10 or above about 5e30) stops the query with :data:`OUT_OF_RANGE`
in the engine's message, and the engine runs the query as written on one thread instead: exact or
plain, the outcome is a function of the data alone.

The rewrite is allowed only where every other part of the query is order-independent too; otherwise
:func:`plan_threads` returns a :class:`OneThread` with the reason, and the engine runs the query as
written on one thread (what every query did before). Order-dependent, and so on one thread: any aggregate
other than COUNT, MIN, MAX, SUM and AVG (STDDEV and the like combine float states; ARRAY_AGG and
STRING_AGG keep arrival order), DISTINCT inside SUM or AVG of a float, window functions, sampling, a
LIMIT or OFFSET below the top level, a top-level LIMIT under an ORDER BY that may tie, a function this
module does not know. A top-level LIMIT without ORDER BY (the row cap every job gets) is made to pick
the same rows every run by ``ORDER BY ALL``. Row order otherwise is not part of a release (replay
compares rows as a multiset).

Argument types come from sqlglot's type annotation over the registered tables' Arrow schemas; the
engine also checks that the rewritten query binds to the same output types as the original and falls
back to one thread when not. The module is pure: one parse, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

DIALECT = "duckdb"
OUT_OF_RANGE = "sbx-exact-sum-out-of-range"
FLOAT_SUMS = "exact-3x62"  # recorded with a result's engine versions; change it when the method changes

LIMB_BITS = 62  # a limb fits a BIGINT; DuckDB sums BIGINT into a HUGEINT, so 2**64 rows cannot overflow
TOP_SCALE = 40  # the top limb's unit is 2**40
HIGH = TOP_SCALE + LIMB_BITS  # |x| < 2**102 (about 5e30) keeps the top limb within a BIGINT
LOW = TOP_SCALE - 2 * LIMB_BITS + 52  # |x| >= 2**-32 (about 2.3e-10): its last bit is a whole low unit

_ORDER_FREE = (exp.Count, exp.Min, exp.Max, exp.Sum, exp.Avg)
_FLOATS = frozenset({exp.DType.DOUBLE, exp.DType.FLOAT})
# Scalar functions sqlglot does not model (parsed as Anonymous) that are known to be row by row.
_KNOWN_SCALARS = frozenset({"sbx_keyed_hash", "hash", "error"})


@dataclass(frozen=True)
class Parallel:
    """Run ``sql`` (the rewritten query) on the job's threads; it gives the same bytes on any number."""

    sql: str


@dataclass(frozen=True)
class OneThread:
    """Run the query as written on one thread; ``reason`` says why (for logs and timings)."""

    reason: str


class _Refuse(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def plan_threads(sql: str, schemas: Mapping[str, pa.Schema]) -> Parallel | OneThread:
    """How to run ``sql`` over tables with ``schemas`` (SQL name -> Arrow schema) so that the result
    does not depend on the thread count.

    >>> schemas = {"t": pa.schema([("g", pa.string()), ("x", pa.float64()), ("n", pa.int64())])}
    >>> plan = plan_threads("SELECT g, SUM(n) AS s, MAX(x) AS m FROM t GROUP BY g", schemas)
    >>> plan.sql
    'SELECT g, SUM(n) AS s, MAX(x) AS m FROM t GROUP BY g'
    >>> "CAST(ROUND(" in plan_threads("SELECT AVG(x) AS a FROM t", schemas).sql
    True
    >>> plan_threads("SELECT STDDEV_SAMP(x) FROM t", schemas).reason
    'STDDEV_SAMP(…) depends on the order its rows arrive in'
    """
    try:
        tree = sqlglot.parse_one(sql, dialect=DIALECT)
    except SqlglotError:
        return OneThread("the query does not parse")
    try:
        _check_order_free(tree)
        _rewrite_float_sums(tree, schemas)
        _fix_top_limit(tree)
    except _Refuse as refusal:
        return OneThread(refusal.reason)
    return Parallel(tree.sql(dialect=DIALECT))


def _check_order_free(tree: exp.Expr) -> None:
    if not isinstance(tree, exp.Query):
        raise _Refuse("only a query runs on several threads")
    for node in tree.walk():
        if isinstance(node, exp.Window):
            raise _Refuse("window functions depend on the order of tied rows")
        if isinstance(node, exp.TableSample):
            raise _Refuse("sampling is reproducible on one thread only")
        if isinstance(node, exp.Limit | exp.Offset) and node.parent is not tree:
            raise _Refuse("a LIMIT or OFFSET below the top level may keep other rows each run")
        if isinstance(node, exp.AggFunc) and not isinstance(node, _ORDER_FREE):
            raise _Refuse(f"{node.sql_name()}(…) depends on the order its rows arrive in")
        if isinstance(node, exp.Anonymous) and node.name.lower() not in _KNOWN_SCALARS:
            raise _Refuse(f"{node.name}(…) is not known to be independent of row order")


def _column_types(schemas: Mapping[str, pa.Schema]) -> dict[str, object]:
    return {name: {field.name: _sql_type(field.type) for field in schema} for name, schema in schemas.items()}


def _sql_type(arrow: pa.DataType) -> str:
    if pa.types.is_dictionary(arrow):
        return _sql_type(arrow.value_type)
    if pa.types.is_float64(arrow):
        return "DOUBLE"
    if pa.types.is_floating(arrow):
        return "FLOAT"
    if pa.types.is_integer(arrow):
        return "BIGINT"
    if pa.types.is_decimal(arrow):
        return f"DECIMAL({arrow.precision}, {arrow.scale})"
    if pa.types.is_boolean(arrow):
        return "BOOLEAN"
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return "VARCHAR"
    if pa.types.is_date(arrow):
        return "DATE"
    if pa.types.is_timestamp(arrow):
        return "TIMESTAMP"
    return "UNKNOWN"


def _rewrite_float_sums(tree: exp.Expr, schemas: Mapping[str, pa.Schema]) -> None:
    """Replace SUM and AVG of a float in ``tree`` with their exact forms (types read from a copy)."""
    targets = _sums(tree)
    if not targets:
        return
    try:
        typed = qualify(
            tree.copy(),
            schema=_column_types(schemas),
            dialect=DIALECT,
            validate_qualify_columns=False,
            quote_identifiers=False,
        )
        typed = annotate_types(typed, schema=_column_types(schemas), dialect=DIALECT)
    except (SqlglotError, KeyError, ValueError) as exc:
        raise _Refuse(f"the argument types could not be read ({type(exc).__name__})") from None
    typed_targets = _sums(typed)
    if [_shape(n) for n in typed_targets] != [_shape(n) for n in targets]:
        raise _Refuse("the argument types could not be matched to the aggregates")
    for node, typed_node in zip(targets, typed_targets, strict=True):
        kind = _argument_type(typed_node.this)
        if kind is None:
            raise _Refuse(f"the type of {node.sql(dialect=DIALECT)} is not known")
        if kind not in _FLOATS:
            continue  # integers and decimals: DuckDB sums them exactly already
        if isinstance(node.this, exp.Distinct):
            raise _Refuse("SUM or AVG of DISTINCT floats adds them in hash-table order")
        _replace_with_exact(node)


def _sums(tree: exp.Expr) -> list[exp.Sum | exp.Avg]:
    """SUM and AVG nodes in depth-first order (qualifying adds aliases, which shifts a breadth-first
    order but not this one)."""
    return [node for node in tree.walk(bfs=False) if isinstance(node, exp.Sum | exp.Avg)]


def _shape(node: exp.Expr) -> tuple[str, list[str]]:
    return type(node).__name__, [column.name.lower() for column in node.find_all(exp.Column)]


def _argument_type(node: exp.Expr) -> exp.DType | None:
    while isinstance(node, exp.Try | exp.Paren):
        node = node.this
    kind = node.type.this if node.type is not None else None
    return None if kind in (None, exp.DType.UNKNOWN, exp.DType.NULL) else kind


def _replace_with_exact(node: exp.Sum | exp.Avg) -> None:
    """``SUM(x)`` -> the exact sum of ``x``; ``AVG(x)`` -> that sum / ``COUNT(x)``; a FILTER stays on
    every aggregate it applied to."""
    holder: exp.Expr = node
    where: exp.Expr | None = None
    if isinstance(node.parent, exp.Filter):
        holder = node.parent
        where = node.parent.expression

    def aggregate(agg: exp.Expr) -> exp.Expr:
        return exp.Filter(this=agg, expression=where.copy()) if where is not None else agg

    value = _guarded(node.this.copy())
    scaled = exp.Mul(this=value, expression=_power(-TOP_SCALE))
    limbs: list[exp.Expr] = []
    for index in range(3):
        rounded = exp.Round(this=scaled.copy()) if index < 2 else scaled.copy()
        limbs.append(rounded)
        if index < 2:
            scaled = exp.Mul(
                this=exp.Paren(this=exp.Sub(this=scaled, expression=rounded.copy())),
                expression=_power(LIMB_BITS),
            )
    sums = [aggregate(exp.Sum(this=exp.Cast(this=limb, to=exp.DataType.build("BIGINT")))) for limb in limbs]
    total = _combine(sums)
    result: exp.Expr = exp.Paren(this=total)
    if isinstance(node, exp.Avg):
        count = aggregate(exp.Count(this=node.this.copy()))
        result = exp.Paren(this=exp.Div(this=result, expression=count, typed=False, safe=False))
    holder.replace(result)


def _combine(sums: list[exp.Expr]) -> exp.Expr:
    """The DOUBLE nearest (within about one unit in the last place) the exact total of three limb sums.

    The sums are HUGEINTs of either sign; carrying each lower sum's excess into the one above (an
    arithmetic shift, so a floor, and a mask) leaves the two lower ones in [0, 2**62), so the three
    terms added in DOUBLE no longer cancel one another. A function of the three sums alone: any order
    of the rows gives the same bits.
    """
    top, middle, low = sums
    mask = exp.Literal.number(2**LIMB_BITS - 1)
    bits = exp.Literal.number(LIMB_BITS)

    def shift(value: exp.Expr) -> exp.Expr:
        return exp.Paren(this=exp.BitwiseRightShift(this=value, expression=bits.copy()))

    def masked(value: exp.Expr) -> exp.Expr:
        return exp.Paren(this=exp.BitwiseAnd(this=value, expression=mask.copy()))

    carried_middle = exp.Paren(this=exp.Add(this=middle, expression=shift(low.copy())))
    carried_top = exp.Add(this=top, expression=shift(carried_middle.copy()))
    terms = [carried_top, masked(carried_middle), masked(low)]
    total: exp.Expr | None = None
    for index, term in enumerate(terms):
        scaled = exp.Mul(
            this=exp.Cast(this=term, to=exp.DataType.build("DOUBLE")),
            expression=_power(TOP_SCALE - index * LIMB_BITS),
        )
        total = scaled if total is None else exp.Add(this=total, expression=scaled)
    assert total is not None
    return total


def _guarded(value: exp.Expr) -> exp.Expr:
    """``value`` as a DOUBLE where the three limbs hold it exactly; elsewhere a stop with the marker."""
    as_double = exp.Cast(this=value, to=exp.DataType.build("DOUBLE"))
    magnitude = exp.Abs(this=as_double.copy())
    in_range = exp.or_(
        exp.EQ(this=as_double.copy(), expression=exp.Literal.number(0)),
        exp.and_(
            exp.GTE(this=magnitude, expression=_power(LOW)),
            exp.LT(this=magnitude.copy(), expression=_power(HIGH)),
        ),
    )
    stop = exp.Anonymous(this="error", expressions=[exp.Literal.string(OUT_OF_RANGE)])
    return exp.Case(ifs=[exp.If(this=in_range, true=as_double)], default=stop)


def _power(exponent: int) -> exp.Expr:
    """2**exponent as an exact DOUBLE literal (hex floats are not SQL; the decimal form of a power of
    two round-trips exactly)."""
    return exp.Cast(this=exp.Literal.number(repr(2.0**exponent)), to=exp.DataType.build("DOUBLE"))


def _fix_top_limit(tree: exp.Expr) -> None:
    """A top-level LIMIT keeps the same rows each run: without ORDER BY, order by every column."""
    if tree.args.get("limit") is None and tree.args.get("offset") is None:
        return
    order = tree.args.get("order")
    if order is not None:
        raise _Refuse("a LIMIT under ORDER BY keeps whichever tied rows come first")
    if not isinstance(tree, exp.Select):
        raise _Refuse("a LIMIT on a set operation keeps whichever rows come first")
    tree.set("order", exp.Order(expressions=[exp.Ordered(this=exp.Var(this="ALL"))]))
