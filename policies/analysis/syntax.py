"""Deny-by-default allow-lists of SQL syntax and functions.

Anything not named here is refused. A function earns its place only if it cannot read outside the
catalog, is deterministic, and cannot raise an error whose message carries a row's value (casts,
regular expressions, JSON/UUID parsing, ``error()`` are therefore absent; arithmetic that could
overflow is guarded by the ``guard_arithmetic`` pass).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sqlglot import exp

from policies.analysis.markers import GENERATED_META
from policies.findings import Finding

#: Query structure.
STRUCTURE: frozenset[type[exp.Expr]] = frozenset(
    {
        exp.Select,
        exp.From,
        exp.Join,
        exp.Where,
        exp.Group,
        exp.Having,
        exp.Order,
        exp.Ordered,
        exp.Limit,
        exp.Offset,
        exp.With,
        exp.CTE,
        exp.Subquery,
        exp.Union,
        exp.Intersect,
        exp.Except,
        exp.Table,
        exp.TableAlias,
        exp.Identifier,
        exp.Column,
        exp.Alias,
        exp.Star,
        exp.Distinct,
        exp.Filter,
        exp.Rollup,
        exp.Cube,
        exp.GroupingSets,
        exp.Grouping,
        exp.Tuple,
        exp.Exists,
        exp.Paren,
        exp.Var,
        exp.DataType,
        exp.WindowSpec,  # a frame, only ever inside an allowed window (see window_over_aggregates)
    }
)

#: Scalar operators and functions.
SCALAR: frozenset[type[exp.Expr]] = frozenset(
    {
        exp.Literal,
        exp.Boolean,
        exp.Null,
        exp.And,
        exp.Or,
        exp.Not,
        exp.EQ,
        exp.NEQ,
        exp.GT,
        exp.GTE,
        exp.LT,
        exp.LTE,
        exp.NullSafeEQ,
        exp.NullSafeNEQ,
        exp.Is,
        exp.In,
        exp.Between,
        exp.Like,
        exp.ILike,
        exp.Add,
        exp.Sub,
        exp.Mul,
        exp.Div,
        exp.IntDiv,
        exp.Mod,
        exp.Neg,
        exp.Case,
        exp.If,
        exp.Coalesce,
        exp.Nullif,
        exp.Greatest,
        exp.Least,
        exp.Upper,
        exp.Lower,
        exp.Length,
        exp.Substring,
        exp.Left,
        exp.Right,
        exp.Concat,
        exp.DPipe,
        exp.Trim,
        exp.StartsWith,
        exp.Year,
        exp.Month,
        exp.Day,
        exp.Quarter,
        exp.DayOfWeek,
        exp.Extract,
        exp.TimestampTrunc,
        exp.DateTrunc,
        exp.Round,
        exp.Floor,
        exp.Ceil,
        exp.Abs,
        exp.Sign,
        exp.TimeToStr,
        exp.Cast,
        # Returns NULL instead of raising; the engine wraps row-level expressions in it, and a query
        # that writes it itself gains nothing (it can only blank its own rows out).
        exp.Try,
    }
)

#: Aggregate functions, by the lowercase name used in scopes.
AGGREGATES: dict[type[exp.Expr], str] = {
    exp.Count: "count",
    exp.Sum: "sum",
    exp.Avg: "avg",
    exp.Min: "min",
    exp.Max: "max",
    exp.Stddev: "stddev",
    exp.StddevSamp: "stddev",
    exp.StddevPop: "stddev",
    exp.Variance: "variance",
    exp.VariancePop: "variance",
    exp.Median: "median",
}

ALLOWED: frozenset[type[exp.Expr]] = STRUCTURE | SCALAR | frozenset(AGGREGATES)

#: Functions the rewrite emits itself; a user query naming them is refused.
GENERATED_FUNCTIONS = frozenset({"sbx_keyed_hash"})

#: The keyed per-unit sample of the differential-privacy bounding passes (``policies.dp.passes``):
#: node kinds and functions refused in a query, accepted in the re-check only where the engine marked
#: them generated. Defined here (and re-exported by the passes) so the analysis imports no pass.
DP_SAMPLING_SYNTAX: frozenset[type[exp.Expr]] = frozenset(
    {exp.Qualify, exp.Window, exp.RowNumber, exp.DenseRank, exp.Placeholder}
)
DP_SAMPLING_FUNCTIONS = frozenset({"hash"})

#: Casts a query may write (only ever on values that no protected column flows into).
CAST_TYPES = frozenset(
    {
        "VARCHAR",
        "BIGINT",
        "INT",
        "INTEGER",
        "DOUBLE",
        "DECIMAL",
        "DATE",
        "BOOLEAN",
        "FLOAT",
        "TEXT",
        "TIMESTAMP",
    }
)

_SPECIFIC: dict[type[exp.Expr], tuple[str, str]] = {
    exp.TableColumn: (
        "whole_row_reference",
        "whole-row references are not allowed; name the columns you need",
    ),
    exp.PositionalColumn: (
        "positional_reference",
        "positional references (#n) are not allowed; name the column",
    ),
    exp.Dot: ("struct_access", "struct or nested field access is not allowed; name a column"),
    exp.Bracket: ("struct_access", "indexing into lists or structs is not allowed; name a column"),
    exp.Struct: ("struct_access", "struct values are not allowed; name columns separately"),
    exp.Array: ("struct_access", "list values are not allowed; name columns separately"),
    exp.Placeholder: ("parameter", "query parameters are not supported; write literals"),
    exp.Parameter: ("parameter", "query parameters are not supported; write literals"),
    exp.TableSample: ("sampling", "TABLESAMPLE is not allowed (results must be reproducible)"),
    exp.Lateral: ("lateral", "LATERAL is not allowed; use a join or a CTE"),
    exp.Unnest: ("table_function", "UNNEST is not allowed"),
    exp.Values: (
        "values_table",
        "VALUES lists are not allowed as tables; the query reads catalog tables only",
    ),
    exp.Qualify: ("window_function", "QUALIFY is not allowed; use HAVING on aggregates"),
    exp.TryCast: ("cast_not_allowed", "TRY_CAST is not allowed; compare with literals of the column's type"),
    exp.CurrentDate: (
        "nondeterministic",
        "CURRENT_DATE is not allowed (results must be reproducible); write a date",
    ),
    exp.CurrentTimestamp: ("nondeterministic", "CURRENT_TIMESTAMP is not allowed; write a timestamp literal"),
}


#: Allowed kinds that no rule below looks at more closely (with ``generated``, identifiers too: only
#: the user's own names are checked for the reserved prefix).
_PLAIN: frozenset[type[exp.Expr]] = ALLOWED - {exp.Anonymous, exp.Identifier, exp.DataType} - set(_SPECIFIC)
_PLAIN_GENERATED: frozenset[type[exp.Expr]] = _PLAIN | {exp.Identifier}


def syntax_findings(
    tree: exp.Expr, *, generated: bool = False, nodes: Iterable[exp.Expr] | None = None
) -> Iterator[Finding]:
    """Every node outside the allow-lists, and every use of a reserved ``sbx`` name.

    ``generated=True`` is the re-check after rewriting, where ``sbx_keyed_hash`` and ``_sbx_`` aliases
    are the engine's own. ``nodes`` is ``tree.walk()`` when the caller has already walked the tree.

    >>> import sqlglot
    >>> [f.rule for f in syntax_findings(sqlglot.parse_one("SELECT regexp_matches(a, 'x') FROM t"))]
    ['function_not_allowed']
    """
    plain = _PLAIN_GENERATED if generated else _PLAIN
    for node in tree.walk() if nodes is None else nodes:
        kind = type(node)
        if kind in plain:
            continue  # the common case, decided by one lookup
        if generated and _dp_sampling(node):
            continue
        if kind is exp.Anonymous:
            yield from _anonymous(node, generated=generated)
        elif kind is exp.Identifier:
            if node.name.lower().startswith("_sbx") and not generated:
                yield Finding(
                    "reserved_name",
                    "names starting with _sbx are reserved for the engine; rename it",
                    node.name,
                )
        elif kind is exp.Window:
            if not window_over_aggregates(node):
                yield Finding(
                    "window_function",
                    "window functions are allowed only over the released rows: SUM, COUNT, AVG, MIN or "
                    "MAX of an aggregate (e.g. SUM(COUNT(*)) OVER () for a share of the total); use "
                    "GROUP BY with aggregates",
                    _fragment(node),
                )
        elif kind in _SPECIFIC:
            rule, message = _SPECIFIC[kind]
            yield Finding(rule, message, _fragment(node))
        elif kind is exp.DataType:
            if node.this.name.upper() not in CAST_TYPES and isinstance(node.parent, exp.Cast):
                yield Finding(
                    "cast_not_allowed", f"cast to {node.sql()} is not allowed", _fragment(node.parent)
                )
        elif kind not in ALLOWED:
            yield _not_allowed(node)


#: Window functions allowed over the released rows of an aggregating SELECT.
_WINDOW_AGGREGATES = (exp.Sum, exp.Count, exp.Avg, exp.Min, exp.Max)


def window_over_aggregates(node: exp.Expr) -> bool:
    """Whether ``node`` is a window over the rows of an aggregating SELECT: SUM, COUNT, AVG, MIN or
    MAX of an expression that holds an aggregate. Such a window runs after GROUP BY and HAVING (where
    the k rule is), so it combines released rows only; a window over raw rows (ROW_NUMBER, LAG, SUM(x)
    OVER …) would hand out row-level values and stays refused.

    >>> import sqlglot
    >>> window_over_aggregates(sqlglot.parse_one("SUM(COUNT(*)) OVER ()"))
    True
    >>> window_over_aggregates(sqlglot.parse_one("SUM(income) OVER ()"))
    False
    """
    if not isinstance(node, exp.Window) or type(node.this) not in _WINDOW_AGGREGATES:
        return False
    argument = node.this.this
    return argument is not None and any(type(n) in AGGREGATES for n in argument.walk())


def _dp_sampling(node: exp.Expr) -> bool:
    """The engine's own DP sampling syntax (marked generated), never an operator's."""
    if not node.meta_get(GENERATED_META):
        return False
    if isinstance(node, exp.Anonymous):
        return node.name.lower() in DP_SAMPLING_FUNCTIONS
    return type(node) in DP_SAMPLING_SYNTAX


def _anonymous(node: exp.Expr, *, generated: bool) -> Iterator[Finding]:
    name = node.name.lower()
    if name in GENERATED_FUNCTIONS and generated:
        return
    if name.startswith("sbx_"):
        yield Finding(
            "reserved_name", f"{name}() is reserved for the engine; masks are applied for you", name
        )
    elif name.startswith(("duckdb_", "pg_", "sqlite_")) or name in {"query", "query_table", "getvariable"}:
        yield Finding(
            "system_function", f"{name}() reaches outside the catalog and is not allowed", _fragment(node)
        )
    else:
        yield Finding(
            "function_not_allowed",
            f"function {name}() is not on the allow-list; see the documented list of allowed functions",
            _fragment(node),
        )


def _not_allowed(node: exp.Expr) -> Finding:
    if isinstance(node, exp.Func):
        name = node.sql_name().lower() if hasattr(node, "sql_name") else type(node).__name__.lower()
        return Finding(
            "function_not_allowed",
            f"function {name}() is not on the allow-list; see the documented list of allowed functions",
            _fragment(node),
        )
    return Finding("syntax_not_allowed", f"{type(node).__name__} is not allowed in a query", _fragment(node))


def _fragment(node: exp.Expr) -> str:
    text = node.sql(dialect="duckdb")
    return text if len(text) <= 200 else text[:197] + "..."
