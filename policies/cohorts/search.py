"""Candidate search for the ledger, pure arrays: which earlier cohorts a new one is compared with.

``ledger.CohortIndex`` keeps the cohorts of a lineage; this module holds what a check reads from it
(a :class:`_Pool` of cohorts cut to one width, sorted by count, with a lookup table of their least
elements) and the searches over it: pairs by count, unions and complements by count (``_unions``,
``_complements``) or by shared least elements (``_keyed``), each narrowed by the bucket counts before
any power sum is read, then decided exactly (``difference.within_many``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from policies.cohorts.difference import within_many
from policies.cohorts.sketch import CohortSketch, P

_SMALL_POOL = 256  #: below this many cohorts, the keyed lookup compares directly
#: The dtype of bucket counts in every array here. They are kept mod 2**16 and int16 arithmetic wraps
#: mod 2**16, so ``N - A +- B`` computed in int16 is already the signed difference the prefilter reads;
#: and the candidate pairs' counts are gathered at a quarter of int64's memory traffic.
MARKS = np.int16


@dataclass(frozen=True)
class _Pool:
    """Cohorts of several groups cut to ``use`` power sums, sorted by unit count, for combinations."""

    counts: np.ndarray
    sums: np.ndarray
    marks: np.ndarray
    least: np.ndarray  # the first d + 1 least elements, 0 where none is kept
    recent: np.ndarray  # among the RECENT latest of the lineage (or of the job being decided)
    #: Prebuilt lookup tables (element, row), each sorted by element (a large one and the few entries
    #: added since it was last merged); one is built on demand when None.
    table: tuple[tuple[np.ndarray, np.ndarray], ...] | None = None
    #: When set, the prebuilt table names cohorts by release order, not by row: the row of each (only
    #: the rows a lookup finds are mapped, not the whole table at every check).
    row_of: np.ndarray | None = None

    @classmethod
    def empty(cls, use: int, nbuckets: int, h: int) -> _Pool:
        return cls(
            np.zeros(0, dtype=np.int64),
            np.zeros((0, use), dtype=np.int64),
            np.zeros((0, nbuckets), dtype=MARKS),
            np.zeros((0, h), dtype=np.int64),
            np.zeros(0, dtype=bool),
        )

    @functools.cached_property
    def latest(self) -> _Pool:
        """The rows among the RECENT latest, sorted by count."""
        return self.take(np.nonzero(self.recent)[0])

    def take(self, rows: np.ndarray) -> _Pool:
        """The ``rows`` (sorted by count when ``rows`` are); the lookup table is rebuilt on demand."""
        return _Pool(
            self.counts[rows], self.sums[rows], self.marks[rows], self.least[rows], self.recent[rows]
        )

    @functools.cached_property
    def _by_least(self) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """Every (least element, row) pair, sorted by element: the keyed lookup's table(s)."""
        if self.table is not None:
            return self.table
        flat = self.least.ravel()
        rows = np.repeat(np.arange(len(self.counts)), self.least.shape[1])
        order = np.argsort(flat, kind="stable")
        return ((flat[order], rows[order]),)

    def sharing(self, least: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows that share one of ``least`` (nonzero elements) among their own, and how many."""
        if len(self.counts) < _SMALL_POOL:  # a job's own cohorts: no table worth sorting
            shared = np.isin(self.least, least).sum(axis=1)
            hits = np.nonzero(shared)[0]
            return hits, shared[hits]
        found = self._found(least)
        # Counted by row number (linear; ``np.unique`` would sort): the same rows, ascending.
        tally = np.bincount(found, minlength=len(self.counts))
        hits = np.nonzero(tally)[0]
        return hits, tally[hits]

    def rows_sharing(self, least: np.ndarray) -> np.ndarray:
        """:meth:`sharing`'s rows without how many (marked in a boolean row mask, which is several
        times faster to read back than a tally)."""
        if len(self.counts) < _SMALL_POOL:
            return self.sharing(least)[0]
        mask = np.zeros(len(self.counts), dtype=bool)
        mask[self._found(least)] = True
        return np.flatnonzero(mask)

    def _found(self, least: np.ndarray) -> np.ndarray:
        """The row of every table entry that holds one of ``least`` (a row once per element)."""
        parts = [np.zeros(0, dtype=np.int64)]
        for values, rows in self._by_least:
            lo = np.searchsorted(values, least, side="left")
            hi = np.searchsorted(values, least, side="right")
            parts.extend(rows[i:j] for i, j in zip(lo.tolist(), hi.tolist(), strict=True) if j > i)
        found = np.concatenate(parts)
        if self.row_of is not None:
            found = self.row_of.take(found)
        return found


def _joined(first: _Pool, second: _Pool) -> _Pool:
    """Two pools as one (rows of ``second`` after those of ``first``; not sorted by count)."""
    return _Pool(
        np.concatenate([first.counts, second.counts]),
        np.concatenate([first.sums, second.sums]),
        np.concatenate([first.marks, second.marks]),
        np.concatenate([first.least, second.least]),
        np.concatenate([first.recent, second.recent]),
    )


def _gather(big: np.ndarray, small: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Rows ``ids`` of ``big`` followed by ``small`` (one numbering), without joining the arrays."""
    held = len(big)
    if not len(small) or not len(ids) or int(ids.max()) < held:
        return big.take(ids, axis=0)  # the usual case: every row from the lineage (no mask, one copy)
    out = (
        big.take(np.minimum(ids, max(held - 1, 0)), axis=0)
        if held
        else np.empty((len(ids), *big.shape[1:]), dtype=big.dtype)
    )
    outside = np.nonzero(ids >= held)[0]
    out[outside] = small.take(ids[outside] - held, axis=0)
    return out


