"""Every table a query reads must be a table of this scope (``qualify`` does not check this)."""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.scopes import Opaque
from policies.context import PolicyContext
from policies.findings import Finding

_SYSTEM_PREFIXES = ("duckdb_", "pg_", "sqlite_", "information_schema", "pragma_")


def only_known_tables(analysis: Analysis, ctx: PolicyContext) -> Iterator[Finding]:
    """Findings for table functions, file paths, system catalogs and tables outside the scope."""
    known = ", ".join(sorted(ctx.tables)) or "(none)"
    for scope in analysis.scopes:
        for name in scope.ctes:
            if ctx.table(name) is not None:
                yield Finding(
                    "cte_shadows_table",
                    f"CTE name {name!r} hides the table of the same name; rename the CTE",
                    name,
                )
        for source in scope.sources.values():
            if isinstance(source, Opaque):
                yield _opaque(source.node, known)
        for join in scope.select.args.get("joins") or ():
            yield from _join(join)
    if any(w.args.get("recursive") for w in analysis.find_all(exp.With)):
        yield Finding("recursive_cte", "WITH RECURSIVE is not allowed; use plain CTEs", "WITH RECURSIVE")


def _opaque(node: exp.Expr, known: str) -> Finding:
    text = node.sql(dialect="duckdb")
    if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
        name = node.name
        if node.args.get("db") or node.args.get("catalog"):
            if node.db.lower() in {"information_schema", "pg_catalog", "system", "temp"}:
                return Finding(
                    "system_catalog", f"{text} is a system catalog; query the scope's tables", text
                )
            return Finding(
                "qualified_table", f"{text}: use the bare table name (tables of this scope: {known})", text
            )
        if any(ch in name for ch in "/\\.:*?") or name.lower().endswith((".csv", ".parquet", ".json")):
            return Finding(
                "file_access",
                f"{text} looks like a file path; queries may read only the scope's tables ({known})",
                text,
            )
        if name.lower().startswith(_SYSTEM_PREFIXES):
            return Finding("system_catalog", f"{text} is a system catalog; query the scope's tables", text)
        return Finding(
            "unknown_table", f"table {name!r} is not in this scope; tables of this scope: {known}", text
        )
    if isinstance(node, exp.Table) and isinstance(node.this, exp.Func):
        fname = node.this.sql_name().lower() if hasattr(node.this, "sql_name") else ""
        if fname in {"query", "query_table"} or fname.startswith("duckdb_"):
            return Finding(
                "system_function", f"{fname}() reaches outside the catalog and is not allowed", text
            )
        return Finding(
            "table_function",
            f"table functions are not allowed ({text}); read the scope's tables ({known})",
            text,
        )
    return Finding("table_function", f"{text} is not a table of this scope ({known})", text)


def _join(join: exp.Join) -> Iterator[Finding]:
    # The fragment is generated only for a finding: generating SQL copies the subtree.
    method = (join.args.get("method") or "").upper()
    if method in {"NATURAL", "POSITIONAL", "ASOF"}:
        yield Finding(
            "join_kind",
            f"{method} JOIN is not allowed; write JOIN … ON a.key = b.key",
            join.sql(dialect="duckdb"),
        )
        return
    if join.args.get("on") is None and not join.args.get("using"):
        yield Finding(
            "join_without_condition",
            "joins need a condition (cross and comma joins multiply rows); write JOIN … ON a.key = b.key",
            join.sql(dialect="duckdb"),
        )
