"""Make a query's result independent of how many threads compute it, or say why it cannot be.

DuckDB splits an aggregate across threads and combines the per-thread partial states in whichever order
the threads finish. For COUNT, MIN, MAX and the SUM of integers or decimals the order does not matter;
for the SUM or AVG of a DOUBLE it does, because floating-point addition is not associative (a 2-million-
row grouped SUM gave 17 different results in 20 runs on 2 threads). Replay must reproduce the released
bytes, so :func:`plan_threads` rewrites every SUM and AVG over a float into an *exact* sum: each value is
split into two integer limbs,

    x = ROUND(x) + r * 2**-87        (r an integer, |r| <= 2**86)

the limbs are summed as HUGEINTs (integer addition is associative: any order, any thread count, any
split into parts gives the same two totals) and the totals are combined once into a DOUBLE. The split
is exact for every value with ``2**LOW <= |x| < 2**87`` (about 2.9e-11 to 1.5e26; a double has 53
significant bits, so the low limb's unit is below the last bit of such a value) and for zero. A value
outside that range (a NaN, an infinity, a smaller or larger magnitude) stops the query, with
:data:`OUT_OF_RANGE` in the engine's message or a conversion error, and the engine runs the query as
written on one thread instead: exact or plain, the outcome is a function of the data alone. Measured
on the small benchmark query (200,000 rows, one AVG) the exact form costs about a quarter more engine
time than a plain AVG on the same threads; three BIGINT limbs cost nearly twice as much.

The rewrite is allowed only where every other part of the query is order-independent too; otherwise
:func:`plan_threads` returns a :class:`OneThread` with the reason, and the engine runs the query as
written on one thread (what every query did before). Order-dependent, and so on one thread: any aggregate
other than COUNT, MIN, MAX, SUM and AVG (STDDEV and the like combine float states; ARRAY_AGG and
STRING_AGG keep arrival order), DISTINCT inside SUM or AVG of a float, window functions, sampling, a
LIMIT or OFFSET below the top level, a top-level LIMIT under an ORDER BY that may tie, a function this
module does not know. A top-level LIMIT without ORDER BY (the row cap every job gets) is made to pick
the same rows every run by ``ORDER BY ALL``. Row order otherwise is not part of a release (replay
compares rows as a multiset).

Argument types come from a small reading of each argument over the registered tables' Arrow schemas
(columns, casts, literals, arithmetic, CASE; anything else, or a name the query itself aliases, counts
as unknown and the query runs on one thread); sqlglot's full type annotation costs a small job tens of
milliseconds. The module is pure: one parse, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

DIALECT = "duckdb"
OUT_OF_RANGE = "sbx-exact-sum-out-of-range"
FLOAT_SUMS = "exact-3x62"  # recorded with a result's engine versions; change it when the method changes

LOW_BITS = 87  # the low limb's unit is 2**-87; a HUGEINT holds 2**40 rows of limbs below 2**87
LOW = 52 - LOW_BITS  # |x| >= 2**-35 (about 2.9e-11): its last bit is a whole low unit

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


def _rewrite_float_sums(tree: exp.Expr, schemas: Mapping[str, pa.Schema]) -> None:
    """Replace SUM and AVG of a float in ``tree`` with their exact forms."""
    targets: list[exp.Sum | exp.Avg] = [
        n for n in tree.find_all(exp.Sum, exp.Avg) if isinstance(n, exp.Sum | exp.Avg)
    ]
    if not targets:
        return
    columns: dict[str, set[str]] = {}
    for schema in schemas.values():
        for field in schema:
            columns.setdefault(field.name.lower(), set()).add(_kind_of_arrow(field.type))
    for node in targets:
        kind = _kind(node.this, _unshadowed(columns, tree, node))
        if kind is None:
            raise _Refuse(f"the type of {node.sql(dialect=DIALECT)} is not known")
        if kind == "exact":
            continue  # integers and decimals: DuckDB sums them exactly already
        if isinstance(node.this, exp.Distinct):
            raise _Refuse("SUM or AVG of DISTINCT floats adds them in hash-table order")
        _replace_with_exact(node)


def _unshadowed(columns: dict[str, set[str]], tree: exp.Expr, node: exp.Expr) -> dict[str, set[str]]:
    """``columns`` less the names a derived table or CTE defines anew (``cost * 2 AS cost``): an outer
    aggregate reading such a name reads the new expression, whose type the tables do not tell. An alias
    in the aggregate's own SELECT does not hide a column (DuckDB binds a column of that name first), and
    neither does one that passes a column on under its own name."""
    own = node.find_ancestor(exp.Select)
    visible = dict(columns)
    for alias in tree.find_all(exp.Alias):
        if alias.find_ancestor(exp.Select) is own:
            continue
        target = alias.this
        if isinstance(target, exp.Column) and target.name.lower() == alias.alias.lower():
            continue
        visible.pop(alias.alias.lower(), None)
    return visible


def _kind_of_arrow(arrow: pa.DataType) -> str:
    if pa.types.is_floating(arrow):
        return "float"
    if pa.types.is_integer(arrow) or pa.types.is_decimal(arrow) or pa.types.is_boolean(arrow):
        return "exact"
    return "other"


def _kind(node: exp.Expr, columns: Mapping[str, set[str]]) -> str | None:
    """How DuckDB computes ``node``: "float" (FLOAT or DOUBLE), "exact" (integers, decimals), or None
    where this small reading of the expression cannot tell (the query then runs on one thread)."""
    kinds: set[str | None]
    if isinstance(node, exp.Try | exp.Paren | exp.Neg | exp.Abs | exp.Round | exp.Floor | exp.Ceil):
        return _kind(node.this, columns)
    if isinstance(node, exp.Column):
        found = columns.get(node.name.lower(), set())
        return next(iter(found)) if len(found) == 1 and found <= {"float", "exact"} else None
    if isinstance(node, exp.Cast):
        if node.to.this in _FLOATS:
            return "float"
        return "exact" if node.to.this in exp.DataType.INTEGER_TYPES | {exp.DType.DECIMAL} else None
    if isinstance(node, exp.Literal):
        return "exact" if node.is_number and "e" not in node.name.lower() else None
    if isinstance(node, exp.Div):
        kinds = {_kind(node.this, columns), _kind(node.expression, columns)}
        return "float" if None not in kinds else None  # DuckDB's / divides in DOUBLE
    if isinstance(node, exp.Add | exp.Sub | exp.Mul):
        kinds = {_kind(node.this, columns), _kind(node.expression, columns)}
        if None in kinds:
            return None
        return "float" if "float" in kinds else "exact"
    if isinstance(node, exp.Case):
        branches = [i.args["true"] for i in node.args.get("ifs") or ()]
        branches += [node.args["default"]] if node.args.get("default") is not None else []
        kinds = {_kind(b, columns) for b in branches if not isinstance(b, exp.Null)}
        if None in kinds or not kinds:
            return None
        return "float" if "float" in kinds else "exact"
    return None


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

    value = exp.Cast(this=node.this.copy(), to=exp.DataType.build("DOUBLE"))
    whole = exp.Round(this=value.copy())
    low = exp.Paren(
        this=exp.Mul(
            this=exp.Paren(this=exp.Sub(this=value.copy(), expression=whole.copy())),
            expression=_power(LOW_BITS),
        )
    )
    # The low limb must come out whole: else the value had bits below 2**-87 and the sum would not be
    # exact; the query stops and runs as written on one thread.
    exact_low = exp.Case(
        ifs=[exp.If(this=exp.EQ(this=exp.Round(this=low.copy()), expression=low.copy()), true=low.copy())],
        default=exp.Anonymous(this="error", expressions=[exp.Literal.string(OUT_OF_RANGE)]),
    )
    sums = [
        aggregate(exp.Sum(this=exp.Cast(this=limb, to=exp.DataType.build("HUGEINT"))))
        for limb in (whole, exact_low)
    ]
    result: exp.Expr = exp.Paren(this=_combine(sums[0], sums[1]))
    if isinstance(node, exp.Avg):
        count = aggregate(exp.Count(this=node.this.copy()))
        result = exp.Paren(this=exp.Div(this=result, expression=count, typed=False, safe=False))
    holder.replace(result)


def _combine(whole: exp.Expr, low: exp.Expr) -> exp.Expr:
    """The DOUBLE nearest (within about one unit in the last place) ``whole + low * 2**-87``.

    Both sums are HUGEINTs of either sign; carrying the low sum's excess into the whole one (an
    arithmetic shift, so a floor, and a mask) leaves the low part in [0, 2**87), so the two terms added
    in DOUBLE no longer cancel each other. A function of the two sums alone: any order of the rows
    gives the same bits.
    """
    bits = exp.Literal.number(LOW_BITS)
    carried = exp.Add(this=whole, expression=exp.Paren(this=exp.BitwiseRightShift(this=low, expression=bits)))
    remainder = exp.BitwiseAnd(this=low.copy(), expression=exp.Literal.number(2**LOW_BITS - 1))
    return exp.Add(
        this=exp.Cast(this=carried, to=exp.DataType.build("DOUBLE")),
        expression=exp.Mul(
            this=exp.Cast(this=exp.Paren(this=remainder), to=exp.DataType.build("DOUBLE")),
            expression=_power(-LOW_BITS),
        ),
    )


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
