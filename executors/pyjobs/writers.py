"""Write proxies for tracked values: an assignment changes the value and its provenance together.

``df[col] = v`` gives ``col`` the taint of ``v`` (a scalar broadcasts; a series or array must line
up with ``df``'s rows); ``df.loc[mask, col] = v`` adds the taint of the mask and of ``v`` to what
``col`` already had (the other rows keep their values); positional writers (``.iloc``, ``.iat``,
``.at``) and writes to rows chosen by label taint the columns they touch. The unit column stays
read-only (the guards' rule). A container written with a data key keeps the key's taint on the
stored value, so a later look-up cannot launder it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from executors.pyjobs.taint import (
    Prov,
    RowSpace,
    Taint,
    Tracked,
    TrackedIndexer,
    deep_unwrap,
    is_data,
    join,
    sources_of,
)

if TYPE_CHECKING:
    from executors.pyjobs.tracking import Tracker


class ContainerWriter:
    """``d[k] = v`` on a plain dict or list: a data key taints the stored value."""

    __slots__ = ("_sbx_target",)

    def __init__(self, target: dict[Any, Any] | list[Any]) -> None:
        object.__setattr__(self, "_sbx_target", target)

    def __setitem__(self, key: object, value: object) -> None:
        target = object.__getattribute__(self, "_sbx_target")
        if is_data(key):
            raw_key, taint = deep_unwrap(key)
            value_taint = deep_unwrap(value)[1]
            value = Tracked(
                deep_unwrap(value)[0],
                Prov(join(taint, value_taint) or Taint("a value stored under a data key")),
            )
            key = raw_key
        target[key] = value

    def __delitem__(self, key: object) -> None:
        target = object.__getattribute__(self, "_sbx_target")
        del target[deep_unwrap(key)[0]]


class FrameWriter:
    """``df[col] = v``, ``del df[col]``, ``df.columns = [...]`` on a tracked frame."""

    __slots__ = ("_sbx_box", "_sbx_tracker")

    def __init__(self, tracker: Tracker, box: Tracked) -> None:
        object.__setattr__(self, "_sbx_tracker", tracker)
        object.__setattr__(self, "_sbx_box", box)

    def __setitem__(self, key: object, value: object) -> None:
        tracker: Tracker = object.__getattribute__(self, "_sbx_tracker")
        tracker.set_column(object.__getattribute__(self, "_sbx_box"), key, value)

    def __delitem__(self, key: object) -> None:
        tracker: Tracker = object.__getattribute__(self, "_sbx_tracker")
        box: Tracked = object.__getattribute__(self, "_sbx_box")
        raw_key = deep_unwrap(key)[0]
        tracker.guards.write(box.value).__delitem__(raw_key)
        if is_data(key):
            box.prov = box.prov.tainted(
                deep_unwrap(key)[1] or tracker.taint("a column dropped by a data value")
            )

    def __setattr__(self, name: str, value: object) -> None:
        tracker: Tracker = object.__getattribute__(self, "_sbx_tracker")
        box: Tracked = object.__getattribute__(self, "_sbx_box")
        frame: pd.DataFrame = box.value
        old = list(frame.columns)
        setattr(tracker.guards.write(frame), name, deep_unwrap(value)[0])
        prov = box.prov
        if is_data(value):
            box.prov = prov.tainted(deep_unwrap(value)[1] or tracker.taint(f"{name} set from data"))
        elif name == "columns" and prov.columns is not None and len(old) == len(frame.columns):
            columns = {new: prov.columns.get(was, None) for was, new in zip(old, frame.columns, strict=True)}
            box.prov = Prov(prov.taint, prov.rows, None, columns)
        elif name == "index":
            space = RowSpace("re-indexed rows", people=prov.rows.people if prov.rows else True)
            box.prov = Prov(tracker.taint("rows re-indexed by position"), space, None, prov.columns)


class SeriesWriter:
    """``s[mask] = v`` on a tracked series."""

    __slots__ = ("_sbx_box", "_sbx_tracker")

    def __init__(self, tracker: Tracker, box: Tracked) -> None:
        object.__setattr__(self, "_sbx_tracker", tracker)
        object.__setattr__(self, "_sbx_box", box)

    def __setitem__(self, key: object, value: object) -> None:
        tracker: Tracker = object.__getattribute__(self, "_sbx_tracker")
        box: Tracked = object.__getattribute__(self, "_sbx_box")
        row_taint = _selector_taint(tracker, box, key)
        value_taint = tracker.value_taint(box, value)
        tracker.guards.write(box.value)[deep_unwrap(key)[0]] = deep_unwrap(value)[0]
        taint = join(box.prov.taint, row_taint, value_taint)
        box.prov = Prov(taint, box.prov.rows)

    def __setattr__(self, name: str, value: object) -> None:
        tracker: Tracker = object.__getattribute__(self, "_sbx_tracker")
        box: Tracked = object.__getattribute__(self, "_sbx_box")
        setattr(tracker.guards.write(box.value), name, deep_unwrap(value)[0])
        if is_data(value) or name == "index":
            # New labels: the values no longer line up with the rows they came from.
            box.prov = Prov(deep_unwrap(value)[1] or tracker.taint(f"{name} set on a series"))


class IndexerWriter:
    """``df.loc[rows, cols] = v`` (and ``.iloc``/``.at``/``.iat``) on a tracked frame or series."""

    __slots__ = ("_sbx_indexer", "_sbx_tracker")

    def __init__(self, tracker: Tracker, indexer: TrackedIndexer) -> None:
        object.__setattr__(self, "_sbx_tracker", tracker)
        object.__setattr__(self, "_sbx_indexer", indexer)

    def __setitem__(self, key: object, value: object) -> None:
        tracker: Tracker = object.__getattribute__(self, "_sbx_tracker")
        indexer: TrackedIndexer = object.__getattribute__(self, "_sbx_indexer")
        owner = indexer.owner
        raw_key = deep_unwrap(key)[0]
        value_taint = (
            tracker.value_taint(owner, value) if not _is_scalar_like(value) else deep_unwrap(value)[1]
        )
        tracker.guards.write(indexer.value)[raw_key] = deep_unwrap(value)[0]
        if indexer.kind == "loc":
            rows, columns = key if isinstance(key, tuple) and len(key) == 2 else (key, None)
            row_taint = _selector_taint(tracker, owner, rows)
        else:
            rows, columns = (None, None)
            row_taint = tracker.taint(f".{indexer.kind} writes chosen by position")
        taint = join(row_taint, value_taint, deep_unwrap(columns)[1] if columns is not None else None)
        if isinstance(owner.value, pd.Series):
            owner.prov = Prov(join(owner.prov.taint, taint), owner.prov.rows)
            return
        labels = _written_labels(
            owner.value, indexer.kind, deep_unwrap(columns)[0] if columns is not None else None
        )
        if labels is None or is_data(columns):
            owner.prov = owner.prov.tainted(
                taint or tracker.taint("a write to columns that could not be traced")
            )
            return
        tracker.mark_columns(owner, labels, taint, replace_old=False, sources=sources_of(value))


def _selector_taint(tracker: Tracker, box: Tracked, rows: object) -> Taint | None:
    if isinstance(rows, slice) and rows == slice(None):
        return None
    if (
        isinstance(rows, Tracked)
        and isinstance(rows.value, pd.Series)
        and pd.api.types.is_bool_dtype(rows.value.dtype)
    ):
        return join(rows.prov.any_taint(), tracker.misaligned(box.prov.rows, box.value.index, rows))
    return join(deep_unwrap(rows)[1], tracker.taint("a write to rows chosen by label or position"))


def _is_scalar_like(value: object) -> bool:
    raw = value.value if isinstance(value, Tracked) else value
    return not isinstance(raw, (pd.Series, pd.DataFrame, list, tuple)) and pd.api.types.is_scalar(raw)


def _written_labels(frame: pd.DataFrame, kind: str, columns: object) -> list[object] | None:
    if columns is None:
        return None
    if kind in {"iloc", "iat"}:
        try:
            chosen = frame.columns[cast(Any, columns)]
        except (IndexError, TypeError):
            return None
        return list(chosen) if isinstance(chosen, pd.Index) else [chosen]
    if isinstance(columns, slice):
        return None
    if isinstance(columns, (list, tuple, pd.Index)):
        return list(columns)
    return [columns]
