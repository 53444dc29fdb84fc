"""Small builders shared by the passes: generated nodes are marked so the re-check knows them."""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.markers import GENERATED_META


def generated(node: exp.Expr) -> exp.Expr:
    """Mark ``node`` and its descendants as produced by the engine."""
    for sub in node.walk():
        meta = sub._meta
        if meta is None:
            sub._meta = {GENERATED_META: True}  # what ``sub.meta[...] = True`` does, without the property
        else:
            meta[GENERATED_META] = True
    return node


def ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def column(name: str, table: str) -> exp.Column:
    return exp.Column(this=ident(name), table=ident(table))


def number(value: float) -> exp.Expr:
    return exp.Literal.number(int(value) if float(value).is_integer() else value)


def cast(node: exp.Expr, to: str) -> exp.Cast:
    kind = exp.DataType.Type.__members__.get(to)
    # Building from the enum avoids a parse per cast; parametrised types (DECIMAL(p,s)) still parse.
    return exp.Cast(this=node, to=exp.DataType(this=kind) if kind is not None else exp.DataType.build(to))
