"""Deterministic form of a result table, for receipts and replay (docs/design.md §10)."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import math
from typing import Any

import pandas as pd

SIGNIFICANT_DIGITS = 12


def canonical_value(value: Any) -> Any:
    """One cell in canonical form: None for missing, floats as repr of 12 significant digits, ISO dates.

    >>> canonical_value(0.1 + 0.2), canonical_value(dt.date(2026, 1, 2)), canonical_value(float("nan"))
    ('0.3', '2026-01-02', None)
    """
    if value is None or value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # numpy scalar -> Python
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(float(f"{value:.{SIGNIFICANT_DIGITS}g}"))
    if isinstance(value, decimal.Decimal):
        return canonical_value(float(value)) if value == value else None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def canonical_result(df: pd.DataFrame) -> dict[str, Any]:
    """Columns (in the order produced), their types, and rows sorted by their canonical JSON.

    >>> canonical_result(pd.DataFrame({"b": [2, 1], "a": ["x", None]}))
    {'columns': ['b', 'a'], 'types': ['integer', 'string'], 'rows': [[1, None], [2, 'x']]}
    """
    columns = [str(c) for c in df.columns]
    rows = [[canonical_value(v) for v in row] for row in df.itertuples(index=False, name=None)]
    rows.sort(key=lambda r: json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    return {"columns": columns, "types": [_logical_type(df[c]) for c in df.columns], "rows": rows}


def _logical_type(series: pd.Series) -> str:
    """A pandas-version-independent type name (dtype names changed between pandas 2 and 3)."""
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_float_dtype(series):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "timestamp"
    values = [v for v in series if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if values and all(isinstance(v, dt.date) and not isinstance(v, dt.datetime) for v in values):
        return "date"
    if values and all(isinstance(v, decimal.Decimal) for v in values):
        return "decimal"
    return "string"


def result_hash(df: pd.DataFrame) -> str:
    """SHA-256 (hex) of the canonical JSON of ``canonical_result(df)``.

    >>> result_hash(pd.DataFrame({"n": [1, 2]})) == result_hash(pd.DataFrame({"n": [2, 1]}))
    True
    """
    body = json.dumps(canonical_result(df), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()
