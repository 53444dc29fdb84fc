"""Notes (not refusals) for comparisons of a generalised column with a literal finer than its mask.

A mask applies before any comparison, so ``birth_date = DATE '1965-10-03'`` under a year mask compares
1965-01-01 with 1965-10-03 and never matches, and ``age < 25`` under ``{width: 10}`` compares bucket
starts, so everyone aged 25-29 (bucket 20) counts as under 25. The query is allowed, but the dry run
says what was actually compared, so the analyst is not misled by an empty or shifted answer.
"""

from __future__ import annotations

import datetime as dt
import math

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.lineage import Shape
from policies.context import PolicyContext
from policies.findings import Finding
from policies.model import GeneralizeMask, Prefix, Width

RULE = "mask_comparison"
_COMPARISONS = (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE, exp.Between, exp.In)


def mask_notes(analysis: Analysis, ctx: PolicyContext) -> list[Finding]:
    """One note per comparison of a generalised column with a literal its mask cannot produce.

    >>> from policies.examples import example_context
    >>> ctx, tree, analysis = example_context(
    ...     "SELECT COUNT(*) FROM citizens WHERE birth_date = DATE '1965-10-03'")
    >>> [(n.rule, n.message[:60]) for n in mask_notes(analysis, ctx)]
    [('mask_comparison', 'citizens.birth_date is generalised to its year (the first da')]
    """
    names = ctx.generalised_columns
    if not names or not analysis.has_any(*_COMPARISONS):
        return []
    out: list[Finding] = []
    # From the (cached) column references, not a walk of every node: only a comparison whose operand
    # is a column of a generalised name can need a note.
    compared = [
        column.parent
        for column, _ in analysis.scope_columns()
        if column.name.lower() in names and isinstance(column.parent, _COMPARISONS)
    ]
    for node in compared:
        assert node is not None
        operands = _operands(node)
        columns = [o for o in operands if isinstance(o, exp.Column)]
        if len(columns) != 1:
            continue
        mask = _generalised(analysis, ctx, columns[0])
        if mask is None:
            continue
        name, how = mask
        for literal in operands:
            if literal is columns[0]:
                continue
            value = _literal(literal)
            if value is None:
                continue
            masked = _mask(value, how)
            if masked is not None and masked != value:
                out.append(_note(node, name, how, value, masked))
                break
    return out


def _operands(node: exp.Expr) -> list[exp.Expr]:
    if isinstance(node, exp.Between):
        return [node.this, node.args["low"], node.args["high"]]
    if isinstance(node, exp.In):
        return [node.this, *node.expressions]
    return [node.this, node.expression]


def _generalised(
    analysis: Analysis, ctx: PolicyContext, column: exp.Column
) -> tuple[str, str | Width | Prefix] | None:
    lineage = analysis.info(column).lineage
    if len(lineage) != 1:
        return None
    ((origin, shape),) = lineage.items()
    table = ctx.table(origin.table)
    policy = table.column(origin.column) if table is not None else None
    if shape is not Shape.PURE or policy is None or not isinstance(policy.rule.mask, GeneralizeMask):
        return None
    return f"{origin.table}.{origin.column}", policy.rule.mask.generalize


def _literal(node: exp.Expr) -> object | None:
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal):
        kind = node.to.this.name.upper()
        if kind == "DATE":
            try:
                return dt.date.fromisoformat(node.this.name)
            except ValueError:
                return None
        node = node.this
    if not isinstance(node, exp.Literal):
        return None
    if node.is_string:
        try:
            return dt.date.fromisoformat(node.name)
        except ValueError:
            return node.name
    try:
        return float(node.name)
    except ValueError:
        return None


def _mask(value: object, how: str | Width | Prefix) -> object | None:
    """What the mask makes of ``value`` (``None`` when the mask does not apply to such a value).

    >>> _mask(25.0, Width(width=10)), _mask(dt.date(1965, 10, 3), "decade"), _mask("12345", Prefix(prefix=3))
    (20.0, datetime.date(1960, 1, 1), '123')
    """
    if isinstance(how, str):
        if not isinstance(value, dt.date):
            return None
        if how == "year":
            return dt.date(value.year, 1, 1)
        if how == "month":
            return dt.date(value.year, value.month, 1)
        return dt.date(value.year - value.year % 10, 1, 1)
    if isinstance(how, Width):
        if not isinstance(value, float):
            return None
        return math.floor(value / how.width) * how.width
    if isinstance(value, str):
        return value[: how.prefix]
    return None


def _describe(how: str | Width | Prefix) -> str:
    if isinstance(how, str):
        return {"year": "its year", "month": "its month", "decade": "its decade"}[how] + " (the first day)"
    if isinstance(how, Width):
        return f"buckets of {_plain(how.width)} (each value replaced by the start of its bucket)"
    return f"its first {how.prefix} characters"


def _plain(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _note(node: exp.Expr, name: str, how: str | Width | Prefix, value: object, masked: object) -> Finding:
    text = node.sql(dialect="duckdb")
    return Finding(
        RULE,
        f"{name} is generalised to {_describe(how)} before it is compared, so this compares the masked "
        f"value: {_plain(value)} is finer than the mask, which would make it {_plain(masked)}; an "
        "equality with it never matches and a range compares bucket starts. Compare with values the "
        f"mask produces (such as {_plain(masked)}) to get what you mean",
        text if len(text) <= 200 else text[:197] + "...",
    )
