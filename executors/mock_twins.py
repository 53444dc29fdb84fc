"""Mock twins: synthetic tables generated from a declared schema and value domains only.

A twin is built from column names, types and declared domains (categories, numeric or date
ranges, string patterns) and a seed; it never reads a real row, so it can be handed out freely for
developing SQL and Python jobs in mock mode. Same schema and seed, same twin (byte for byte).

Pattern syntax (for VARCHAR columns without categories): ``#`` a digit, ``A`` an upper-case letter,
``a`` a lower-case letter, ``X`` a hex digit, ``\\`` escapes the next character; everything else is
literal. Example: ``"P-####"``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from executors.errors import ExecutionError

_DEFAULT_LOW, _DEFAULT_HIGH = 0.0, 1000.0
_DEFAULT_DATES = (dt.date(2000, 1, 1), dt.date(2025, 12, 31))
_INTEGER_TYPES = {
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "SMALLINT": pa.int16(),
    "TINYINT": pa.int8(),
    "HUGEINT": pa.int64(),
}
_FLOAT_TYPES = {"DOUBLE": pa.float64(), "FLOAT": pa.float32()}


class DomainLike(Protocol):
    """What a declared value domain offers (``policies.ValueDomain`` fits; ``pattern`` is optional)."""

    @property
    def categories(self) -> Sequence[str] | None: ...
    @property
    def low(self) -> float | dt.date | None: ...
    @property
    def high(self) -> float | dt.date | None: ...


class ColumnLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def domain(self) -> Any: ...


class TableLike(Protocol):
    @property
    def columns(self) -> Sequence[Any]: ...


@dataclass(frozen=True)
class MockDomain:
    """A value domain for mock data (the shape ``policies.ValueDomain`` has, plus a string pattern)."""

    categories: tuple[str, ...] | None = None
    low: float | dt.date | None = None
    high: float | dt.date | None = None
    pattern: str | None = None


@dataclass(frozen=True)
class MockColumn:
    name: str
    type: str
    domain: MockDomain | None = None


@dataclass(frozen=True)
class MockTable:
    name: str
    columns: tuple[MockColumn, ...]
    unit: str | None = None


class MockSchemaError(ExecutionError):
    """The schema cannot be turned into a twin (unknown type, empty or inverted range)."""

    code = "mock-schema-invalid"


def mock_table(table: TableLike, n_rows: int, seed: int) -> pa.Table:
    """A seeded synthetic table with the schema's columns, each drawn from its declared domain.

    The unit column (``table.unit`` when present) gets distinct-looking tokens shared by a few rows
    each, so per-unit counts in mock mode behave like real data.

    >>> t = MockTable("t", (MockColumn("sex", "VARCHAR", MockDomain(categories=("f", "m"))),
    ...                     MockColumn("age", "INTEGER", MockDomain(low=0, high=99))))
    >>> twin = mock_table(t, 5, seed=1)
    >>> twin.num_rows, set(twin.column("sex").to_pylist()) <= {"f", "m"}
    (5, True)
    """
    if n_rows < 0:
        raise MockSchemaError("n_rows must not be negative")
    unit = getattr(table, "unit", None)
    arrays: dict[str, pa.Array] = {}
    for index, column in enumerate(table.columns):
        # One generator per column, seeded by (seed, position): adding a column does not reshuffle others.
        rng = np.random.default_rng([seed, index])
        if unit is not None and column.name == unit:
            arrays[column.name] = _units(column, n_rows, rng)
        else:
            arrays[column.name] = _column(column, n_rows, rng)
    return pa.table(arrays)


def _units(column: Any, n_rows: int, rng: np.random.Generator) -> pa.Array:
    n_units = max(1, n_rows // 3)
    ids = rng.integers(0, n_units, size=n_rows)
    kind = column.type.upper()
    if kind in _INTEGER_TYPES:
        return pa.array(ids + 1, type=_INTEGER_TYPES[kind])
    return pa.array([f"mock-{i:08d}" for i in ids], type=pa.string())


def _column(column: Any, n_rows: int, rng: np.random.Generator) -> pa.Array:
    kind = column.type.upper().split("(")[0].strip()
    domain = column.domain
    categories = getattr(domain, "categories", None)
    low, high = getattr(domain, "low", None), getattr(domain, "high", None)
    if categories:
        values = list(categories)
        picked = [values[i] for i in rng.integers(0, len(values), size=n_rows)]
        return _cast(picked, kind, column.name)
    if kind in _INTEGER_TYPES:
        lo, hi = _range(low, high, column.name, default=(_DEFAULT_LOW, _DEFAULT_HIGH))
        return pa.array(
            rng.integers(int(np.ceil(lo)), int(np.floor(hi)) + 1, size=n_rows), type=_INTEGER_TYPES[kind]
        )
    if kind in _FLOAT_TYPES or kind == "DECIMAL":
        lo, hi = _range(low, high, column.name, default=(_DEFAULT_LOW, _DEFAULT_HIGH))
        return pa.array(
            np.round(rng.uniform(lo, hi, size=n_rows), 2), type=_FLOAT_TYPES.get(kind, pa.float64())
        )
    if kind == "BOOLEAN":
        return pa.array(rng.integers(0, 2, size=n_rows).astype(bool))
    if kind in {"DATE", "TIMESTAMP"}:
        first, last = _date_range(low, high, column.name)
        days = rng.integers(0, (last - first).days + 1, size=n_rows)
        dates = [first + dt.timedelta(days=int(d)) for d in days]
        if kind == "DATE":
            return pa.array(dates, type=pa.date32())
        seconds = rng.integers(0, 86_400, size=n_rows)
        stamps = [
            dt.datetime.combine(d, dt.time()) + dt.timedelta(seconds=int(s))
            for d, s in zip(dates, seconds, strict=True)
        ]
        return pa.array(stamps, type=pa.timestamp("us"))
    if kind == "VARCHAR":
        pattern = getattr(domain, "pattern", None) or f"{column.name[:8]}-####"
        return pa.array([_from_pattern(pattern, rng) for _ in range(n_rows)], type=pa.string())
    raise MockSchemaError(f"column {column.name!r} has type {column.type!r}, which mock twins do not support")


def _cast(values: list[Any], kind: str, name: str) -> pa.Array:
    try:
        if kind in _INTEGER_TYPES:
            return pa.array([int(v) for v in values], type=_INTEGER_TYPES[kind])
        if kind in _FLOAT_TYPES:
            return pa.array([float(v) for v in values], type=_FLOAT_TYPES[kind])
        if kind == "DATE":
            return pa.array([dt.date.fromisoformat(str(v)) for v in values], type=pa.date32())
        if kind == "BOOLEAN":
            return pa.array([str(v).lower() in {"true", "1", "yes"} for v in values])
    except ValueError as exc:
        raise MockSchemaError(f"column {name!r}: a declared category does not fit type {kind}") from exc
    return pa.array([str(v) for v in values], type=pa.string())


def _range(low: Any, high: Any, name: str, *, default: tuple[float, float]) -> tuple[float, float]:
    lo = default[0] if low is None else float(low)
    hi = max(default[1], lo) if high is None else float(high)
    if hi < lo:
        raise MockSchemaError(f"column {name!r}: the declared range is empty (low > high)")
    return lo, hi


def _date_range(low: Any, high: Any, name: str) -> tuple[dt.date, dt.date]:
    first = _as_date(low) or _DEFAULT_DATES[0]
    last = _as_date(high) or max(_DEFAULT_DATES[1], first)
    if last < first:
        raise MockSchemaError(f"column {name!r}: the declared date range is empty")
    return first, last


def _as_date(value: Any) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def _from_pattern(pattern: str, rng: np.random.Generator) -> str:
    out: list[str] = []
    escaped = False
    for ch in pattern:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "#":
            out.append(str(rng.integers(0, 10)))
        elif ch == "A":
            out.append(chr(ord("A") + int(rng.integers(0, 26))))
        elif ch == "a":
            out.append(chr(ord("a") + int(rng.integers(0, 26))))
        elif ch == "X":
            out.append("0123456789abcdef"[int(rng.integers(0, 16))])
        else:
            out.append(ch)
    return "".join(out)
