"""Refuse expressions whose runtime error would print a protected value.

DuckDB reports a failed conversion with the value ("Could not convert string 'J10' to INT32"), so a
query could read a value through an error message. Casts of protected values, comparisons that make
DuckDB convert a protected string to another type, and divisions by protected values are refused.
Arithmetic overflow (whose message also carries the operands) is prevented by ``guard_arithmetic``.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.lineage import Info
from policies.analysis.markers import GENERATED_META
from policies.context import PolicyContext
from policies.findings import Finding

_COMPARISONS = (
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.NullSafeEQ,
    exp.NullSafeNEQ,
    exp.Like,
    exp.ILike,
)
_DIVISIONS = (exp.Div, exp.IntDiv, exp.Mod)
_ARITH = (exp.Add, exp.Sub, exp.Mul, exp.Neg, *_DIVISIONS)
_CHOICES = (exp.Coalesce, exp.Nullif, exp.Greatest, exp.Least, exp.If)
#: Every kind of node this check looks at (a quick filter before the per-kind tests below).
_JUDGED = (exp.Cast, *_COMPARISONS, exp.Between, exp.In, exp.Case, *_CHOICES, *_ARITH)


def type_safety(analysis: Analysis, ctx: PolicyContext) -> Iterator[Finding]:
    """Findings for casts, implicit casts and divisions that could raise an error carrying a value."""
    judged = {kind for kind in analysis.kinds if issubclass(kind, _JUDGED)}
    for node in analysis.nodes:
        if type(node) not in judged or node.meta_get(GENERATED_META):
            continue
        if isinstance(node, exp.Cast):
            if analysis.info(node.this).protected:
                yield _finding(
                    "cast_on_protected",
                    "casting a protected column is not allowed (a failed cast "
                    "prints the value); compare with a literal of the column's type",
                    node,
                )
        elif isinstance(node, (*_COMPARISONS, exp.Between, exp.In)):
            yield from _mixed(analysis, node, _operands(node))
        elif isinstance(node, exp.Case):
            values = [node.args.get("default")] + [i.args.get("true") for i in node.args.get("ifs") or ()]
            yield from _mixed(analysis, node, [v for v in values if v is not None])
        elif isinstance(node, _CHOICES):
            operands = (
                [node.this, *node.expressions]
                if not isinstance(node, exp.If)
                else [v for v in (node.args.get("true"), node.args.get("false")) if v is not None]
            )
            if isinstance(node, exp.Nullif):
                operands = [node.this, node.expression]
            yield from _mixed(analysis, node, operands)
        if isinstance(node, _DIVISIONS):
            divisor = node.expression
            facts = analysis.info(divisor)
            # Above aggregates a division cannot fail (DuckDB gives NULL for a zero divisor) and it
            # blanks one cell of a row of at least k units, not a row: ratios of aggregates are fine.
            if facts.protected and not facts.aggregate:
                yield _finding(
                    "unsafe_arithmetic",
                    "dividing by a protected value is not allowed (division by "
                    "zero fails or blanks rows); divide by a non-zero literal",
                    node,
                )
            elif isinstance(divisor, exp.Literal) and not divisor.is_string and _is_zero(divisor):
                yield _finding("unsafe_arithmetic", "division by zero", node)
        if isinstance(node, _ARITH):
            for operand in node.iter_expressions():
                info = analysis.info(operand)
                if info.protected and info.family not in (None, "num"):
                    yield _finding(
                        "implicit_cast", "arithmetic on a non-numeric protected value is not allowed", node
                    )
                    break


def _operands(node: exp.Expr) -> list[exp.Expr]:
    if isinstance(node, exp.Between):
        return [node.this, node.args["low"], node.args["high"]]
    if isinstance(node, exp.In):
        if node.args.get("query") is not None:
            query = node.args["query"]
            return [node.this, query.this if isinstance(query, exp.Subquery) else query]
        return [node.this, *node.expressions]
    return [node.this, node.expression]


def _mixed(analysis: Analysis, node: exp.Expr, operands: list[exp.Expr]) -> Iterator[Finding]:
    infos: list[Info] = [analysis.info(o) for o in operands]
    families = {i.family for i in infos if i.family is not None}
    protected_strings = any(i.protected and i.family == "str" for i in infos)
    if protected_strings and families - {"str"}:
        yield _finding(
            "implicit_cast",
            "this compares a protected text column with a non-text value, which "
            "makes DuckDB convert the column (a failed conversion prints the value); compare with a "
            "quoted string literal",
            node,
        )
    if isinstance(node, exp.Like | exp.ILike) and any(
        i.protected and i.family not in (None, "str") for i in infos
    ):
        yield _finding("implicit_cast", "LIKE works on text columns only", node)


def _is_zero(literal: exp.Literal) -> bool:
    try:
        return float(literal.this) == 0
    except ValueError:
        return False


def _finding(rule: str, message: str, node: exp.Expr) -> Finding:
    text = node.sql(dialect="duckdb")
    return Finding(rule, message, text if len(text) <= 200 else text[:197] + "...")