def _keyed_within(
    mine: _Candidate, big: _Pool, small: _Pool, left: np.ndarray, right: np.ndarray, d: int, *, sign: int
) -> bool:
    """:func:`_pairs_within` for pairs numbered over both pools: bucket counts first, then the sums
    of the few pairs left (most candidates never have their sums read)."""
    if mine.marks.size:
        marks = _gather(big.marks, small.marks, left) - sign * _gather(big.marks, small.marks, right)
        close = np.nonzero(_close_marks(mine.marks[None, :] - marks, d))[0]
        left, right = left[close], right[close]
        if not len(left):
            return False
    first = _Pool(
        _gather(big.counts, small.counts, left),
        _gather(big.sums, small.sums, left),
        np.zeros((len(left), 0), dtype=np.int64),
        np.zeros((len(left), 0), dtype=np.int64),
        np.zeros(len(left), dtype=bool),
    )
    second = _Pool(
        _gather(big.counts, small.counts, right),
        _gather(big.sums, small.sums, right),
        first.marks,
        first.least,
        first.recent,
    )
    return _pairs_within(_Candidate.bare(mine), first, second, d, sign=sign)


@dataclass(frozen=True)
class _Candidate:
    """The new cohort as arrays, cut to what it shares with a group."""

    units: int
    sums: np.ndarray
    marks: np.ndarray

    def bare(self) -> _Candidate:
        """The same without bucket counts (already compared)."""
        out = object.__new__(_Candidate)
        object.__setattr__(out, "units", self.units)
        object.__setattr__(out, "sums", self.sums)
        object.__setattr__(out, "marks", self.marks[:0])
        return out

    def __init__(self, cohort: CohortSketch, width: int, nbuckets: int) -> None:
        object.__setattr__(self, "units", cohort.units)
        object.__setattr__(self, "sums", np.array(cohort.sums[:width], dtype=np.int64))
        marks = np.array(cohort.buckets[:nbuckets], dtype=np.int64).astype(MARKS)
        object.__setattr__(self, "marks", marks)


def _close_marks(marks: np.ndarray, d: int) -> np.ndarray:
    """Rows whose bucket differences (mod 2**16, read as signed) add up to at most ``d`` in size."""
    if marks.shape[1] == 0:
        return np.ones(len(marks), dtype=bool)
    # Read mod 2**16 as signed (a no-op for MARKS arrays; int64 ones wrap in the cast), summed wider.
    signed = marks.astype(MARKS, copy=False)
    return _abs_total(signed) <= d


def _abs_total(marks: np.ndarray) -> np.ndarray:
    """The sum of each row's absolute values (int16 rows, summed as int32): column by column, which
    for rows of a few int16 is several times faster than a reduction along the short axis."""
    total: np.ndarray = np.abs(marks[:, 0], dtype=np.int32)
    for j in range(1, marks.shape[1]):
        total += np.abs(marks[:, j], dtype=np.int32)
    return total


def _pairs(
    mine: _Candidate, counts: np.ndarray, held: np.ndarray, marks: np.ndarray, d: int
) -> tuple[str, bool]:
    lo, hi = np.searchsorted(counts, [mine.units - d, mine.units + d + 1])
    if lo == hi:
        return "", False
    close = _close_marks(mine.marks[None, :] - marks[lo:hi], d) if mine.marks.size == marks.shape[1] else None
    rows = np.arange(lo, hi) if close is None else np.arange(lo, hi)[close]
    if not len(rows):
        return "", False
    diff = (mine.sums[None, :] - held[rows]) % P
    delta = mine.units - counts[rows]
    same = (delta == 0) & ~np.any(diff != 0, axis=1)
    near = within_many(diff, delta, d) & ~same
    return ("pair" if bool(near.any()) else ""), bool(same.any())


