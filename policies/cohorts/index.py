"""The cohorts released so far in one lineage, in memory: sorted by unit count per sketch layout,
with the keyed lookup's table kept up to date on insert, and the one-cohort search (``match``) over
them (``search`` holds the searches themselves)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from policies.cohorts import sizing
from policies.cohorts.search import (
    MARKS,
    _Candidate,
    _complements,
    _joined,
    _keyed,
    _keyed_within,
    _pairs,
    _pairs_within,
    _Pool,
    _unions,
)
from policies.cohorts.sizing import SPARE_SUMS, capacity
from policies.cohorts.sketch import CohortSketch

_Layout = tuple[int, int, bool]  # power sums, prefilter buckets, whether least elements are kept
_Arrays = tuple[np.ndarray, ...]
#: How many entries the lookup table's recent part holds before it is merged into the large part.
RECENT_ENTRIES = 4096


@dataclass
class _Group:
    """Cohorts of one sketch layout, sorted by unit count: counts, power sums, bucket counts, the
    order in which each was released (``seqs``) and least elements (0-padded to ``width - 1``)."""

    layout: _Layout
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sums: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    marks: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int16))
    seqs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: int32 (a field element is below 2**31): half the bytes every release copies.
    least: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int32))
    #: Every nonzero least element with the seq of its cohort, sorted by element: the keyed lookup's
    #: table, kept up to date on insert so that a check never sorts the whole lineage. In two parts:
    #: a release's entries go to the small recent part (``recent_*``, sorted too), which is merged
    #: into the large one once it holds ``RECENT_ENTRIES``, so that most releases do not copy the
    #: whole table (the lookup reads both).
    table_values: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    table_seqs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    recent_values: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    recent_seqs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def nleast(self) -> int:
        width, _, kept = self.layout
        return max(0, width - SPARE_SUMS + 1) if kept else 0

    def add(self, cohorts: Sequence[CohortSketch], seqs: Sequence[int]) -> None:
        width, nbuckets, _ = self.layout
        pairs = sorted(zip(cohorts, seqs, strict=True), key=lambda p: p[0].units)
        ordered = [c for c, _ in pairs]
        counts = np.array([c.units for c in ordered], dtype=np.int64)
        # Inserted in place (one copy), not re-sorted: a release adds a few cohorts to thousands.
        at = np.searchsorted(self.counts, counts, side="right")
        held, h = len(self.counts), self.nleast
        self.counts = inserted(self.counts, at, counts)
        self.sums = inserted(self.sums.reshape(held, width), at, _sums(ordered, width))
        self.marks = inserted(self.marks.reshape(held, nbuckets), at, _marks(ordered, nbuckets))
        self.seqs = inserted(self.seqs, at, np.array([q for _, q in pairs], dtype=np.int64))
        fresh = _least(ordered, h)
        self.least = inserted(self.least.reshape(held, h), at, fresh.astype(np.int32))
        values = fresh.ravel()
        owners = np.repeat(np.array([q for _, q in pairs], dtype=np.int64), h)
        order = np.argsort(values[values != 0], kind="stable")
        values, owners = values[values != 0][order], owners[values != 0][order]
        where = np.searchsorted(self.recent_values, values, side="right")
        self.recent_values = np.insert(self.recent_values, where, values)
        self.recent_seqs = np.insert(self.recent_seqs, where, owners)
        if len(self.recent_values) >= RECENT_ENTRIES:
            where = np.searchsorted(self.table_values, self.recent_values, side="right")
            self.table_values = np.insert(self.table_values, where, self.recent_values)
            self.table_seqs = np.insert(self.table_seqs, where, self.recent_seqs)
            self.recent_values, self.recent_seqs = self.recent_values[:0], self.recent_seqs[:0]

    def tables(self) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """The lookup table's parts, each (element, seq) sorted by element."""
        return (self.table_values, self.table_seqs), (self.recent_values, self.recent_seqs)

    def arrays(self) -> _Arrays:
        return (
            self.counts,
            self.sums,
            self.marks,
            self.seqs,
            self.least,
            self.table_values,
            self.table_seqs,
            self.recent_values,
            self.recent_seqs,
        )


