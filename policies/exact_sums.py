"""The SQL forms of an exact, order-independent sum of floats (pure: sqlglot trees in, trees out).

Floating-point addition is not associative, so a float SUM computed in parts (threads, or the parts of
a split job) depends on how the parts are cut and in which order they combine. An integer sum does not.
Each value is therefore written as integers and the integers are summed as HUGEINTs:

* **two limbs** (any finite value with ``2**-35 <= |x| < 2**87``, and zero):
  ``x = ROUND(x) + r * 2**-87`` with ``r`` whole; :func:`limbs`. A HUGEINT holds ``2**40`` rows of them.
* **one limb** at a scale ``2**s`` (``s <= 87``) chosen from the data's largest and smallest
  magnitudes and its row count so that every value is whole at that scale and the sum cannot overflow;
  :func:`scale_for`, :func:`scaled_limb`. No per-value check and half the work per value. A sum that
  overflows all the same (a join adds more rows than the tables hold) stops the query, and the caller
  runs the two-limb form.

Both totals, however many parts and in whatever order, describe the same exact value ``V``, and
:func:`combine` / :func:`combine_scaled` turn it into a DOUBLE through the same normalised pair
(``floor(V)``, ``(V - floor(V)) * 2**87``): one result bit for bit, one process or any split.

:func:`kind` reads whether an aggregate's argument is a float from the columns' types, shared by the
thread planner (``executors.exact_sums``) and the split planner (``policies.distributed.split``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from sqlglot import exp

DIALECT = "duckdb"
#: Raised inside the engine when a value is outside the exact form's range.
OUT_OF_RANGE = "sbx-exact-sum-out-of-range"
#: The low limb's unit is 2**-87; a HUGEINT holds 2**40 rows of limbs below 2**87.
LOW_BITS = 87
#: |x| >= 2**LOW (about 2.9e-11): its last bit is a whole low unit.
LOW = 52 - LOW_BITS
_HUGEINT_BITS = 127  # magnitude bits of a HUGEINT

# The kind of every numeric column type by its name, in DuckDB's spelling (its names and aliases, as
# ``duckdb_types()`` lists them) or Arrow's (``str(pa.DataType)``): one table for the declared types a
# split job reads and the Arrow schemas one process reads, so both planners class a column alike. The
# kind is what DuckDB's SUM does with it: "float" where SUM adds DOUBLEs (FLOAT, DOUBLE, and UHUGEINT,
# whose SUM is a DOUBLE too), "exact" where it adds integers or decimals exactly. The names that mean
# different widths in the two spellings (``int8``: DuckDB's BIGINT, Arrow's TINYINT) are both exact.
_FLOAT = ("DOUBLE", "FLOAT8", "FLOAT", "FLOAT4", "REAL", "UHUGEINT", "UINT128")
_EXACT = (
    *("TINYINT", "INT1", "SMALLINT", "INT2", "SHORT", "INT16", "INTEGER", "INT", "INT4", "INT32"),
    *("SIGNED", "INTEGRAL", "BIGINT", "INT8", "INT64", "LONG", "OID", "HUGEINT", "INT128"),
    *("UTINYINT", "UINT8", "USMALLINT", "UINT16", "UINTEGER", "UINT32", "UBIGINT", "UINT64"),
    *("DECIMAL", "DEC", "NUMERIC", "DECIMAL32", "DECIMAL64", "DECIMAL128", "DECIMAL256"),
    *("BOOLEAN", "BOOL", "LOGICAL"),
)
_KIND_OF_TYPE = {**dict.fromkeys(_FLOAT, "float"), **dict.fromkeys(_EXACT, "exact")}


def kind_of_type(type_name: str) -> str:
    """ "float", "exact" (integers, decimals, booleans) or "other" for a column type's name, DuckDB's
    or Arrow's: how DuckDB's SUM adds its values (see ``_KIND_OF_TYPE``). "other" for anything else,
    lists and structs included.

    >>> [kind_of_type(t) for t in ("DOUBLE", "DECIMAL(10,2)", "VARCHAR", "uint64", "decimal128(9, 2)")]
    ['float', 'exact', 'other', 'exact', 'exact']
    """
    base = type_name.upper().split("(")[0].strip()
    return _KIND_OF_TYPE.get(base, "other")


def kind(node: exp.Expr, columns: Mapping[str, set[str]]) -> str | None:
    """How DuckDB computes ``node``: "float" (FLOAT or DOUBLE), "exact" (integers, decimals), or None
    where this small reading of the expression cannot tell. ``columns``: column name (lower case) ->
    the kinds of every table column of that name."""
    kinds: set[str | None]
    if isinstance(node, exp.Try | exp.Paren | exp.Neg | exp.Abs | exp.Round | exp.Floor | exp.Ceil):
        return kind(node.this, columns)
    if isinstance(node, exp.Column):
        found = columns.get(node.name.lower(), set())
        return next(iter(found)) if len(found) == 1 and found <= {"float", "exact"} else None
    if isinstance(node, exp.Cast):
        cast_to = kind_of_type(node.to.sql(dialect=DIALECT))
        return cast_to if cast_to != "other" else None
    if isinstance(node, exp.Literal):
        return "exact" if node.is_number and "e" not in node.name.lower() else None
    if isinstance(node, exp.Div):
        kinds = {kind(node.this, columns), kind(node.expression, columns)}
        return "float" if None not in kinds else None  # DuckDB's / divides in DOUBLE
    if isinstance(node, exp.Add | exp.Sub | exp.Mul):
        kinds = {kind(node.this, columns), kind(node.expression, columns)}
        if None in kinds:
            return None
        return "float" if "float" in kinds else "exact"
    if isinstance(node, exp.Case):
        branches = [i.args["true"] for i in node.args.get("ifs") or ()]
        branches += [node.args["default"]] if node.args.get("default") is not None else []
        kinds = {kind(b, columns) for b in branches if not isinstance(b, exp.Null)}
        if None in kinds or not kinds:
            return None
        return "float" if "float" in kinds else "exact"
    return None


def unshadowed(columns: dict[str, set[str]], tree: exp.Expr, node: exp.Expr) -> dict[str, set[str]]:
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


def as_double(argument: exp.Expr) -> exp.Expr:
    return exp.Cast(this=argument.copy(), to=_double_type())


def limbs(value: exp.Expr, *, strict: bool) -> tuple[exp.Expr, exp.Expr]:
    """The two HUGEINT limbs of the DOUBLE ``value``: ``ROUND(value)`` and ``(value - ROUND(value)) *
    2**87``. ``strict``: a value outside the range stops the query with :data:`OUT_OF_RANGE` or a
    conversion error (one process, which then runs the query as written); otherwise both limbs are NULL
    for it (a split job's partials, which count such values and merge plain sums instead)."""
    whole = exp.Round(this=value.copy())
    low = exp.Paren(
        this=exp.Mul(
            this=exp.Paren(this=exp.Sub(this=value.copy(), expression=whole.copy())),
            expression=power(LOW_BITS),
        )
    )
    # The low limb must come out whole: else the value had bits below 2**-87.
    whole_low = exp.EQ(this=exp.Round(this=low.copy()), expression=low.copy())
    if strict:
        exact_low = exp.Case(
            ifs=[exp.If(this=whole_low, true=low.copy())],
            default=exp.Anonymous(this="error", expressions=[exp.Literal.string(OUT_OF_RANGE)]),
        )
        return _hugeint(whole), _hugeint(exact_low)
    # |value| < 2**87: then 2**40 rows cannot overflow the whole limb's sum (a split part must not fail
    # where one process falls back).
    in_range = exp.And(
        this=exp.LT(this=exp.Abs(this=value.copy()), expression=power(LOW_BITS)), expression=whole_low
    )
    return (
        _hugeint(exp.Case(ifs=[exp.If(this=in_range.copy(), true=whole)])),
        _hugeint(exp.Case(ifs=[exp.If(this=in_range.copy(), true=low)])),
    )


def scale_for(largest: float, smallest: float, rows: int) -> int | None:
    """The scale ``s`` of one limb for values whose magnitudes are zero or lie between ``smallest``
    (the smallest nonzero one; infinite where there is none) and ``largest``, summed over at most
    ``rows`` rows: the largest ``s <= 87`` with ``rows * largest * 2**s`` below a HUGEINT's limit, so
    that no sum can overflow, provided every such value is whole at that scale (a double's last bit
    grows with its magnitude, so checking ``smallest`` is enough). None otherwise (a NaN or an
    infinity, a range too wide for one limb). A function of the data alone.

    >>> rows = 4_000_000
    >>> scale_for(1424.27, 0.01, rows), scale_for(1e6, 0.01, rows), scale_for(1e6, 1e-12, rows)
    (87, 84, None)
    >>> scale_for(0.0, math.inf, 0), scale_for(math.inf, 1.0, 1), scale_for(2.0**120, 1.0, 100)
    (87, None, None)
    """
    if not math.isfinite(largest):
        return None
    scale = min(LOW_BITS, _HUGEINT_BITS - 1 - max(rows, 1).bit_length() - math.frexp(largest)[1])
    if scale < 0:
        return None
    if math.isfinite(smallest):
        # 2**(k-1) <= |x| < 2**k: a normal double's last bit is 2**(k-53) (a subnormal's is no bigger).
        last_bit = math.frexp(smallest)[1] - 53
        if last_bit < -scale:
            return None
    return scale


def scaled_limb(value: exp.Expr, scale: int) -> exp.Expr:
    """``value * 2**scale`` as a HUGEINT: exact (multiplying by a power of two, a whole result) for
    the values :func:`scale_for` gave the scale for."""
    return _hugeint(exp.Paren(this=exp.Mul(this=value.copy(), expression=power(scale))))


def combine(whole: exp.Expr, low: exp.Expr) -> exp.Expr:
    """The DOUBLE within about one unit in the last place of ``V = whole + low * 2**-87``.

    Both sums are HUGEINTs of either sign. Carrying the low sum's excess into the whole one (an
    arithmetic shift, so a floor, and a mask) gives the normalised pair ``W = floor(V)`` and ``R`` in
    [0, 2**87): a function of ``V`` alone, so any order of the rows and any split into parts gives the
    same bits. The two terms are then added with the same sign, so they cannot cancel: ``W + R *
    2**-87`` where ``W >= 0``, and ``(W + 1) - (2**87 - R) * 2**-87`` where ``W < 0`` (a small negative
    total such as -1e-7 is -1 + 0.9999999 in the first form, which keeps only about nine digits).
    """
    bits = exp.Literal.number(LOW_BITS)
    floor = exp.Paren(
        this=exp.Add(this=whole, expression=exp.Paren(this=exp.BitwiseRightShift(this=low, expression=bits)))
    )
    remainder = exp.Paren(
        this=exp.BitwiseAnd(this=low.copy(), expression=exp.Literal.number(2**LOW_BITS - 1))
    )
    return _combine_pair(floor, remainder, exp.GTE(this=floor.copy(), expression=exp.Literal.number(0)))


def combine_scaled(total: exp.Expr, scale: int) -> exp.Expr:
    """:func:`combine` of a one-limb total at ``2**scale``: the same normalised pair, so the same bits
    as two limbs of the same values. Written without :func:`combine`'s carry (the fraction is below
    ``2**87`` already) and with the total's own sign for the floor's: the engine binds every copy of
    the total, so each copy saved is planning time saved (the full form cost about 3 ms a query)."""
    floor = exp.Paren(this=exp.BitwiseRightShift(this=total, expression=exp.Literal.number(scale)))
    remainder: exp.Expr = exp.Paren(
        this=exp.BitwiseAnd(this=total.copy(), expression=exp.Literal.number(2**scale - 1))
    )
    if scale < LOW_BITS:
        remainder = exp.Paren(
            this=exp.BitwiseLeftShift(this=remainder, expression=exp.Literal.number(LOW_BITS - scale))
        )
    return _combine_pair(floor, remainder, exp.GTE(this=total.copy(), expression=exp.Literal.number(0)))


def _combine_pair(floor: exp.Expr, remainder: exp.Expr, nonnegative: exp.Expr) -> exp.Expr:
    """The DOUBLE of the normalised pair ``floor`` (HUGEINT), ``remainder`` (in [0, 2**87)), the two
    terms added with the same sign (:func:`combine`); ``nonnegative``: ``floor >= 0``."""

    def double(node: exp.Expr) -> exp.Expr:
        return exp.Cast(this=node, to=_double_type())

    def scaled(node: exp.Expr) -> exp.Expr:
        return exp.Mul(this=double(node), expression=power(-LOW_BITS))

    positive = exp.Add(this=double(floor.copy()), expression=scaled(remainder.copy()))
    negative = exp.Sub(
        this=double(exp.Add(this=floor, expression=exp.Literal.number(1))),
        expression=scaled(
            exp.Paren(this=exp.Sub(this=_hugeint(exp.Literal.number(2**LOW_BITS)), expression=remainder))
        ),
    )
    return exp.Case(ifs=[exp.If(this=nonnegative, true=positive)], default=negative)


def power(exponent: int) -> exp.Expr:
    """2**exponent as an exact DOUBLE literal (hex floats are not SQL; the decimal form of a power of
    two round-trips exactly). With an exponent the engine reads a literal as a DOUBLE (``1024.0``
    would be a DECIMAL): no cast for it to bind, once for every copy of a sum."""
    text = repr(2.0**exponent)
    return exp.Literal.number(text if "e" in text else f"{text}e0")


def _hugeint(node: exp.Expr) -> exp.Expr:
    return exp.Cast(this=node, to=_hugeint_type())


def _double_type() -> exp.DataType:
    # From the enum: building a type from its name parses the name (about 30 us a cast, ten casts a
    # one-limb sum).
    return exp.DataType.build(exp.DataType.Type.DOUBLE)


def _hugeint_type() -> exp.DataType:
    return exp.DataType.build(exp.DataType.Type.INT128)
