"""Make a query's result independent of how many threads compute it, or say why it cannot be.

DuckDB splits an aggregate across threads and combines the per-thread partial states in whichever order
the threads finish. For COUNT, MIN, MAX and the SUM of integers or decimals the order does not matter;
for the SUM or AVG of a DOUBLE it does, because floating-point addition is not associative (a 2-million-
row grouped SUM gave 17 different results in 20 runs on 2 threads). Replay must reproduce the released
bytes, so :func:`plan_threads` rewrites every SUM and AVG over a float into an *exact* sum: each value is
written as integers summed as HUGEINTs (integer addition is associative: any order, any thread count,
any split into parts gives the same totals) and the totals are combined once into a DOUBLE. The SQL
forms are pure and shared with the split planner (``policies.exact_sums``):

* two limbs, ``x = ROUND(x) + r * 2**-87`` (``r`` whole), exact for every value with
  ``2**-35 <= |x| < 2**87`` (about 2.9e-11 to 1.5e26) and for zero;
* one limb, ``x * 2**s``, where the engine's statistics of the summed column (its largest and smallest
  nonzero magnitudes, and the row count) show that every value is whole at that scale and no sum can
  overflow (``scale_of``; ``policies.exact_sums.scale_for``). No per-value check and half the work; a
  sum that overflows all the same (a join can add more rows than the tables hold) runs as planned
  without ``scale_of``, in two limbs (:attr:`Parallel.one_limb`). Both combine through the same
  normalised pair: the same bits.

A value outside the two limbs' range (a NaN, an infinity, a smaller or larger magnitude) stops the
query, with :data:`OUT_OF_RANGE` in the engine's message or a conversion error, and the engine runs the
query as written on one thread instead: exact or plain, the outcome is a function of the data alone.
Measured on the 4-million-row benchmark aggregate (``bench_executor.py --float-sums 31``, engine
alone, 2 threads on a loaded shared machine, three runs, ratios of medians to plain multi-thread
sums): two limbs 1.26x, 1.12x and 1.10x; as run with one limb 1.07x, 0.92x and 1.02x, each within
plain's interquartile range. After the smaller combination below (``--float-sums`` 11 and 15, five
pairs of processes alternating with the form before it, each ratio against plain in its own process,
on a machine loaded 4 to 7 on 2 cores): as run, CPU 1.002x, 0.985x, 1.056x, 1.011x and 1.048x (before:
1.022x, 1.091x, 1.123x, 1.074x, 1.108x), wall 1.037x, 1.009x, 1.113x, 1.088x, 1.023x (before: 1.193x,
1.117x, 1.095x, 1.083x, 1.171x); medians 1.011x CPU and 1.037x wall against 1.091x and 1.117x. Three
BIGINT limbs, the first form, cost nearly twice a plain AVG.
What one limb costs over plain, in CPU time on the same aggregate: planning it and reading the
column's range, 5.4 ms (8.9 ms while the two-limb form was planned every time and the column read in
two passes); summing, about 18 ms per 4 million values on one thread (measured alone, grouped: the
conversion from DOUBLE to HUGEINT about 9, the HUGEINT additions about 7, the multiplication about 1).
Two BIGINT limbs split exactly in DOUBLE arithmetic (``(y + c) - c``, or ``floor`` of the value
times ``2**-32`` and the rest: 17.6 ms against 18.2) or a DECIMAL(38, 0) limb (31 ms) cost as much or
more. The engine binds every copy of a sum in the combination, and binds the query twice (once for
its columns, once to run it): since the one-limb combination names its total five times instead of
eight, the powers of two are literals rather than casts and the casts are built without parsing
their type names, a query pays about 2 ms less before it reads a row (the exact form's cost over plain
on a 1,000-row table, everything but the per-value work: 6.6 to 7.7 ms before, 4.9 ms after, three
alternating runs of 400; planning alone 0.93 -> 0.51 ms). A macro for the combination bound a query
0.9 ms faster but cost more to define on each connection.

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

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from policies.exact_sums import (
    LOW,
    LOW_BITS,
    OUT_OF_RANGE,
    as_double,
    combine,
    combine_scaled,
    kind,
    kind_of_type,
    limbs,
    scaled_limb,
    unshadowed,
)

__all__ = [
    "FLOAT_SUMS",
    "LOW",
    "LOW_BITS",
    "OUT_OF_RANGE",
    "OneThread",
    "Parallel",
    "ScaleOf",
    "plan_threads",
]

#: A summed float column's one-limb scale (``policies.exact_sums.scale_for`` of its data), or None.
ScaleOf = Callable[[str], "int | None"]

DIALECT = "duckdb"
FLOAT_SUMS = "exact-2x87"  # recorded with a result's engine versions; change it when the method changes

_ORDER_FREE = (exp.Count, exp.Min, exp.Max, exp.Sum, exp.Avg)
# Scalar functions sqlglot does not model (parsed as Anonymous) that are known to be row by row.
_KNOWN_SCALARS = frozenset({"sbx_keyed_hash", "hash", "error"})


@dataclass(frozen=True)
class Parallel:
    """Run ``sql`` (the rewritten query) on the job's threads; it gives the same bytes on any number.
    ``one_limb``: ``sql`` sums a column in one limb; where such a sum overflows (a join added rows),
    run the query as planned without ``scale_of`` (two limbs): both give the same bits where both
    finish. Planned only then: rewriting and writing out a second form costs a plan about as much
    again, and one limb almost always finishes.
    ``renames``: an unnamed output column holds a rewritten sum, which the engine would name after the
    rewritten text: the result takes the names of the query as written."""

    sql: str
    one_limb: bool = False
    renames: bool = False


@dataclass(frozen=True)
class OneThread:
    """Run the query as written on one thread; ``reason`` says why (for logs and timings)."""

    reason: str


class _Refuse(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def plan_threads(
    sql: str, schemas: Mapping[str, pa.Schema], *, scale_of: ScaleOf | None = None
) -> Parallel | OneThread:
    """How to run ``sql`` over tables with ``schemas`` (SQL name -> Arrow schema) so that the result
    does not depend on the thread count. ``scale_of`` (asked only for float columns summed as they are)
    allows one limb instead of two.

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
    renames = isinstance(tree, exp.Select) and any(
        not isinstance(p, exp.Alias) and p.find(exp.Sum, exp.Avg) is not None for p in tree.expressions
    )
    try:
        _check_order_free(tree)
        one_limb = _rewrite_float_sums(tree, schemas, scale_of)
        _fix_top_limit(tree)
    except _Refuse as refusal:
        return OneThread(refusal.reason)
    return Parallel(tree.sql(dialect=DIALECT), one_limb=one_limb, renames=renames)


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


