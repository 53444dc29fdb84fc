"""Compute arithmetic on protected numbers in DOUBLE so it cannot overflow.

DuckDB's overflow error prints the operands ("Overflow in multiplication of INT64 (52000 * …)"), which
would read a protected value through the error message. DOUBLE arithmetic saturates to infinity instead.
"""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.markers import FAMILY_META, GENERATED_META, TRANSPARENT_META
from policies.context import PolicyContext
from policies.passes._build import cast

_OVERFLOWING = (exp.Add, exp.Sub, exp.Mul, exp.Neg)


def guard_arithmetic(tree: exp.Expr, analysis: Analysis, ctx: PolicyContext) -> exp.Expr:
    """Wrap protected integer operands of + - * and unary minus in ``CAST(… AS DOUBLE)``.

    >>> from policies.examples import example_context
    >>> ctx, tree, analysis = example_context("SELECT SUM(income * 2) FROM citizens")
    >>> guard_arithmetic(tree, analysis, ctx).sql(dialect="duckdb")
    'SELECT SUM(CAST("citizens"."income" AS DOUBLE) * 2) AS "_col_0" FROM "citizens" AS "citizens"'
    """
    targets: list[exp.Expr] = []
    for node in tree.find_all(*_OVERFLOWING):
        if node.meta_get(GENERATED_META):
            continue
        for operand in list(node.iter_expressions()):
            if isinstance(operand, exp.Literal) or operand.meta_get(TRANSPARENT_META):
                continue
            info = analysis.info(operand)
            if info.protected and info.family in ("num", None):
                targets.append(operand)
    for target in targets:
        guard = cast(target.copy(), "DOUBLE")
        guard.meta[TRANSPARENT_META] = True
        guard.meta[GENERATED_META] = True
        guard.meta[FAMILY_META] = "num"
        target.replace(guard)
    return tree
