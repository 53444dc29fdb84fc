"""Where a Python job's values come from: row-local (each row from its own person's input row) or
tainted (depends on other rows, with the operation and line that made it so).

Every value a job derives from its inputs travels inside a :class:`Tracked` box: the value itself
and its :class:`Prov`. Values with no box are constants of the job's own code (literals, modules,
its functions), which depend on no data. The hooks in ``tracking`` open the box for every operation
and put the result in a new one, so job code never touches data outside a box except inside a
callback pandas calls row by row (where the values are one row's own).

A frame carries one taint per column and one for the frame (which rows it holds). Rows are
identified by a :class:`RowSpace`: frames and series of the same space line up by index label on
the same input rows (filters, sorts and element-wise operations keep it; merges, concatenation and
re-indexing make a new one), so combining two of them pairs every person with themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from pandas.core.arrays.categorical import CategoricalAccessor
from pandas.core.indexes.accessors import Properties
from pandas.core.strings.accessor import StringMethods


@dataclass(frozen=True)
class Taint:
    """Why a value depends on other rows, as the report says it (no data values, only code)."""

    reason: str

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True, eq=False)
class RowSpace:
    """The identity of a set of rows (compared by identity). ``people``: whether the rows are rows of
    people (an input with the unit column, or derived from one) rather than a lookup table."""

    label: str
    people: bool
    units: pd.Series | None = field(default=None, repr=False)  # the unit of each row, by index label
    # Filled on first use by ``units.unit_codes`` (the units as integers); never compared.
    cache: dict[str, Any] = field(default_factory=dict, repr=False)


def join(*taints: Taint | None) -> Taint | None:
    """The first taint among ``taints`` (None when all are clean).

    >>> join(None, Taint(".max at line 2"), Taint(".iloc at line 3"))
    Taint(reason='.max at line 2')
    """
    for taint in taints:
        if taint is not None:
            return taint
    return None


@dataclass(frozen=True)
class Prov:
    """Provenance of one tracked value.

    ``taint``: of the whole value (for a frame, of which rows it holds and of every column).
    ``rows``: the row space a frame, series or positional array is aligned with (None: not aligned
    with any rows, e.g. a scalar). ``positions``: for a positional array, the index labels its
    positions stand for. ``columns``: for a frame, the taint of each column by label; a label
    missing from it is of unknown origin and counts as tainted. ``sources`` (of a series or array)
    and ``column_sources`` (of a frame's columns): the input columns a row-local value is computed
    from, for the group-key rule (None: not known).
    """

    taint: Taint | None = None
    rows: RowSpace | None = None
    positions: pd.Index | None = field(default=None, repr=False)
    columns: Mapping[Any, Taint | None] | None = None
    sources: frozenset[str] | None = None
    column_sources: Mapping[Any, frozenset[str]] | None = None

    def source_of(self, label: object) -> frozenset[str] | None:
        """The input columns a frame's column is computed from (None: not known)."""
        return None if self.column_sources is None else self.column_sources.get(label)

    def sources_for(self, labels: Iterable[object]) -> dict[Any, frozenset[str]] | None:
        """``column_sources`` restricted to ``labels`` (those not known are left out)."""
        if self.column_sources is None:
            return None
        return {c: self.column_sources[c] for c in labels if c in self.column_sources}

    def column(self, label: object, *, unknown: Taint) -> Taint | None:
        """Taint of one column of a frame (the frame's own taint first)."""
        if self.columns is None:
            return self.taint or unknown
        if label not in self.columns:
            return self.taint or unknown
        return join(self.taint, self.columns[label])

    def tainted(self, taint: Taint | None) -> Prov:
        """The same provenance with ``taint`` added to the whole value."""
        if taint is None or self.taint is not None:
            return self
        return replace(self, taint=taint)

    def any_taint(self) -> Taint | None:
        """Taint of the whole value or of any of its columns."""
        if self.taint is not None or self.columns is None:
            return self.taint
        return join(*self.columns.values())


class Tracked:
    """A value derived from data, with its provenance. Operations on it go through the hooks; the
    few Python protocols called without a hook (hashing in dicts and sets, ``str`` for ``print``)
    act on the value."""

    __slots__ = ("prov", "value")
    value: Any
    prov: Prov

    def __init__(self, value: object, prov: Prov) -> None:
        self.value = value
        self.prov = prov

    def __hash__(self) -> int:
        return hash(self.value)

    def __eq__(self, other: object) -> bool:
        return bool(self.value == unwrap(other))

    def __str__(self) -> str:
        return str(self.value)

    def __repr__(self) -> str:
        return repr(self.value)

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __iter__(self) -> Iterator[Tracked]:
        # Reached only by star-unpacking in a call (``f(*values)``): every item keeps the taint.
        prov = Prov(self.prov.any_taint() or Taint("values unpacked from data"))
        for item in self.value:
            yield Tracked(item, prov)


class TrackedMethod(Tracked):
    """A method read from a tracked value: calling it goes through the method rules."""

    __slots__ = ("name", "receiver")

    def __init__(self, value: object, receiver: Tracked, name: str) -> None:
        super().__init__(value, receiver.prov)
        self.receiver = receiver
        self.name = name


class TrackedIndexer(Tracked):
    """``.loc``/``.iloc``/``.at``/``.iat`` of a tracked frame or series; writes through it change
    the provenance of ``owner``."""

    __slots__ = ("kind", "owner")

    def __init__(self, value: object, owner: Tracked, kind: str) -> None:
        super().__init__(value, owner.prov)
        self.owner = owner
        self.kind = kind


def union_sources(*sources: frozenset[str] | None) -> frozenset[str] | None:
    """All input columns of ``sources`` (None when any is not known).

    >>> sorted(union_sources(frozenset({"a"}), frozenset({"b"}))), union_sources(frozenset({"a"}), None)
    (['a', 'b'], None)
    """
    out: frozenset[str] = frozenset()
    for part in sources:
        if part is None:
            return None
        out |= part
    return out


def sources_of(value: object) -> frozenset[str] | None:
    """Input columns behind a series, array or constant (a constant of the code has none).

    >>> sources_of(3), sources_of([1, 2])
    (frozenset(), None)
    >>> sources_of(Tracked(pd.Series([1]), Prov(sources=frozenset({"age"}))))
    frozenset({'age'})
    """
    if not isinstance(value, Tracked):
        return frozenset() if is_scalar(value) else None
    if value.prov.any_taint() is not None:
        return None
    return value.prov.sources


#: The taint of a column whose origin was lost (counts as depending on other rows).
UNKNOWN = Taint("a column of unknown origin")

#: The ``.str``, ``.dt`` and ``.cat`` accessor types: element-wise views of a series.
ACCESSORS = (StringMethods, Properties, CategoricalAccessor)


def positions_of(box: Tracked) -> pd.Index | None:
    """The row labels a tracked frame, series or positional array stands for, in order."""
    raw = box.value
    if isinstance(raw, (pd.DataFrame, pd.Series)):
        return raw.index
    return box.prov.positions


def unwrap(value: object) -> Any:
    """The value inside a box (a plain value is returned as it is).

    >>> unwrap(Tracked(3, Prov())), unwrap(4)
    (3, 4)
    """
    return value.value if isinstance(value, Tracked) else value


_CONTAINERS = (list, tuple, dict, set, frozenset)
_MAX_SCAN = 2_000_000  # items scanned per call before giving up (counted as tainted)


def deep_unwrap(value: object) -> tuple[Any, Taint | None]:
    """``value`` with every box inside plain containers opened, and the first taint met (boxes of
    row-local values have none: the caller decides what mixing them means). Containers are rebuilt
    only when they hold a box.

    >>> deep_unwrap([1, Tracked(2, Prov(Taint("t")))])
    ([1, 2], Taint(reason='t'))
    """
    budget = [_MAX_SCAN]
    found: list[Taint] = []
    out = _deep(value, found, budget, 0)
    if budget[0] < 0:
        found.append(Taint("a container too large to trace"))
    return out, (found[0] if found else None)


def _deep(value: object, found: list[Taint], budget: list[int], depth: int) -> Any:
    if isinstance(value, Tracked):
        taint = value.prov.any_taint()
        if taint is not None:
            found.append(taint)
        inner = value.value
        return _deep(inner, found, budget, depth + 1) if isinstance(inner, _CONTAINERS) else inner
    if not isinstance(value, _CONTAINERS) or depth > 20:
        return value
    budget[0] -= len(value)
    if budget[0] < 0:
        return value
    if isinstance(value, dict):
        if not any(_may_hold(k) or _may_hold(v) for k, v in value.items()):
            return value
        return {
            _deep(k, found, budget, depth + 1): _deep(v, found, budget, depth + 1) for k, v in value.items()
        }
    if not any(_may_hold(v) for v in value):
        return value
    items = [_deep(v, found, budget, depth + 1) for v in value]
    if isinstance(value, list):
        return items
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*items)
    return type(value)(items)


