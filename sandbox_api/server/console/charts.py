"""A bar chart for a grouped aggregate, drawn as SVG on the server (no script, no inline style).

The chart shows what the table beside it shows, nothing more: the first text column labels the bars and
the first numeric column sets their length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_BARS = 30
WIDTH = 320  # the longest bar, in SVG units


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    length: float
    y: int


@dataclass(frozen=True)
class Chart:
    label_column: str
    value_column: str
    bars: tuple[Bar, ...]
    height: int


def bar_chart(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Chart | None:
    """Bars for (first text column, first numeric column), or None when the result has no such pair.

    >>> chart = bar_chart(["district", "n"], [["North", 40], ["South", 20], [None, 5]])
    >>> [(b.label, b.length) for b in chart.bars]
    [('North', 320.0), ('South', 160.0), ('—', 40.0)]
    >>> bar_chart(["n"], [[1]]) is None
    True
    """
    if not rows or len(rows) > MAX_BARS:
        return None
    label_at = next((i for i, _ in enumerate(columns) if _is_text_column(rows, i)), None)
    value_at = next((i for i, _ in enumerate(columns) if _is_number_column(rows, i)), None)
    if label_at is None or value_at is None:
        return None
    values = [float(row[value_at] or 0) for row in rows]
    top = max((abs(v) for v in values), default=0.0) or 1.0
    bars = tuple(
        Bar(
            label="—" if row[label_at] is None else str(row[label_at]),
            value=value,
            length=round(abs(value) / top * WIDTH, 1),
            y=i * 24,
        )
        for i, (row, value) in enumerate(zip(rows, values, strict=True))
    )
    return Chart(columns[label_at], columns[value_at], bars, height=len(bars) * 24)


def _is_text_column(rows: Sequence[Sequence[Any]], at: int) -> bool:
    return all(row[at] is None or isinstance(row[at], str) for row in rows)


def _is_number_column(rows: Sequence[Sequence[Any]], at: int) -> bool:
    return all(
        row[at] is None or (isinstance(row[at], int | float) and not isinstance(row[at], bool))
        for row in rows
    ) and any(row[at] is not None for row in rows)
