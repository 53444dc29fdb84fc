"""Item reads on tracked values: which selections keep rows row-local.

A frame's columns chosen by label keep their taint; rows chosen by a mask that lines up with them
(computed from the same rows) keep every column's taint; rows chosen by position or by label
(``.iloc``, ``.iat``, ``.at``, ``.loc[label]``, slices, a literal list) and any single value taken
from data are tainted. A plain container read with a data key gives a tainted value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np
import pandas as pd

from executors.pyjobs.taint import (
    ACCESSORS,
    UNKNOWN,
    Prov,
    Taint,
    Tracked,
    TrackedIndexer,
    deep_unwrap,
    is_data,
    is_scalar,
    join,
    positions_of,
    unwrap,
)

if TYPE_CHECKING:
    from executors.pyjobs.tracking import Tracker


def getitem(tracker: Tracker, obj: object, key: object) -> Any:
    if not isinstance(obj, Tracked):
        if not is_data(key):
            return tracker.guards.getitem(obj, key)
        raw_key, key_taint = deep_unwrap(key)
        found = tracker.guards.getitem(obj, raw_key)
        taint = join(key_taint, deep_unwrap(found)[1]) or tracker.taint("a value looked up by a data value")
        return Tracked(unwrap(found), Prov(taint))
    raw, prov = obj.value, obj.prov
    raw_key, key_taint = deep_unwrap(key)
    value = tracker.guards.getitem(raw, raw_key)
    if isinstance(obj, TrackedIndexer):
        return _indexed(tracker, obj, key, value)
    if isinstance(raw, ACCESSORS):
        return Tracked(value, Prov(join(prov.taint, key_taint), prov.rows, sources=prov.sources))
    if isinstance(raw, pd.DataFrame):
        if not is_data(key) and _labels_only(raw_key, raw.columns):
            return _columns(tracker, obj, raw_key, value)
        return _rows(tracker, obj, key, value, what="a row selection")
    if isinstance(raw, pd.Series):
        return _rows(tracker, obj, key, value, what="a value taken by label")
    if isinstance(raw, np.ndarray):
        return Tracked(
            value, Prov(join(prov.any_taint(), key_taint) or tracker.taint("positional access to an array"))
        )
    return Tracked(value, Prov(join(prov.any_taint(), key_taint) or tracker.taint("a value taken from data")))


def _columns(tracker: Tracker, box: Tracked, key: object, value: Any) -> Tracked:
    prov = box.prov
    if isinstance(value, pd.Series):
        return Tracked(value, Prov(prov.column(key, unknown=UNKNOWN), prov.rows, sources=prov.source_of(key)))
    columns = {c: prov.column(c, unknown=UNKNOWN) for c in value.columns}
    return Tracked(
        value, Prov(None, prov.rows, None, columns, column_sources=prov.sources_for(value.columns))
    )


def _rows(tracker: Tracker, box: Tracked, key: object, value: Any, *, what: str) -> Tracked:
    """``frame[mask]`` / ``series[mask]``: a row filter when the mask lines up with the rows."""
    prov = box.prov
    if _is_mask(key) and tracker.misaligned(prov.rows, positions_of(box), key) is None:
        return same_rows(tracker, box, value, key.prov.any_taint())
    taint = join(deep_unwrap(key)[1], tracker.taint(what if is_data(key) else f"positional {what}"))
    return Tracked(value, Prov(join(prov.any_taint(), taint)))


def _indexed(tracker: Tracker, indexer: TrackedIndexer, key: object, value: Any) -> Tracked:
    owner = indexer.owner
    if indexer.kind != "loc":
        taint = join(owner.prov.any_taint(), deep_unwrap(key)[1]) or tracker.taint(f".{indexer.kind}")
        return Tracked(value, Prov(taint))
    rows, columns = _split_loc_key(key)
    row_taint = _row_selector(tracker, owner, rows)
    if row_taint is None and isinstance(value, pd.DataFrame):
        return same_rows(tracker, owner, value, deep_unwrap(rows)[1])
    if row_taint is None and isinstance(value, pd.Series):
        if isinstance(owner.value, pd.Series):
            return same_rows(tracker, owner, value, deep_unwrap(rows)[1])
        if is_scalar(columns) and not is_data(columns):
            column_taint = join(owner.prov.column(columns, unknown=UNKNOWN), deep_unwrap(rows)[1])
            sources = owner.prov.source_of(columns)
            return Tracked(value, Prov(column_taint, owner.prov.rows, sources=sources))
    taint = join(deep_unwrap(key)[1], row_taint, owner.prov.any_taint()) or tracker.taint(".loc")
    return Tracked(value, Prov(taint))


def _row_selector(tracker: Tracker, owner: Tracked, rows: object) -> Taint | None:
    """None when ``rows`` keeps rows by their own values (``:`` or an aligned mask)."""
    if isinstance(rows, slice) and rows == slice(None):
        return None
    if _is_mask(rows):
        return tracker.misaligned(owner.prov.rows, positions_of(owner), rows)
    return join(deep_unwrap(rows)[1], tracker.taint(".loc rows chosen by label or position"))


def same_rows(tracker: Tracker, box: Tracked, value: Any, extra: Taint | None) -> Tracked:
    """``value`` holds some of ``box``'s rows, whole: same space, columns keep their taint."""
    prov = box.prov
    if isinstance(value, pd.DataFrame):
        source = prov.columns or {}
        columns = {c: source.get(c, UNKNOWN) if prov.columns is not None else UNKNOWN for c in value.columns}
        column_sources = prov.sources_for(value.columns)
        if isinstance(box.value, pd.Series):
            columns = dict.fromkeys(value.columns, prov.taint)
            column_sources = None if prov.sources is None else dict.fromkeys(value.columns, prov.sources)
        return Tracked(
            value, Prov(join(prov.taint, extra), prov.rows, None, columns, column_sources=column_sources)
        )
    if isinstance(value, pd.Series):
        taint = prov.taint if isinstance(box.value, pd.Series) else prov.any_taint()
        sources = prov.sources if isinstance(box.value, pd.Series) else None
        return Tracked(value, Prov(join(taint, extra), prov.rows, sources=sources))
    return Tracked(value, Prov(join(prov.any_taint(), extra) or tracker.taint("a value taken from data")))


def _is_mask(key: object) -> TypeGuard[Tracked]:
    if not isinstance(key, Tracked):
        return False
    raw = key.value
    return isinstance(raw, pd.Series) and pd.api.types.is_bool_dtype(raw.dtype)


def _labels_only(key: object, columns: pd.Index) -> bool:
    if isinstance(key, (list, tuple, pd.Index)):
        return all(is_scalar(k) and k in columns for k in key)
    return is_scalar(key) and key in columns


def _split_loc_key(key: object) -> tuple[object, object]:
    raw = key.value if isinstance(key, Tracked) else key
    if isinstance(raw, tuple) and len(raw) == 2:
        return raw[0], raw[1]
    return key, slice(None)