def _may_hold(value: object) -> bool:
    return isinstance(value, (Tracked, *_CONTAINERS))


def _holds_box(value: object, depth: int = 0) -> bool:
    if isinstance(value, Tracked):
        return True
    if not isinstance(value, _CONTAINERS) or depth > 20 or len(value) > _MAX_SCAN:
        return isinstance(value, _CONTAINERS) and len(value) > _MAX_SCAN
    if isinstance(value, dict):
        return any(_holds_box(k, depth + 1) or _holds_box(v, depth + 1) for k, v in value.items())
    return any(_holds_box(v, depth + 1) for v in value)


def is_data(value: object) -> bool:
    """Whether ``value`` is (or holds) a value derived from data.

    >>> is_data([1, 2]), is_data({"k": Tracked(1, Prov())})
    (False, True)
    """
    return _holds_box(value)


def is_scalar(value: object) -> bool:
    """A single value that broadcasts to every row (a constant per row, not a sequence).

    >>> is_scalar(1.5), is_scalar("a"), is_scalar(pd.Timestamp("2024-01-01")), is_scalar([1])
    (True, True, True, False)
    """
    return (
        value is None
        or isinstance(value, (bool, int, float, complex, str, bytes, np.generic))
        or (pd.api.types.is_scalar(value) and not isinstance(value, (list, tuple, dict, set)))
    )
