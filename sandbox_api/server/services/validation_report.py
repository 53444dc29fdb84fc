"""The validation report stored with a draft version: what was checked against its manifest, and the result.

The reviewing steward reads it before publishing. Upload refuses a file that breaks a declaration
(services/ingest.py), so a stored draft normally passes every check; the report still measures each one
itself, and a draft whose report does not pass cannot be published (services/catalog_review.py).

The report holds counts over the steward's own data (rows, missing values): it is shown to stewards and
administrators, never to operators.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sandbox_api.manifest import ColumnDecl, Manifest, TableDecl
from sandbox_api.server.services.ingest import missing_values

REPORT_FORMAT = "data-sandbox/validation-report/v1"


def validation_report(manifest: Manifest, tables: Mapping[str, pa.Table]) -> dict[str, Any]:
    """Every check of every table, and whether all passed."""
    described = [_table_report(t, tables[t.name]) for t in sorted(manifest.tables, key=lambda t: t.name)]
    return {
        "format": REPORT_FORMAT,
        "passed": all(c["passed"] for t in described for c in t["checks"]),
        "tables": described,
    }


def report_passed(report: Mapping[str, Any] | None) -> bool:
    """Whether a stored report allows publication (a version stored before reports existed has none)."""
    return report is None or bool(report.get("passed"))


def _table_report(table: TableDecl, data: pa.Table) -> dict[str, Any]:
    unit = data.column(table.unit)
    empty_units = missing_values(unit)
    distinct = int(pc.count_distinct(unit).as_py())
    checks: list[dict[str, Any]] = [
        _check(
            "columns",
            None,
            passed=data.column_names == [c.name for c in table.columns],
            detail=f"{len(table.columns)} declared column(s), each with its declared type",
        ),
        _check(
            "unit_not_null",
            table.unit,
            passed=empty_units == 0,
            detail=f"{empty_units} row(s) without a privacy unit",
        ),
    ]
    if table.one_row_per_unit:
        checks.append(
            _check(
                "unit_unique",
                table.unit,
                passed=distinct == data.num_rows,
                detail=f"declared one row per unit: {distinct} distinct unit(s) in {data.num_rows} row(s)",
            )
        )
    for column in table.columns:
        if column.name == table.unit:
            continue
        checks.append(_nulls(column, data.column(column.name)))
        if column.domain is not None:
            checks.append(_domain(column, data.column(column.name)))
    return {
        "name": table.name,
        "rows": data.num_rows,
        "distinct_units": distinct,
        "checks": checks,
    }


def _nulls(column: ColumnDecl, values: pa.ChunkedArray) -> dict[str, Any]:
    missing = missing_values(values)
    rule = "allowed" if column.nullable else "declared nullable: false"
    return _check(
        "nulls",
        column.name,
        passed=column.nullable or missing == 0,
        detail=f"{missing} missing value(s) ({rule})",
    )


def _domain(column: ColumnDecl, values: pa.ChunkedArray) -> dict[str, Any]:
    domain = column.domain
    assert domain is not None
    outside: pa.ChunkedArray | None = None
    if domain.categories is not None:
        text = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
        allowed = pa.array(list(domain.categories), type=pa.string())
        outside = pc.invert(pc.fill_null(pc.is_in(text, value_set=allowed), True))
        declared = f"{len(domain.categories)} declared categor{'y' if len(domain.categories) == 1 else 'ies'}"
    else:
        for limit, compare in ((domain.low, pc.less), (domain.high, pc.greater)):
            if limit is not None:
                beyond = pc.fill_null(compare(values, pa.scalar(limit).cast(values.type)), False)
                outside = beyond if outside is None else pc.or_(outside, beyond)
        declared = f"the declared range [{domain.low}, {domain.high}]"
    count = 0 if outside is None else int(pc.sum(outside).as_py() or 0)
    return _check("domain", column.name, passed=count == 0, detail=f"{count} value(s) outside {declared}")


def _check(check: str, column: str | None, *, passed: bool, detail: str) -> dict[str, Any]:
    return {"check": check, "column": column, "passed": passed, "detail": detail}