def inserted(held: np.ndarray, at: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``np.insert(held, at, rows, axis=0)`` for ascending ``at``: the rows of ``held`` copied slice
    by slice between the insertion points. A release inserts a few hundred rows into a lineage's
    hundreds of thousands, where ``np.insert``'s boolean mask costs several times the copy itself.

    >>> inserted(np.array([1, 3, 5]), np.array([0, 2, 2, 3]), np.array([0, 4, 4, 6])).tolist()
    [0, 1, 3, 4, 4, 5, 6]
    """
    out = np.empty((len(held) + len(rows), *held.shape[1:]), dtype=held.dtype)
    bounds = np.flatnonzero(np.diff(at)) + 1  # where a run of equal insertion points ends
    prev = done = 0
    for first, last in zip([0, *bounds.tolist()], [*bounds.tolist(), len(at)], strict=True):
        point = int(at[first]) if len(at) else len(held)
        out[prev + done : point + done] = held[prev:point]
        out[point + first : point + last] = rows[first:last]
        prev, done = point, last
    out[prev + done :] = held[prev:]
    return out


def _sums(cohorts: Sequence[CohortSketch], width: int) -> np.ndarray:
    return np.array([c.sums[:width] for c in cohorts], dtype=np.int64).reshape(len(cohorts), width)


def _marks(cohorts: Sequence[CohortSketch], nbuckets: int) -> np.ndarray:
    """Bucket counts as int16 (``search.MARKS``): they are kept mod 2**16, and int16 arithmetic
    wraps mod 2**16, so a difference reads directly as the signed count it stands for."""
    rows = [c.buckets[:nbuckets] for c in cohorts]
    return np.array(rows, dtype=np.int64).reshape(len(cohorts), nbuckets).astype(MARKS)


def _least(cohorts: Sequence[CohortSketch], h: int) -> np.ndarray:
    rows = [(tuple(c.least[:h]) + (0,) * h)[:h] for c in cohorts]
    return np.array(rows, dtype=np.int64).reshape(len(cohorts), h)


def layout_of(cohort: CohortSketch) -> _Layout:
    return len(cohort.sums), len(cohort.buckets), bool(cohort.least)


_SMALL_POOL = 256  #: below this many cohorts, the keyed lookup compares directly
_State = tuple[int, dict[_Layout, _Arrays], dict[tuple[int, int, int, int], "_Pool"]]


class CohortIndex:
    """The cohorts released so far in one lineage, indexed by unit count (in memory, rebuilt from the
    sealed store)."""

    def __init__(self, cohorts: Sequence[CohortSketch] = ()) -> None:
        self._groups: dict[_Layout, _Group] = {}
        self._size = 0
        self._pools: dict[tuple[int, int, int, int], _Pool] = {}
        self.add(cohorts)

    def layouts(self) -> set[_Layout]:
        """The sketch layouts held (power sums, prefilter buckets, whether least elements are kept)."""
        return set(self._groups)

    def __len__(self) -> int:
        return self._size

    def snapshot(self) -> _State:
        """What :meth:`restore` needs to undo later additions (the arrays are replaced, never edited;
        the pools built from them come back too, so an undone check does not rebuild them)."""
        return self._size, {k: g.arrays() for k, g in self._groups.items()}, dict(self._pools)

    def restore(self, state: _State) -> None:
        self._size, arrays, pools = state
        self._pools = dict(pools)
        self._groups = {k: g for k, g in self._groups.items() if k in arrays}
        for layout, (counts, sums, marks, seqs, least, values, owners, fresh, fresh_owners) in arrays.items():
            group = self._groups[layout]
            group.counts, group.sums, group.marks, group.seqs, group.least = counts, sums, marks, seqs, least
            group.table_values, group.table_seqs = values, owners
            group.recent_values, group.recent_seqs = fresh, fresh_owners

    def add(self, cohorts: Sequence[CohortSketch]) -> None:
        by_layout: dict[_Layout, tuple[list[CohortSketch], list[int]]] = {}
        for cohort in cohorts:
            group, seqs = by_layout.setdefault(layout_of(cohort), ([], []))
            group.append(cohort)
            seqs.append(self._size)
            self._size += 1
        for layout, (group, seqs) in by_layout.items():
            self._groups.setdefault(layout, _Group(layout)).add(group, seqs)
        if by_layout:
            self._pools = {}

    def match(
        self, cohort: CohortSketch, *, min_units: int, budget: int, also: CohortIndex | None = None
    ) -> tuple[str, bool, int]:
        """``(kind, repeat, unchecked)``: ``kind`` is pair, union or complement when ``cohort`` is within
        1..k-1 units of what this index and ``also`` hold ('' otherwise); ``repeat`` when it equals a
        held cohort. ``also`` is small (the cohorts of the job being decided): the large index is
        never copied while a job is decided."""
        repeat = False
        for index in (self, also):
            for (width, nbuckets, _), group in ({} if index is None else index._groups).items():
                use, d = capacity(width, cohort, min_units)
                if d < 1 or not len(group.counts):
                    continue
                mine = _Candidate(cohort, use, nbuckets)
                kind, same = _pairs(mine, group.counts, group.sums[:, :use], group.marks, d)
                repeat |= same
                if kind:
                    return kind, repeat, 0
        kind, unchecked = self._combinations(cohort, min_units=min_units, budget=budget, also=also)
        return kind, repeat, unchecked

    def pool(self, use: int, nbuckets: int, h: int, *, latest: int) -> _Pool:
        """The cohorts of every group with at least ``use`` sums and ``nbuckets`` buckets, cut to
        ``use`` sums and ``h`` least elements, sorted by count; ``recent`` marks the ``latest``."""
        key = (use, nbuckets, h, latest)
        cached = self._pools.get(key)
        if cached is not None:
            return cached
        groups = [g for (w, b, _), g in self._groups.items() if w >= use and b == nbuckets and len(g.counts)]
        if not groups:
            built = _Pool.empty(use, nbuckets, h)
        elif len(groups) == 1:
            # One layout (every lineage written with the common width): views of the group's arrays,
            # already sorted by count, and its lookup table, which lists all of a cohort's least
            # elements (more than d + 1: more candidates, never fewer).
            group = groups[0]
            row_of = np.zeros(self._size, dtype=np.int64)
            row_of[group.seqs] = np.arange(len(group.seqs))
            least = group.least[:, :h]
            if least.shape[1] < h:  # stored without least elements: nothing to look up
                least = np.zeros((len(group.counts), h), dtype=np.int64)
            built = _Pool(
                group.counts,
                group.sums[:, :use],
                group.marks,
                least,
                group.seqs >= self._size - latest,
                group.tables(),
                row_of,
            )
        else:
            counts = np.concatenate([g.counts for g in groups])
            order = np.argsort(counts, kind="stable")
            parts = [
                g.least[:, :h] if g.least.shape[1] >= h else np.zeros((len(g.counts), h), dtype=np.int64)
                for g in groups
            ]
            built = _Pool(
                counts[order],
                np.concatenate([g.sums[:, :use] for g in groups])[order],
                np.concatenate([g.marks for g in groups])[order],
                np.concatenate(parts)[order],
                (np.concatenate([g.seqs for g in groups]) >= self._size - latest)[order],
            )
        self._pools[key] = built
        return built

    def _combinations(
        self, cohort: CohortSketch, *, min_units: int, budget: int, also: CohortIndex | None
    ) -> tuple[str, int]:
        """Unions and complements of two earlier cohorts (of this index and ``also``).

        At the cohort's own width, and again at each narrower width held (sketches written under
        another ``min_units`` before sketches had a common width: compared on the sums they share,
        so on a smaller difference).
        """
        use, d = capacity(len(cohort.sums), cohort, min_units)
        widths = {w for index in (self, also) if index is not None for (w, _, _) in index._groups}
        narrower = sorted((w for w in widths if SPARE_SUMS < w < use), reverse=True)
        unchecked = 0
        for width in [use, *narrower]:
            d_here = min(d, width - SPARE_SUMS)
            if d_here < 1:
                continue
            kind, skipped = self._combinations_at(
                cohort, use=d_here + SPARE_SUMS, d=d_here, budget=budget, also=also
            )
            unchecked += skipped
            if kind:
                return kind, unchecked
        return "", unchecked

    def _combinations_at(
        self, cohort: CohortSketch, *, use: int, d: int, budget: int, also: CohortIndex | None
    ) -> tuple[str, int]:
        """Two searches over the cohorts of width ``use`` or more:

        - **keyed**, over the whole lineage: the earlier cohorts that share one of their d + 1 least
          elements with the new cohort's d + 1 least, each with every cohort whose count completes it;
        - **recent**: every pair among the ``RECENT`` latest cohorts whose counts add up (or
          subtract) to the new cohort's, which also covers cohorts stored without least elements.

        Why the keyed search finds every union ``N = A + B +- D`` (|D| <= d): of the d + 1 least
        elements of ``A + B``, at least one (u) is not among the at most d that ``D`` removes; u is
        then in N, and below it N holds only elements that ``D`` added, so u is among N's d + 1
        least; and u is among the d + 1 least of the part (A or B) it belongs to. So the part holding
        u shares a least element with N. The same argument finds a complement ``N = A - B +- D``
        whenever that element u of ``N + B`` lies in N (A then shares it with N); when it lies in B,
        only the recent search looks.
        """
        nbuckets = len(cohort.buckets)
        h = d + 1
        big = self.pool(use, nbuckets, h, latest=sizing.RECENT)
        small = (
            _Pool.empty(use, nbuckets, h) if also is None else also.pool(use, nbuckets, h, latest=len(also))
        )
        if len(big.counts) + len(small.counts) < 2:
            return "", 0
        mine = _Candidate(cohort, use, nbuckets)
        unchecked = 0
        least = np.array([v for v in cohort.least[:h] if v], dtype=np.int64)
        hits = shared = np.zeros(0, dtype=np.int64)
        if len(least):
            # Rows of the job's pool count after the lineage's: one numbering for both, ascending
            # (so by unit count within each pool, which keeps the count lookups in ``_keyed`` fast).
            found = [big.sharing(least), small.sharing(least)]
            hits = np.concatenate([found[0][0], found[1][0] + len(big.counts)])
            shared = np.concatenate([found[0][1], found[1][1]])
        # The recent search: the RECENT latest of the lineage and the job's cohorts, as one small pool.
        near = _joined(big.latest, small)
        near = near.take(np.argsort(near.counts, kind="stable"))
        for kind, sign in (("union", -1), ("complement", 1)):
            left, right, skipped = _keyed(cohort.units, big, small, hits, shared, d, budget, sign=sign)
            unchecked += skipped
            if len(left) and _keyed_within(mine, big, small, left, right, d, sign=sign):
                return kind, unchecked
            combos = _unions if kind == "union" else _complements
            first, second, skipped = combos(cohort.units, near.counts, d, budget)
            unchecked += skipped
            if len(first) and _pairs_within(mine, near.take(first), near.take(second), d, sign=sign):
                return kind, unchecked
        return "", unchecked
