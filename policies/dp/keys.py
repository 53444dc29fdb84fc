"""Group keys in a DP job's sealed record: written as JSON without losing their type, read back typed.

The sealed record (``policies.dp.replay.sealed_record``) is JSON. A ``DATE`` or ``TIMESTAMP`` key has no
JSON type, so it is written tagged, ``{"date": "2026-03-01"}`` or ``{"timestamp": "..."}`` (a
``DECIMAL`` as ``{"decimal": "1.50"}``, exactly; as the
cross-domain wire form carries group keys), and read back as a date or a timestamp. Replay then compares
keys by type, never as text: a ``DATE`` key matches only the same date, not the text ``'2026-03-01'``,
and an integer key never matches a text key that reads the same.
"""

from __future__ import annotations

import datetime as dt
import decimal
import numbers
from collections.abc import Mapping
from typing import Any

import pandas as pd


def plain(value: Any) -> Any:
    """``value`` as JSON can hold it: numpy scalars as Python numbers, dates and timestamps tagged.

    >>> plain(dt.date(2026, 3, 1)), plain(pd.Timestamp("2026-03-01 08:30"))
    ({'date': '2026-03-01'}, {'timestamp': '2026-03-01T08:30:00'})
    >>> import numpy as np
    >>> plain(np.int64(4)), plain("North"), plain(None)
    (4, 'North', None)
    """
    if isinstance(value, pd.Timestamp):
        return {"timestamp": value.isoformat()}
    if isinstance(value, dt.datetime):
        return {"timestamp": value.isoformat()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"decimal": str(value)}
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return plain(value.item())
    return value


def typed(value: Any) -> Any:
    """A value of the sealed record read back with its type (``plain``'s inverse).

    >>> typed({"date": "2026-03-01"}), typed(4), typed("North")
    (datetime.date(2026, 3, 1), 4, 'North')
    """
    if isinstance(value, Mapping):
        if set(value) == {"date"}:
            return dt.date.fromisoformat(str(value["date"]))
        if set(value) == {"timestamp"}:
            return pd.Timestamp(str(value["timestamp"]))
        if set(value) == {"decimal"}:
            return decimal.Decimal(str(value["decimal"]))
    return value


def released_frame(record: Mapping[str, Any]) -> pd.DataFrame:
    """The released table of a sealed record, its keys typed again."""
    released = record.get("released") or {}
    return pd.DataFrame({str(name): [typed(v) for v in values] for name, values in released.items()})


def key_of(value: Any) -> tuple[str, Any]:
    """A group-key value as a hashable pair of its kind and its value, so that keys compare by type:
    dates as dates, timestamps as timestamps, numbers as numbers (``1`` and ``1.0`` alike, never
    ``True``), text as text, every NULL alike.

    >>> key_of(dt.date(2026, 3, 1)) == key_of(typed({"date": "2026-03-01"}))
    True
    >>> key_of(3) == key_of(3.0), key_of(3) == key_of("3"), key_of(True) == key_of(1)
    (True, False, False)
    """
    value = _scalar(value)
    if value is None:
        return ("null", None)
    kind = _kind(value)
    return (kind, pd.Timestamp(value) if kind == "timestamp" else value)


def same_key(a: Any, b: Any) -> bool:
    """Whether two group-key values are the same key, compared by type (:func:`key_of`).

    >>> same_key(dt.date(2026, 3, 1), dt.date(2026, 3, 1)), same_key(dt.date(2026, 3, 1), "2026-03-01")
    (True, False)
    """
    return key_of(a) == key_of(b)


def _scalar(value: Any) -> Any:
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes | pd.Timestamp):
        return _scalar(value.item())
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, pd.Timestamp | dt.datetime):
        return "timestamp"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, numbers.Number):
        return "number"
    return type(value).__name__
