"""Every column reference resolves to a column of a source; whole-row and struct references are refused."""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from policies.analysis.levels import Analysis, Base, Opaque
from policies.context import PolicyContext
from policies.findings import Finding


def known_columns(analysis: Analysis, ctx: PolicyContext) -> Iterator[Finding]:
    """Findings for columns that do not resolve, whole-row references and nested field access."""
    for scope in analysis.scopes:
        aliases = {p.alias_or_name.lower() for p in scope.select.expressions}
        for node in scope.nodes:
            if not isinstance(node, exp.Column) or isinstance(node.this, exp.Star):
                continue
            if node.table and not node.args.get("db") and not node.args.get("catalog"):
                found = scope.resolve(node.table)
                if (
                    found is not None
                    and not isinstance(found[1], Opaque)
                    and analysis.column_info(node, scope)
                ):
                    continue  # the common case: a resolved column (checked without generating SQL)
            elif (
                not node.table
                and not node.args.get("db")
                and not node.args.get("catalog")
                and node.name.lower() in aliases
                and _is_output_reference(node)
            ):
                continue  # an output alias in ORDER BY / HAVING, also without generating SQL
            text = node.sql(dialect="duckdb")
            if node.args.get("db") or node.args.get("catalog"):
                yield Finding(
                    "struct_access", f"{text}: nested field access is not allowed; name a column", text
                )
                continue
            if not node.table:
                if _is_output_reference(node) and node.name.lower() in aliases:
                    continue
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


def _is_output_reference(node: exp.Column) -> bool:
    """ORDER BY / HAVING may name an output alias (qualify leaves those unqualified)."""
    return node.find_ancestor(exp.Order, exp.Having) is not None
