"""Charts for a released result, drawn as SVG on the server (no script, no inline style).

A chart shows what the table beside it shows, nothing more. A result whose first column is a date or
time gets a line chart (time across, values up); any other grouped aggregate gets a bar chart, the first
text column labelling the bars and the first numeric column setting their length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
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


# --- line charts for time series ----------------------------------------------------------------------

MAX_POINTS = 1000
MAX_SERIES = 6
PLOT_WIDTH = 440  # the plot area, in SVG units, right of the value axis
PLOT_HEIGHT = 200
LEFT = 70  # room for the value axis labels
TOP = 10
TIME_TYPES = frozenset({"date", "timestamp"})


@dataclass(frozen=True)
class Series:
    name: str  # the value column, or the group's label when a text column splits the rows
    points: str  # "x,y x,y ..." for <polyline points>
    dots: tuple[tuple[float, float, str, float], ...]  # (x, y, time label, value) for each point's title
    css: str  # series-0 .. series-5: colour and dash come from the stylesheet, never inline


@dataclass(frozen=True)
class LineChart:
    time_column: str
    value_column: str
    series: tuple[Series, ...]
    first: str  # labels of the time axis' ends
    last: str
    low: float  # the value axis' ends
    high: float
    width: int = LEFT + PLOT_WIDTH + 10
    height: int = TOP + PLOT_HEIGHT + 30
    left: int = LEFT
    top: int = TOP
    bottom: int = TOP + PLOT_HEIGHT
    right: int = LEFT + PLOT_WIDTH


def line_chart(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], types: Sequence[str] | None = None
) -> LineChart | None:
    """Lines over time when the first column is a date or time: one line per numeric column, or, when a
    text column splits the rows (grouped by time and district), one line per group of the first numeric
    column. None when the first column is not a time, or there are fewer than two points.

    >>> chart = line_chart(["week", "n"], [["2026-01-12", 30], ["2026-01-05", 10]], ["date", "integer"])
    >>> chart.series[0].points, (chart.first, chart.last, chart.low, chart.high)
    ('70.0,143.3 510.0,10.0', ('2026-01-05', '2026-01-12', 0.0, 30.0))
    >>> split = line_chart(["day", "district", "n"], [["2026-01-01", "N", 1], ["2026-01-02", "N", 2],
    ...                    ["2026-01-01", "S", 3], ["2026-01-02", "S", 4]])
    >>> [s.name for s in split.series], split.value_column
    (['N', 'S'], 'n')
    >>> line_chart(["district", "n"], [["North", 1], ["South", 2]]) is None
    True
    """
    if len(rows) < 2 or len(rows) > MAX_POINTS or not columns:
        return None
    times = [_as_time(row[0]) for row in rows]
    declared = types is not None and len(types) == len(columns) and types[0] in TIME_TYPES
    if any(t is None for t in times) or not (declared or all(isinstance(row[0], str) for row in rows)):
        return None
    stamps = [t for t in times if t is not None]
    numeric = [i for i in range(1, len(columns)) if _is_number_column(rows, i)]
    if not numeric:
        return None
    split_at = next((i for i in range(1, len(columns)) if _is_text_column(rows, i)), None)
    groups: dict[str, list[tuple[float, float, str]]] = {}
    for row, stamp in zip(rows, stamps, strict=True):
        if split_at is not None:
            label = "—" if row[split_at] is None else str(row[split_at])
            named = [(label, numeric[0])]
        else:
            named = [(columns[i], i) for i in numeric]
        for name, column in named:
            if row[column] is not None:
                groups.setdefault(name, []).append((stamp, float(row[column]), str(row[0])))
    if not groups or len(groups) > MAX_SERIES:
        return None
    start, end = min(stamps), max(stamps)
    values = [v for points in groups.values() for _, v, _ in points]
    low, high = min(0.0, *values), max(0.0, *values)
    span_t, span_v = (end - start) or 1.0, (high - low) or 1.0

    def at(stamp: float, value: float) -> tuple[float, float]:
        x = LEFT + (stamp - start) / span_t * PLOT_WIDTH
        y = TOP + PLOT_HEIGHT - (value - low) / span_v * PLOT_HEIGHT
        return round(x, 1), round(y, 1)

    series = []
    for n, (name, points) in enumerate(groups.items()):
        ordered = sorted(points)
        placed = [(*at(t, v), label, v) for t, v, label in ordered]
        series.append(
            Series(
                name=name,
                points=" ".join(f"{x},{y}" for x, y, _, _ in placed),
                dots=tuple(placed),
                css=f"series-{n}",
            )
        )
    first = str(rows[stamps.index(start)][0])
    last = str(rows[stamps.index(end)][0])
    value_column = columns[numeric[0]] if split_at is not None or len(numeric) == 1 else ""
    return LineChart(columns[0], value_column, tuple(series), first, last, low, high)


def _as_time(value: Any) -> float | None:
    """Seconds since the epoch of a date, a datetime or its ISO text (naive times read as UTC); None for
    anything else (a number is never taken for a year: it could be any count)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and 8 <= len(value) <= 40 and value[:4].isdigit() and value[4:5] == "-":
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