def _rewrite_float_sums(tree: exp.Expr, schemas: Mapping[str, pa.Schema], scale_of: ScaleOf | None) -> bool:
    """Replace SUM and AVG of a float in ``tree`` with their exact forms: one limb where ``scale_of``
    gives the summed column's scale, two limbs otherwise. True where some sum has one limb."""
    targets: list[exp.Sum | exp.Avg] = [
        n for n in tree.find_all(exp.Sum, exp.Avg) if isinstance(n, exp.Sum | exp.Avg)
    ]
    if not targets:
        return False
    columns: dict[str, set[str]] = {}
    for schema in schemas.values():
        for field in schema:
            columns.setdefault(field.name.lower(), set()).add(kind_of_type(str(field.type)))
    floats: list[exp.Sum | exp.Avg] = []
    for node in targets:
        found = kind(node.this, unshadowed(columns, tree, node))
        if found is None:
            raise _Refuse(f"the type of {node.sql(dialect=DIALECT)} is not known")
        if found == "exact":
            continue  # integers and decimals: DuckDB sums them exactly already
        if isinstance(node.this, exp.Distinct):
            raise _Refuse("SUM or AVG of DISTINCT floats adds them in hash-table order")
        floats.append(node)
    # One limb where the summed value is a column whose largest magnitude and the row count allow it:
    # half the work per value.
    scales = [_scale(node, scale_of, columns) for node in floats]
    for node, scale in zip(floats, scales, strict=True):
        _replace_with_exact(node, scale)
    return any(scale is not None for scale in scales)


def _scale(node: exp.Sum | exp.Avg, scale_of: ScaleOf | None, columns: Mapping[str, set[str]]) -> int | None:
    argument = node.this
    if scale_of is None or not isinstance(argument, exp.Column):
        return None
    if kind(argument, columns) != "float":
        return None
    return scale_of(argument.name.lower())


def _replace_with_exact(node: exp.Sum | exp.Avg, scale: int | None) -> None:
    """``SUM(x)`` -> the exact sum of ``x`` (one limb at ``2**scale``, or two limbs where ``scale`` is
    None); ``AVG(x)`` -> that sum / ``COUNT(x)``; a FILTER stays on every aggregate it applied to."""
    holder: exp.Expr = node
    where: exp.Expr | None = None
    if isinstance(node.parent, exp.Filter):
        holder = node.parent
        where = node.parent.expression

    def aggregate(agg: exp.Expr) -> exp.Expr:
        return exp.Filter(this=agg, expression=where.copy()) if where is not None else agg

    value = as_double(node.this)
    if scale is None:
        whole, low = (aggregate(exp.Sum(this=limb)) for limb in limbs(value, strict=True))
        result: exp.Expr = exp.Paren(this=combine(whole, low))
    else:
        result = exp.Paren(this=combine_scaled(aggregate(exp.Sum(this=scaled_limb(value, scale))), scale))
    if isinstance(node, exp.Avg):
        count = aggregate(exp.Count(this=node.this.copy()))
        result = exp.Paren(this=exp.Div(this=result, expression=count, typed=False, safe=False))
    holder.replace(result)


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
