"""Turn whatever a job returned into plain data (JSON-compatible) for the output checker.

Only tables, arrays, numbers, strings, dates and lists/dicts of them are accepted; anything else
(functions, modules, groupby objects) is refused rather than stringified, so no object's internals
reach the checker's screen by accident. The total number of cells is capped.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from decimal import Decimal

import numpy as np
import pandas as pd

from executors.pyjobs.errors import OutputRejected

_MAX_DEPTH = 8


class _Budget:
    def __init__(self, cells: int) -> None:
        self.left = cells

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise OutputRejected("the result is too large for review; aggregate it further")


def to_plain(obj: object, *, max_cells: int) -> dict[str, object]:
    """Plain-data form of a job result.

    >>> to_plain(pd.DataFrame({"g": ["a"], "n": [np.int64(3)]}), max_cells=10)
    {'type': 'table', 'columns': ['g', 'n'], 'dtypes': ['str', 'int64'], 'rows': [['a', 3]]}
    """
    return _node(obj, _Budget(max_cells), 0)


def table_to_plain(frame: pd.DataFrame, *, max_cells: int) -> dict[str, object]:
    return _table(frame, _Budget(max_cells))


def _node(obj: object, budget: _Budget, depth: int) -> dict[str, object]:
    if depth > _MAX_DEPTH:
        raise OutputRejected("the result is nested too deeply for review")
    if isinstance(obj, pd.DataFrame):
        return _table(obj, budget)
    if isinstance(obj, pd.Series):
        return _table(obj.to_frame(name="value" if obj.name is None else obj.name), budget)
    if isinstance(obj, pd.Index):
        names = [str(n) if n is not None else "value" for n in obj.names]
        rows = obj.tolist() if obj.nlevels > 1 else [[v] for v in obj.tolist()]
        return _table(pd.DataFrame(rows, columns=names), budget)
    if isinstance(obj, (np.ndarray, pd.Categorical)):
        array = np.asarray(obj, dtype=object)
        budget.spend(max(array.size, 1))
        return {"type": "array", "shape": list(array.shape), "values": _nested(array.tolist())}
    if isinstance(obj, (list, tuple)):
        budget.spend(1)
        return {"type": "list", "items": [_node(v, budget, depth + 1) for v in obj]}
    if isinstance(obj, Mapping):
        budget.spend(1)
        return {"type": "dict", "items": [[_key(k), _node(v, budget, depth + 1)] for k, v in obj.items()]}
    budget.spend(1)
    return {"type": "value", "value": scalar(obj)}


def _table(frame: pd.DataFrame, budget: _Budget) -> dict[str, object]:
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
        frame = frame.reset_index()
    budget.spend(max(frame.shape[0] * frame.shape[1], 1))
    columns = [_key(c) for c in frame.columns]
    rows = [[scalar(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    return {"type": "table", "columns": columns, "dtypes": [str(t) for t in frame.dtypes], "rows": rows}


def _nested(values: object) -> object:
    if isinstance(values, list):
        return [_nested(v) for v in values]
    return scalar(values)


def _key(key: object) -> str:
    if isinstance(key, tuple):
        return "|".join(str(scalar(k)) for k in key)
    return str(scalar(key))


def scalar(value: object) -> object:
    """A single value as JSON-compatible data (NaN and missing become ``None``)."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (pd.Timedelta, dt.timedelta, pd.Interval, pd.Period, Decimal)):
        return str(value)
    if isinstance(value, complex):
        return [value.real, value.imag]
    raise OutputRejected(f"values of type {type(value).__name__} cannot be part of a result")
