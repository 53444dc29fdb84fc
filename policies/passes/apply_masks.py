"""Replace every reference to a masked (or bounded) column by its masked value.

Runs on every SELECT scope (CTEs, subqueries, WHERE, JOIN, GROUP BY, HAVING, ORDER BY), so no later
expression ever sees the raw value. Aggregate columns with ``bounds`` are clamped the same way.
"""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.markers import FAMILY_META, GENERATED_META, MASK_META
from policies.analysis.scopes import Base
from policies.context import ColumnPolicy, PolicyContext
from policies.errors import PassOrderError
from policies.model import GeneralizeMask, KeywordMask, PartialMask, Prefix, Width
from policies.passes._build import cast, generated, number


def apply_masks(tree: exp.Expr, analysis: Analysis, ctx: PolicyContext) -> exp.Expr:
    """Mask every reference (every column of every scope of the analysis); needs a qualified tree.

    >>> from policies.examples import example_context
    >>> ctx, tree, analysis = example_context("SELECT birth_date, COUNT(*) FROM citizens GROUP BY 1")
    >>> print(apply_masks(tree, analysis, ctx).args["group"].sql(dialect="duckdb"))
    GROUP BY CAST(DATE_TRUNC('YEAR', "citizens"."birth_date") AS DATE)
    """
    for node, scope in analysis.scope_columns():
        if isinstance(node.this, exp.Star) or node.meta_get(MASK_META):
            continue
        table = node.table
        if not table:
            if node.find_ancestor(exp.Order, exp.Having) is None and scope.resolve(node.name) is None:
                raise PassOrderError("apply_masks needs a qualified tree: run qualify first")
            continue
        found = scope.resolve(table)
        if found is None or not isinstance(found[1], Base):
            continue
        policy = found[1].table.column(node.name)
        if policy is None or (policy.rule.mask is None and policy.rule.bounds is None):
            continue
        if node is tree:
            return mask_expression(node, policy)
        # Detach the column and wrap the node itself (no copy): a placeholder holds its place.
        placeholder = exp.Null()
        node.replace(placeholder)
        placeholder.replace(mask_expression(node, policy))
    return tree


def mask_expression(column: exp.Column, policy: ColumnPolicy) -> exp.Expr:
    """The masked value of ``column`` under ``policy`` (type-preserving where the mask allows)."""
    rule = policy.rule
    value: exp.Expr = column
    if not column._meta:
        column._meta = None  # an empty meta is no meta; without one, every copy of the column is cheaper
    mask = rule.mask
    if isinstance(mask, KeywordMask):
        value = _keyword(column, mask.kind, policy.type)
    elif isinstance(mask, PartialMask):
        value = _partial(column, mask.partial.keep_first, mask.partial.keep_last, policy.type)
    elif isinstance(mask, GeneralizeMask):
        value = _generalize(column, mask.generalize, policy.type)
    if rule.bounds is not None:
        low, high = rule.bounds
        # CASE rather than LEAST/GREATEST: those skip NULLs in DuckDB and would turn NULL into a bound.
        value = exp.Case(
            ifs=[
                exp.If(this=exp.LT(this=value.copy(), expression=number(low)), true=number(low)),
                exp.If(this=exp.GT(this=value.copy(), expression=number(high)), true=number(high)),
            ],
            default=value,
        )
    generated(value)
    if column._meta is not None:
        column._meta.pop(GENERATED_META, None)  # the column itself is the user's reference
        column._meta = column._meta or None
    value.meta[MASK_META] = True
    value.meta[FAMILY_META] = policy.family
    return value


def _as_text(column: exp.Expr, type_: str) -> exp.Expr:
    return column if type_ == "VARCHAR" else cast(column, "VARCHAR")


def _keyword(column: exp.Column, kind: str, type_: str) -> exp.Expr:
    if kind == "redact":
        return exp.Literal.string("[redacted]")
    if kind == "null":
        return cast(exp.Null(), type_)
    return exp.Anonymous(this="sbx_keyed_hash", expressions=[_as_text(column, type_)])


def _partial(column: exp.Column, first: int, last: int, type_: str) -> exp.Expr:
    text = _as_text(column, type_)
    shown = exp.DPipe(
        this=exp.DPipe(
            this=exp.Left(this=text, expression=number(first)), expression=exp.Literal.string("***")
        ),
        expression=exp.Right(this=text.copy(), expression=number(last)),
    )
    longer = exp.GT(this=exp.Length(this=text.copy()), expression=number(first + last))
    return exp.Case(ifs=[exp.If(this=longer, true=shown)], default=exp.Literal.string("***"))


def _generalize(column: exp.Column, how: str | Width | Prefix, type_: str) -> exp.Expr:
    if isinstance(how, str):
        truncated = exp.TimestampTrunc(this=column, unit=exp.Var(this=how.upper()))
        return cast(truncated, "DATE") if type_ == "DATE" else truncated
    if isinstance(how, Width):
        width = number(how.width)
        if (
            float(how.width).is_integer()
            and type_ not in {"DOUBLE", "FLOAT"}
            and not type_.startswith("DECIMAL")
        ):
            return exp.Mul(
                this=exp.Paren(this=exp.IntDiv(this=column, expression=width)), expression=width.copy()
            )
        floor = exp.Floor(this=exp.Div(this=column, expression=width))
        return exp.Mul(this=floor, expression=width.copy())
    return exp.Left(this=_as_text(column, type_), expression=number(how.prefix))
