"""Two-world attacks: an analyst asks a yes/no question about one person (or about fewer than k units)
by submitting one query per answer, or the same query against two datasets that differ only in that
person. Everything the operator receives (refusal and findings, or the released rows in their order,
the column names and the released report) is gathered for each world; the fact is safe exactly when
the two views are equal, because then nothing received can tell the worlds apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb
import numpy as np
import pandas as pd

import policies
from tests.policies.adversarial_fixture import (
    SCOPE_YAML,
    build_catalog,
    build_fixture,
    execute_sql,
    normalise_key,
)

View = tuple[Any, ...]


def scope_with(**replacements: str) -> policies.Scope:
    """The fixture scope with ``key: old`` lines replaced (e.g. ``max_rows="3"``)."""
    text = SCOPE_YAML
    for key, value in replacements.items():
        lines = [
            f"{line.split(':')[0]}: {value}" if line.strip().startswith(f"{key}:") else line
            for line in text.splitlines()
        ]
        text = "\n".join(lines) + "\n"
    return policies.load_scope(text, fmt="yaml")


def operator_view(
    sql: str,
    *,
    scope: policies.Scope | None = None,
    frames: Mapping[str, pd.DataFrame] | None = None,
) -> View:
    """Everything the operator receives for ``sql``: the refusal (rules and messages) or the released
    rows in order (in a canonical order when the query has no ORDER BY: DuckDB's own order of
    grouped rows varies from run to run), the column names and the released report."""
    scope = scope if scope is not None else policies.load_scope(SCOPE_YAML, fmt="yaml")
    catalog = build_catalog()
    report = policies.check(sql, scope, catalog)
    if not report.allowed:
        return ("refused", tuple(sorted((f.rule, f.message) for f in report.findings)))
    prepared = policies.prepare(sql, scope, catalog)
    data = dict(frames) if frames is not None else build_fixture().frames()
    try:
        raw = execute_sql(prepared.sql, frames={r.sql_name: data[r.table] for r in prepared.tables})
    except duckdb.Error as exc:
        return ("failed", type(exc).__name__)
    released = policies.check_output(raw, scope.disclosure, additive=prepared.additive_columns)
    rows = tuple(tuple(_norm(v) for v in row) for row in released.table.itertuples(index=False))
    if "ORDER BY" not in sql.upper():
        rows = tuple(sorted(rows, key=repr))  # the order of an unordered result means nothing
    return ("released", tuple(released.table.columns), rows, _freeze(released.report.to_dict()))


def _norm(value: Any) -> Any:
    if isinstance(value, list | tuple | np.ndarray):
        return tuple(_norm(v) for v in value)  # a list-valued cell
    key = normalise_key(value)
    return round(key, 6) if isinstance(key, float) else key


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def assert_worlds_agree(first: View, second: View, fact: str) -> None:
    assert first == second, f"the operator can tell {fact}:\n{first}\n---\n{second}"