def _ranges(counts: np.ndarray, lows: np.ndarray, highs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(lows) > 1 and lows[0] > lows[-1]:
        # Descending bounds (a union's, for parts by ascending count): searched ascending, which is
        # several times faster for thousands of them (the same answers in reverse).
        starts, ends = _ranges(counts, lows[::-1], highs[::-1])
        return starts[::-1], ends[::-1]
    starts = np.searchsorted(counts, lows, side="left")
    ends = np.searchsorted(counts, highs, side="right")
    return starts, np.maximum(ends, starts)


def _expand(
    firsts: np.ndarray, starts: np.ndarray, ends: np.ndarray, budget: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """All (first, second) index pairs with second in [start, end) for each first, up to ``budget``."""
    sizes = ends - starts
    total = int(sizes.sum())
    if total > budget:
        keep = np.cumsum(sizes) <= budget
        firsts, starts, sizes = firsts[keep], starts[keep], sizes[keep]
    left = np.repeat(firsts, sizes)
    offsets = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    right = np.repeat(starts, sizes) + offsets
    return left, right, total - len(left)


def _unions(n: int, counts: np.ndarray, d: int, budget: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Unordered pairs i < j with ``|n - c_i - c_j| <= d``."""
    firsts = np.arange(len(counts))
    starts, ends = _ranges(counts, n - counts - d, n - counts + d)
    starts = np.maximum(starts, firsts + 1)
    return _expand(firsts, starts, np.maximum(ends, starts), budget)


def _complements(n: int, counts: np.ndarray, d: int, budget: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Ordered pairs (i, j), i the larger, with ``|n - c_i + c_j| <= d`` (never i = j: n > d)."""
    seconds = np.arange(len(counts))
    starts, ends = _ranges(counts, n + counts - d, n + counts + d)
    right, left, skipped = _expand(seconds, starts, ends, budget)
    return left, right, skipped


def _keyed(
    n: int,
    big: _Pool,
    small: _Pool,
    hits: np.ndarray,
    shared: np.ndarray,
    d: int,
    budget: int,
    *,
    sign: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Pairs (A, B), A among ``hits``, B any other cohort of either pool (rows of ``small`` numbered
    after ``big``'s), with ``|n - c_A + sign * c_B| <= d``: for a union (sign -1) B completes A up to
    n, for a complement (sign 1) A less B is n.

    ``hits`` ascending, each with how many least elements it ``shared`` with the new cohort: when
    the pairs exceed ``budget``, the most similar hits are taken first (it runs out on the least
    related). Under the budget the order does not matter (the caller asks whether any pair is
    within), so the hits are only reordered when it runs out.
    """
    empty = np.zeros(0, dtype=np.int64)
    if not len(hits):
        return empty, empty, 0
    offset = len(big.counts)
    a = _gather(big.counts, small.counts, hits)
    lows, highs = (n - a - d, n - a + d) if sign < 0 else (a - n - d, a - n + d)
    # Hits whose partner's count would lie outside every count held have no pair: dropped before the
    # lookups (for a union, the parts larger than the new cohort; for a complement, the smaller).
    held = [c for c in (big.counts, small.counts) if len(c)]
    fits = (highs >= min(int(c[0]) for c in held)) & (lows <= max(int(c[-1]) for c in held))
    if not fits.all():
        hits, shared, lows, highs = hits[fits], shared[fits], lows[fits], highs[fits]
    ranges = [_ranges(pool.counts, lows, highs) for pool in (big, small)]
    if sum(int((ends - starts).sum()) for starts, ends in ranges) > budget:
        order = np.argsort(-shared, kind="stable")
        hits = hits[order]
        ranges = [(starts[order], ends[order]) for starts, ends in ranges]
    lefts: list[np.ndarray] = []
    rights: list[np.ndarray] = []
    skipped = taken = 0
    for (starts, ends), shift in zip(ranges, (0, offset), strict=True):
        left, right, missed = _expand(hits, starts + shift, ends + shift, max(0, budget - taken))
        taken += len(left)
        lefts.append(left)
        rights.append(right)
        skipped += missed
    left, right = np.concatenate(lefts), np.concatenate(rights)
    other = left != right
    return left[other], right[other], skipped


def _pairs_within(mine: _Candidate, first: _Pool, second: _Pool, d: int, *, sign: int) -> bool:
    """Whether ``N - first[i] + sign * second[i]`` holds 1..d units for some i."""
    if mine.marks.size:
        close = _close_marks(mine.marks[None, :] - first.marks + sign * second.marks, d)
        if not close.any():
            return False
        first, second = first.take(np.nonzero(close)[0]), second.take(np.nonzero(close)[0])
    diff = (mine.sums[None, :] - first.sums + sign * second.sums) % P
    delta = mine.units - first.counts + sign * second.counts
    exact = (delta == 0) & ~np.any(diff != 0, axis=1)
    return bool((within_many(diff, delta, d) & ~exact).any())
