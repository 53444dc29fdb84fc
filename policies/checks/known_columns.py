"""Every column reference resolves to a column of a source; whole-row and struct references are refused."""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.scopes import Base, Opaque, SelectScope
from policies.context import PolicyContext
from policies.findings import Finding


def known_columns(analysis: Analysis, ctx: PolicyContext) -> Iterator[Finding]:
    """Findings for columns that do not resolve, whole-row references and nested field access."""
    aliases: dict[int, set[str]] = {}
    if all(
        _resolves(analysis, column, scope=scope, aliases=aliases)
        for column, scope in analysis.scope_columns()
    ):
        return  # the common case, decided from the one walk of the tree
    yield from findings_in_order(analysis, aliases=aliases)


def findings_in_order(analysis: Analysis, *, aliases: dict[int, set[str]] | None = None) -> Iterator[Finding]:
    """Every finding, scope by scope and each scope in the order of its ``nodes`` (the order they are
    reported in). ``aliases``: the output names of each scope, by ``id`` of the scope, as far as known."""
    names = {} if aliases is None else aliases
    for scope in analysis.scopes:
        for node in scope.nodes:
            if not isinstance(node, exp.Column) or _resolves(analysis, node, scope=scope, aliases=names):
                continue
            text = node.sql(dialect="duckdb")
            if node.args.get("db") or node.args.get("catalog"):
                yield Finding(
                    "struct_access", f"{text}: nested field access is not allowed; name a column", text
                )
                continue
            if not node.table:
                if scope.resolve(node.name) is not None:
                    yield Finding(
                        "whole_row_reference", f"{text} refers to a whole row; name its columns", text
                    )
                else:
                    yield Finding(
                        "unknown_column",
                        f"column {node.name!r} does not exist in the tables of this query",
                        text,
                    )
                continue
            found = scope.resolve(node.table)
            if found is None:
                yield Finding("unknown_column", f"{text}: {node.table!r} is not a table of this query", text)
                continue
            source = found[1]
            if isinstance(source, Opaque):
                continue
            if analysis.column_info(node, scope) is None:
                hint = ""
                if isinstance(source, Base):
                    hint = "; columns: " + ", ".join(sorted(source.table.columns))
                yield Finding(
                    "unknown_column", f"column {node.name!r} does not exist in {node.table!r}{hint}", text
                )


def _resolves(
    analysis: Analysis, node: exp.Column, *, scope: SelectScope, aliases: dict[int, set[str]]
) -> bool:
    """Whether ``node`` needs no finding for certain: a star, a column of a known source, or an output
    alias named in ORDER BY / HAVING (all decided without generating SQL)."""
    if isinstance(node.this, exp.Star):
        return True
    if node.args.get("db") or node.args.get("catalog"):
        return False
    table = node.table
    if table:
        found = scope.resolve(table)
        return (
            found is not None
            and not isinstance(found[1], Opaque)
            and analysis.column_info(node, scope) is not None
        )
    names = aliases.get(id(scope))
    if names is None:
        names = aliases[id(scope)] = {p.alias_or_name.lower() for p in scope.select.expressions}
    return node.name.lower() in names and _is_output_reference(node)


def _is_output_reference(node: exp.Column) -> bool:
    """ORDER BY / HAVING may name an output alias (qualify leaves those unqualified)."""
    return node.find_ancestor(exp.Order, exp.Having) is not None
