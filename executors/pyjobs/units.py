"""How many units (people) are behind a tracked value, for the disclosure report.

Each row space keeps the unit of every row; its units are turned into integer codes once (on first
use) so that counting distinct units per value or per group is a pass over integers, not strings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from executors.pyjobs.taint import Tracked

_PANDAS = (pd.DataFrame, pd.Series)


def unit_codes(box: Tracked) -> np.ndarray | None:
    """The unit of each row of ``box`` as an integer code (None: not rows of people, or not known)."""
    rows = box.prov.rows
    if rows is None or not rows.people or rows.units is None:
        return None
    codes = rows.cache.get("codes")
    if codes is None:
        values, _ = pd.factorize(rows.units, use_na_sentinel=True)
        codes = pd.Series(values, index=rows.units.index)
        rows.cache["codes"] = codes
    labels = box.value.index if isinstance(box.value, _PANDAS) else box.prov.positions
    if labels is None:
        return None
    if labels is codes.index or labels.equals(codes.index):
        return np.asarray(codes.to_numpy())
    return np.asarray(codes.reindex(labels).fillna(-1).to_numpy(dtype=np.int64))


def units_behind(box: Tracked) -> int | None:
    """Distinct units behind the rows of ``box``.

    >>> from executors.pyjobs.taint import Prov, RowSpace
    >>> frame = pd.DataFrame({"u": ["a", "b", "a"], "x": [1, 2, 3]})
    >>> units_behind(Tracked(frame, Prov(rows=RowSpace("t", people=True, units=frame["u"]))))
    2
    """
    codes = unit_codes(box)
    if codes is None:
        return None
    return int(pd.unique(codes[codes >= 0]).size)


def small_groups(box: Tracked, by: Any, *, min_units: int) -> int | None:
    """How many groups of ``box.groupby(by)`` have fewer than ``min_units`` units (None: not known).

    >>> from executors.pyjobs.taint import Prov, RowSpace
    >>> frame = pd.DataFrame({"u": ["a", "b", "c", "c"], "g": ["x", "x", "y", "y"]})
    >>> box = Tracked(frame, Prov(rows=RowSpace("t", people=True, units=frame["u"])))
    >>> small_groups(box, "g", min_units=2)
    1
    """
    codes = unit_codes(box)
    if codes is None:
        return None
    frame = box.value
    try:
        if isinstance(frame, pd.DataFrame):
            keys = (
                [by]
                if isinstance(by, (str, pd.Series))
                else list(by)
                if isinstance(by, (list, tuple))
                else [by]
            )
            resolved = [frame[k] if isinstance(k, str) else k for k in keys]
            groups = frame.groupby(resolved, dropna=False, observed=True, sort=False).ngroup().to_numpy()
        else:
            groups = frame.groupby(by, dropna=False, observed=True, sort=False).ngroup().to_numpy()
    except (KeyError, ValueError, TypeError):
        return None
    known = (codes >= 0) & (groups >= 0)
    # pandas' hash-based unique: several times faster than numpy's on a few hundred thousand integers.
    pairs = pd.unique(groups[known].astype(np.int64) * (int(codes.max(initial=0)) + 1) + codes[known])
    per_group = np.bincount(
        pairs // (int(codes.max(initial=0)) + 1), minlength=int(groups.max(initial=-1)) + 1
    )
    return int((per_group < min_units).sum())


def condition_sides(box: Tracked) -> tuple[int, int] | None:
    """For a boolean series over rows of people: how many units have a row where it is true, and how
    many a row where it is false (None: not such a series, or units not known).

    >>> from executors.pyjobs.taint import Prov, RowSpace
    >>> units = pd.Series(["a", "b", "c", "c"])
    >>> cond = pd.Series([True, False, False, False])
    >>> condition_sides(Tracked(cond, Prov(rows=RowSpace("t", people=True, units=units))))
    (1, 2)
    """
    raw = box.value
    if not isinstance(raw, pd.Series) or not pd.api.types.is_bool_dtype(raw.dtype):
        return None
    codes = unit_codes(box)
    if codes is None:
        return None
    truth = raw.to_numpy(dtype=bool, na_value=False)
    known = codes >= 0
    return int(pd.unique(codes[truth & known]).size), int(pd.unique(codes[~truth & known]).size)
