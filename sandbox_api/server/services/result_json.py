"""A released table as JSON: columns, rows and each column's type, so that types survive the trip.

pandas' own JSON writer turns the engine's exact integer sums (``DECIMAL(38,0)`` objects) into
strings and DATE values into timestamps (``2020-01-01T00:00:00.000``). Here an integral decimal column
becomes JSON integers, any other decimal column JSON numbers, and a DATE column ``YYYY-MM-DD``; the
type names let a client rebuild the same dtypes (``sandbox_api/client/results.py``).
"""

from __future__ import annotations

import datetime
import decimal
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

# The type names a released column can have (the client maps each to a pandas dtype).
INTEGER, FLOAT, BOOLEAN, DATE, TIMESTAMP, STRING = (
    "integer",
    "float",
    "boolean",
    "date",
    "timestamp",
    "string",
)


@dataclass(frozen=True)
class JsonTable:
    columns: list[str]
    rows: list[list[Any]]
    types: list[str]


def json_table(table: pd.DataFrame) -> JsonTable:
    """``table`` as JSON-ready columns, rows and type names.

    >>> from decimal import Decimal
    >>> frame = pd.DataFrame({"year": [datetime.date(1965, 1, 1)], "total": [Decimal("7")],
    ...                       "mean": [3.5], "n": [2]})
    >>> out = json_table(frame)
    >>> out.rows, out.types
    ([['1965-01-01', 7, 3.5, 2]], ['date', 'integer', 'float', 'integer'])
    """
    # pandas' writer is fast and right for numbers, strings, booleans and timestamps; only the object
    # columns it gets wrong (decimals, dates) are rendered again from the values themselves.
    body = json.loads(table.to_json(orient="split", index=False, date_format="iso"))
    rows: list[list[Any]] = [list(row) for row in body["data"]]
    types: list[str] = []
    for index, column in enumerate(table.columns):
        values = table[column]
        kind = _type_of(values)
        types.append(kind)
        if values.dtype == object and kind in {INTEGER, FLOAT, DATE}:
            for row, value in zip(rows, values, strict=True):
                row[index] = _plain(value)
    return JsonTable(columns=[str(c) for c in body["columns"]], rows=rows, types=types)


_BY_DTYPE_KIND = {"b": BOOLEAN, "i": INTEGER, "u": INTEGER, "f": FLOAT, "M": TIMESTAMP}


def _type_of(values: pd.Series) -> str:
    # The dtype's one-letter kind is enough for every column but object ones (and far cheaper than
    # pandas' type predicates, on the path of every job).
    known = _BY_DTYPE_KIND.get(values.dtype.kind)
    if known is not None:
        return known
    sample = next((v for v in values if v is not None and not _is_missing(v)), None)
    if isinstance(sample, decimal.Decimal):
        integral = all(_is_missing(v) or v == v.to_integral_value() for v in values)
        return INTEGER if integral else FLOAT
    if isinstance(sample, datetime.datetime):
        return TIMESTAMP
    if isinstance(sample, datetime.date):
        return DATE
    if isinstance(sample, bool):
        return BOOLEAN
    if isinstance(sample, int):
        return INTEGER
    if isinstance(sample, float):
        return FLOAT
    return STRING


def _plain(value: Any) -> Any:
    if value is None or _is_missing(value):
        return None
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or other container: present
        return False
