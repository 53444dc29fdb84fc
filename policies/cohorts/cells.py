"""The cells of a result table as the ledger sees them: the sketch columns of each row."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from policies.cohorts.decisions import Cell
from policies.cohorts.sketch import CohortSketch
from policies.model import Disclosure

SKETCH = "_sbx_sketch"
UNITS = "_sbx_units"
HIDDEN = "_sbx_"


def sketch_columns(columns: Iterable[object]) -> list[str]:
    """The hidden sketch columns (``_sbx_sketch``, ``_sbx_sketch_1``, ...), in order.

    >>> sketch_columns(["n", "_sbx_units", "_sbx_sketch", "_sbx_sketch_1"])
    ['_sbx_sketch', '_sbx_sketch_1']
    """
    return [str(c) for c in columns if str(c) == SKETCH or str(c).startswith(SKETCH + "_")]


def releasable_positions(frame: pd.DataFrame, disclosure: Disclosure) -> list[int]:
    """The rows of a result that the output check would release: every hidden unit count at least
    ``min_units`` (the query already removed the others), at most ``max_rows`` of them, in order.

    >>> frame = pd.DataFrame({"n": [40, 3, 12], "_sbx_units": [40, 3, 12]})
    >>> releasable_positions(frame, Disclosure(min_units=10, max_rows=5))
    [0, 2]
    """
    units = [c for c in frame.columns if str(c) == UNITS or str(c).startswith(UNITS + "_")]
    if not units:
        return []
    counts = frame[units].apply(pd.to_numeric, errors="coerce").fillna(0).min(axis=1)
    return [i for i, n in enumerate(counts) if n >= disclosure.min_units][: disclosure.max_rows]


def cells_of(frame: pd.DataFrame, rows: Iterable[int] | None = None) -> list[Cell]:
    """One :class:`Cell` per row of ``frame`` (or per position in ``rows``: only the rows that would be
    released), from its sketch columns; a NULL sketch (no cohort in that slot) is left out. Each cell
    also keeps its slot names and the row's visible values (every column but the hidden ``_sbx_``
    ones), which say what its rows add up to (``margins``).

    >>> from policies.cohorts.sketch import CohortSketch
    >>> blob = CohortSketch(12, (1, 2, 3)).to_bytes()
    >>> cells = cells_of(pd.DataFrame({"n": [12, 3], "_sbx_sketch": [blob, None]}))
    >>> [([c.units for c in cell.cohorts], cell.slots, cell.row) for cell in cells]
    [([12], ('_sbx_sketch',), (12,)), ([], (), (3,))]
    """
    names = sketch_columns(frame.columns)
    visible = [c for c in frame.columns if not str(c).startswith(HIDDEN)]
    positions = range(len(frame)) if rows is None else rows
    values = frame[visible].astype(object).where(frame[visible].notna(), None)
    out = []
    for position in positions:
        blobs = [(name, frame[name].iloc[position]) for name in names]
        present = [(name, bytes(b)) for name, b in blobs if isinstance(b, bytes)]
        out.append(
            Cell(
                tuple(CohortSketch.from_bytes(b) for _, b in present),
                slots=tuple(name for name, _ in present),
                row=tuple(values.iloc[position].tolist()),
            )
        )
    return out
