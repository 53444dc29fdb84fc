"""The ledger's search for all of a job's cohorts at once: one numpy pass per search, not one per cohort.

``CohortIndex.match`` decides one cohort against the lineage and the job's cohorts accepted so far:
about a hundred small array operations each, so a job of 10 rows and 8 margins spent most of its
check on numpy's per-call overhead. :class:`Batch` runs the same searches (pairs; keyed and recent
unions; keyed and recent complements, as ``ledger`` describes them) for every cohort of the job in
one pass each, over the lineage *and every cohort of the job*, and tags each candidate with the job
cohorts it uses. Which job cohorts a cohort may be compared with depends on the decisions before it,
so :meth:`Batch.match` then keeps, per cohort, only the candidates whose job cohorts were accepted:
the same candidate sets ``CohortIndex.match`` builds with ``also`` holding exactly those cohorts.

Why the decisions are exactly the same:

- every candidate set is "pairs of held cohorts whose unit counts fit, one of them sharing a least
  element with the new cohort (keyed) or both among the recent ones (recent)", and each condition
  is a property of the candidate's own members, so the candidates over ``lineage + accepted`` are
  those over ``lineage + whole job`` whose job members were accepted;
- each candidate is dismissed by the same bucket prefilter and decided by the same exact solver
  (``difference.within_many`` decides each row on its own), and a search only asks whether *any*
  candidate is within 1..k-1;
- a search that would exceed the budget (where ``match`` checks the first ``budget`` combinations
  in its own order and counts the rest as unchecked) is not answered here: that cohort is decided by
  ``CohortIndex.match`` itself, as is every job the batch does not cover (several sketch layouts in
  one lineage, k = 1, a cohort of at most k - 1 units).

``tests/policies/test_cohort_batch.py`` compares the two on random ledgers and jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from policies.cohorts.difference import within_many
from policies.cohorts.search import MARKS, _abs_total, _close_marks, _Pool
from policies.cohorts.sketch import CohortSketch, P

_EMPTY = np.zeros(0, dtype=np.int64)
#: Bucket counts read by the first prefilter (a part of the full one, so it never dismisses more).
HEAD = 4


def _gather(big: np.ndarray, small: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Rows ``ids`` of ``big`` followed by ``small`` (one numbering). A contiguous array by ``take``
    (many times faster than indexing for short rows such as bucket counts); a column slice (the
    pool's power sums) by indexing, since ``take`` would copy it whole first."""
    held = len(big)
    inside = ids < held
    if inside.all():
        rows: np.ndarray = big.take(ids, axis=0) if big.flags.c_contiguous else big[ids]
        return rows
    out = np.empty((len(ids), *big.shape[1:]), dtype=big.dtype)
    out[inside] = big[ids[inside]]
    out[~inside] = small[ids[~inside] - held]
    return out


def _spans(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges ``[start, end)``: which range each position belongs to, and the position."""
    starts = starts.ravel()
    sizes = ends.ravel() - starts
    # Most ranges of a keyed search are empty: the repeats run over the others only.
    some = np.flatnonzero(sizes > 0)
    starts, sizes = starts.take(some), sizes.take(some)
    owner = np.repeat(some, sizes)
    return owner, np.arange(len(owner)) + np.repeat(starts - (np.cumsum(sizes) - sizes), sizes)


def _inclusive(counts: np.ndarray, lows: np.ndarray, highs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ascending ``counts`` in ``[low, high]``, as ``[start, end)``."""
    return np.searchsorted(counts, lows, side="left"), np.searchsorted(counts, highs, side="right")


#: How many rows ``_narrow`` steps over before it searches for the end of a range instead.
_WALK = 3


def _narrow(counts: np.ndarray, lows: np.ndarray, highs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_inclusive` for ranges ``lows <= highs`` that hold few rows (a keyed search's partner
    counts, 2d + 1 wide among thousands): the start is searched, the end found by stepping over at
    most ``_WALK`` rows, and searched only for the ranges that hold more. Several times cheaper than
    a second search for tens of thousands of ranges, the same answers.

    >>> counts = np.array([1, 2, 2, 2, 2, 5, 9])
    >>> [x.tolist() for x in _narrow(counts, np.array([2, 3, 0, 9]), np.array([4, 4, 1, 12]))]
    [[1, 5, 0, 6], [5, 5, 1, 7]]
    """
    start = np.searchsorted(counts, lows, side="left")
    end = start.copy()
    last = len(counts) - 1
    if last < 0:
        return start, end
    for step in range(_WALK):
        # Counts ascend, so the rows of a range are consecutive from its start: one more per step.
        end += (counts.take(np.minimum(start + step, last)) <= highs) & (start + step <= last)
    more = np.flatnonzero(end == start + _WALK)
    if len(more):
        end[more] = np.searchsorted(counts, highs.take(more), side="right")
    return start, end


@dataclass(frozen=True)
class _Stage:
    """One search's candidates for every cohort. Those among lineage cohorts only are summed up per
    cohort (how many, and whether one is within); the others keep which job cohorts they use
    (``first``, ``second``: job positions, -1 for a lineage cohort), grouped by cohort (``bounds``)."""

    held: np.ndarray  # (m,) candidates among the lineage's cohorts only
    held_found: np.ndarray  # (m,) whether one of them is within 1..d
    first: np.ndarray
    second: np.ndarray
    found: np.ndarray
    bounds: np.ndarray  # (m + 1,): cohort i's candidates are rows bounds[i]:bounds[i + 1]

    def read(self, i: int, member: np.ndarray) -> tuple[int, bool]:
        """How many candidates cohort ``i`` has over the lineage and the accepted job cohorts
        (``member``: indexed by job position + 1, True at 0 for the lineage), and whether one is within."""
        lo, hi = int(self.bounds[i]), int(self.bounds[i + 1])
        total, found = int(self.held[i]), bool(self.held_found[i])
        if hi > lo:
            usable = member[self.first[lo:hi] + 1] & member[self.second[lo:hi] + 1]
            total += int(np.count_nonzero(usable))
            found = found or bool((self.found[lo:hi] & usable).any())
        return total, found


class Batch:
    """The searches of ``CohortIndex.match`` for the cohorts ``who`` (positions in ``job``), each
    against the lineage (``pool``: ``CohortIndex.pool`` at the decision's width) and any of ``job``."""

    def __init__(
        self, pool: _Pool, job: Sequence[CohortSketch], who: Sequence[int], *, use: int, d: int, h: int
    ) -> None:
        self.d = d
        self.big = pool
        q = len(job)
        nbuckets = pool.marks.shape[1]
        self.nbig = len(pool.counts)
        self.counts = np.array([c.units for c in job], dtype=np.int64)
        self.sums = np.array([c.sums[:use] for c in job], dtype=np.int64).reshape(q, use)
        rows = [c.buckets[:nbuckets] for c in job]
        self.marks = np.array(rows, dtype=np.int64).reshape(q, nbuckets).astype(MARKS)
        self.who = np.asarray(who, dtype=np.int64)
        self.n = self.counts[self.who]
        # The new cohorts' own least elements (what the keyed searches look up), and which job
        # cohorts share one among their first h (as ``_Pool.sharing`` finds them in a job's pool).
        mine = [np.array([v for v in job[int(w)].least[:h] if v], dtype=np.int64) for w in self.who]
        least = np.array([(tuple(c.least[:h]) + (0,) * h)[:h] for c in job], dtype=np.int64).reshape(q, h)
        # Compared all at once (a few thousand pairs; ``np.isin`` per cohort sorts each time): the
        # padding is -1 on the looked-up side, which matches nothing (a kept element is positive).
        looked = np.full((len(self.who), h), -1, dtype=np.int64)
        for row, values in enumerate(mine):
            looked[row, : len(values)] = values
        same = least[None, :, :, None] == looked[:, None, None, :]
        self.hit_job = same.any(axis=(2, 3)).reshape(len(self.who), q)
        hits = [pool.rows_sharing(values) if len(values) else _EMPTY for values in mine]
        self.hit_owner = np.repeat(np.arange(len(hits)), [len(x) for x in hits])
        self.hit_rows = np.concatenate(hits) if hits else _EMPTY
        self.hit_gap = self.n.take(self.hit_owner) - pool.counts.take(self.hit_rows)
        self.latest = np.nonzero(pool.recent)[0]
        # The first HEAD bucket counts of each cohort, as one (HEAD,) int16 row: the first prefilter.
        width = min(HEAD, nbuckets)
        self.big_head = np.ascontiguousarray(pool.marks[:, :width])
        self.head = np.ascontiguousarray(self.marks[:, :width])
        # And the first bucket alone, as 1-d arrays: read before the head (about four in five
        # candidates of a keyed search stop there, at a fraction of the cost of a row gather).
        self.big_first = np.ascontiguousarray(pool.marks[:, 0]) if width else np.zeros(0, dtype=MARKS)
        self.first = np.ascontiguousarray(self.marks[:, 0]) if width else np.zeros(0, dtype=MARKS)
        # Every search's candidates are gathered first and decided by the solver in one call (one
        # pass per difference size rather than one per search), then each search is put together.
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        pairs = self._pairs()
        stages = (
            self._keyed(sign=-1),
            self._recent_unions(),
            self._keyed(sign=1),
            self._recent_complements(),
        )
        self._solve()
        self.pairs = pairs()
        self.stages = tuple(stage() for stage in stages)

    def match(self, i: int, accepted: Sequence[int], budget: int) -> tuple[str, bool] | None:
        """``(kind, repeat)`` for the ``i``-th cohort of ``who`` against the lineage and the job
        cohorts ``accepted`` (positions in ``job``), as ``CohortIndex.match`` decides it; None when
        a search would exceed ``budget`` (the caller asks ``match`` itself)."""
        member = np.zeros(len(self.counts) + 1, dtype=bool)
        member[0] = True
        member[np.asarray(accepted, dtype=np.int64) + 1] = True
        (_, near), (_, same) = self.pairs[0].read(i, member), self.pairs[1].read(i, member)
        if near:
            return "pair", same
        read = [stage.read(i, member) for stage in self.stages]
        if any(total > budget for total, _ in read):
            return None
        if read[0][1] or read[1][1]:
            return "union", same
        if read[2][1] or read[3][1]:
            return "complement", same
        return "", same

    # --- the searches ----------------------------------------------------------------------
    def _ids(self, job: np.ndarray) -> np.ndarray:
        """Job positions as ids numbered after the lineage's rows (``search._gather``'s numbering)."""
        return job + self.nbig

    def _pairs(self) -> Callable[[], tuple[_Stage, _Stage]]:
        """Every held cohort within d units by count: (within 1..d, the same units) per candidate."""
        d, big = self.d, self.big
        start, end = _inclusive(big.counts, self.n - d, self.n + d)
        owner, rows = _spans(start, end)
        near = np.abs(self.n[:, None] - self.counts[None, :]) <= d
        mine, job = np.nonzero(near)
        cohort = np.concatenate([owner, mine])
        other = np.concatenate([rows, self._ids(job)])
        close = np.nonzero(_close_marks(self._marks_of(cohort) - self._gather_marks(other), d))[0]
        cohort, other = cohort[close], other[close]
        diff = (self._sums_of(cohort) - self._gather_sums(other)) % P
        delta = self.n[cohort] - self._gather_counts(other)
        same = (delta == 0) & ~np.any(diff != 0, axis=1)
        within = np.zeros(len(delta), dtype=bool)
        self._pending.append((diff, delta, same, within, np.arange(len(delta))))
        lineage = other < self.nbig
        m = len(self.n)
        zero = np.zeros(m, dtype=np.int64)

        def put_together() -> tuple[_Stage, _Stage]:
            near, exact = (
                self._stage(
                    cohort[~lineage],
                    other[~lineage],
                    np.full(int(np.count_nonzero(~lineage)), -1, dtype=np.int64),  # no second member
                    flag[~lineage],
                    held=zero,
                    held_found=np.bincount(cohort[lineage & flag], minlength=m) > 0,
                )
                for flag in (within, same)
            )
            return near, exact

        return put_together

    def _keyed(self, *, sign: int) -> Callable[[], _Stage]:
        """``_keyed``: ordered (A, B), A sharing a least element with the new cohort, B any other held
        cohort, ``|n - c_A + sign * c_B| <= d`` (a union for sign -1, a complement for +1). Pairs with
        A = B count towards the budget (as there) but are never decided."""
        d, big, n = self.d, self.big, self.n
        counts = big.counts
        hit_owner, hit_rows = self.hit_owner, self.hit_rows
        # The partner's count is ``gap +- d`` for a union and ``-gap +- d`` for a complement, where
        # ``gap`` (the new cohort's count less the hit's) is the same for both: computed once a job.
        gap = self.hit_gap if sign < 0 else -self.hit_gap
        # Hits whose partner's count would lie outside every count held have no pair: dropped
        # before the lookups (for a union, the parts larger than the new cohort; for a complement,
        # the smaller), as ``_keyed`` drops them; they add nothing to the candidates or the budget.
        held = np.concatenate([counts[:1], counts[-1:], self.counts])
        if len(held):
            fits = np.flatnonzero((gap >= held.min() - d) & (gap <= held.max() + d))
            hit_owner, hit_rows, gap = hit_owner.take(fits), hit_rows.take(fits), gap.take(fits)
        a_counts = counts.take(hit_rows)
        # Lineage hit, lineage partner.
        lows, highs = gap - d, gap + d
        if sign < 0:
            # A union's bounds descend within each cohort's hits: looked up in reverse, ascending
            # (several times faster for thousands of them, as ``search._ranges`` does).
            start, end = (x[::-1] for x in _narrow(counts, lows[::-1], highs[::-1]))
        else:
            start, end = _narrow(counts, lows, highs)
        which, partner = _spans(start, end)
        owner, first = hit_owner[which], hit_rows[which]
        if sign < 0 and len(partner):
            # A union is symmetric: when the partner is a hit of the same cohort too, the pair also
            # comes with the two the other way round, and is decided there. Here it still counts
            # towards the budget but is marked as a pair with itself, which is never decided.
            hit = np.zeros(len(n) * len(counts), dtype=bool)
            hit[self.hit_owner * len(counts) + self.hit_rows] = True
            mirrored = hit[owner * len(counts) + partner] & (partner < first)
            partner = np.where(mirrored, first, partner)
        parts = [(owner, first, partner)]
        # Lineage hit, job partner: A's count in a range, looked up among each cohort's hits
        # (ascending by cohort, then by count) by one combined key.
        span = int(counts[-1]) + 2 * d + 2 if len(counts) else 1
        key = hit_owner * span + a_counts
        c = self.counts[None, :]
        lo, hi = (
            (n[:, None] - c - d, n[:, None] - c + d) if sign < 0 else (n[:, None] + c - d, n[:, None] + c + d)
        )
        base = np.arange(len(n))[:, None] * span
        start, end = _inclusive(key, base + np.clip(lo, 0, span - 1), base + np.clip(hi, -1, span - 1))
        end = np.where(hi < 0, start, end)
        which, at = _spans(start, end)
        cohort, job = np.divmod(which, len(self.counts)) if len(self.counts) else (_EMPTY, _EMPTY)
        parts.append((cohort, hit_rows[at], self._ids(job)))
        # Job hit, lineage partner.
        mine, job = np.nonzero(self.hit_job)
        cj = self.counts[job]
        lows, highs = (
            (n[mine] - cj - d, n[mine] - cj + d) if sign < 0 else (cj - n[mine] - d, cj - n[mine] + d)
        )
        start, end = _inclusive(counts, lows, highs)
        which, partner = _spans(start, end)
        parts.append((mine[which], self._ids(job[which]), partner))
        # Job hit, job partner (either may be the same cohort: counted, not decided).
        fits = np.abs(n[:, None, None] - c[:, :, None] + sign * c[:, None, :]) <= d
        mine, first, second = np.nonzero(fits & self.hit_job[:, :, None])
        parts.append((mine, self._ids(first), self._ids(second)))
        return self._combine(parts, sign=sign, skip_same=True)

    def _recent_unions(self) -> Callable[[], _Stage]:
        """``_unions`` over the recent cohorts and the job's: unordered pairs, ``|n - c_x - c_y| <= d``."""
        d, n = self.d, self.n
        latest = self.latest
        lc = self.big.counts[latest]
        lows, highs = n[:, None] - lc[None, :] - d, n[:, None] - lc[None, :] + d
        start, end = (x[:, ::-1] for x in _inclusive(lc, lows[:, ::-1], highs[:, ::-1]))  # ascending
        start = np.maximum(start, np.arange(len(lc))[None, :] + 1)
        which, partner = _spans(start, end)
        mine, first = np.divmod(which, len(lc)) if len(lc) else (_EMPTY, _EMPTY)
        parts = [(mine, latest[first], latest[partner])]
        c = self.counts[None, :]
        start, end = _inclusive(lc, n[:, None] - c - d, n[:, None] - c + d)
        which, partner = _spans(start, end)
        mine, job = np.divmod(which, len(self.counts)) if len(self.counts) else (_EMPTY, _EMPTY)
        parts.append((mine, latest[partner], self._ids(job)))
        q = len(self.counts)
        later = np.arange(q)[:, None] < np.arange(q)[None, :]
        fits = (np.abs(n[:, None, None] - c[:, :, None] - c[:, None, :]) <= d) & later[None, :, :]
        mine, first, second = np.nonzero(fits)
        parts.append((mine, self._ids(first), self._ids(second)))
        return self._combine(parts, sign=-1, skip_same=False)

    def _recent_complements(self) -> Callable[[], _Stage]:
        """``_complements`` over the recent cohorts and the job's: ordered (x, y), ``|n - c_x + c_y| <= d``
        (never x = y: every cohort decided here holds more than d units)."""
        d, n = self.d, self.n
        latest = self.latest
        lc = self.big.counts[latest]
        start, end = _inclusive(lc, n[:, None] + lc[None, :] - d, n[:, None] + lc[None, :] + d)
        which, larger = _spans(start, end)
        mine, smaller = np.divmod(which, len(lc)) if len(lc) else (_EMPTY, _EMPTY)
        parts = [(mine, latest[larger], latest[smaller])]
        c = self.counts[None, :]
        q = len(self.counts)
        start, end = _inclusive(lc, n[:, None] + c - d, n[:, None] + c + d)
        which, larger = _spans(start, end)
        mine, job = np.divmod(which, q) if q else (_EMPTY, _EMPTY)
        parts.append((mine, latest[larger], self._ids(job)))
        start, end = _inclusive(lc, c - n[:, None] - d, c - n[:, None] + d)
        which, smaller = _spans(start, end)
        mine, job = np.divmod(which, q) if q else (_EMPTY, _EMPTY)
        parts.append((mine, self._ids(job), latest[smaller]))
        fits = np.abs(n[:, None, None] - c[:, :, None] + c[:, None, :]) <= d
        mine, first, second = np.nonzero(fits)
        parts.append((mine, self._ids(first), self._ids(second)))
        return self._combine(parts, sign=1, skip_same=False)

    # --- deciding the candidates -----------------------------------------------------------
    def _combine(
        self, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], *, sign: int, skip_same: bool
    ) -> Callable[[], _Stage]:
        cohort = np.concatenate([p[0] for p in parts]).astype(np.int64, copy=False)
        first = np.concatenate([p[1] for p in parts]).astype(np.int64, copy=False)
        second = np.concatenate([p[2] for p in parts]).astype(np.int64, copy=False)
        m = len(self.n)
        # Each part is prefiltered on its own: the first (lineage cohorts only, most candidates)
        # reads the lineage's arrays directly, without the gathers across both numberings.
        founds = [self._within(*part, sign=sign, skip_same=skip_same) for part in parts]
        lineage = (first < self.nbig) & (second < self.nbig)
        held = np.bincount(cohort[lineage], minlength=m)
        keep = ~lineage

        def put_together() -> _Stage:
            found = np.concatenate(founds)
            held_found = np.bincount(cohort[lineage & found], minlength=m) > 0
            return self._stage(
                cohort[keep], first[keep], second[keep], found[keep], held=held, held_found=held_found
            )

        return put_together

    def _within(
        self, i: np.ndarray, a: np.ndarray, b: np.ndarray, *, sign: int, skip_same: bool
    ) -> np.ndarray:
        """Whether ``N_i - A + sign * B`` holds 1..d units, per candidate (never for A = B when
        ``skip_same``): the bucket prefilter, then the exact decision for the few left."""
        found = np.zeros(len(i), dtype=bool)
        rows = np.arange(len(i))
        if skip_same and len(i):
            same = a == b
            if same.any():
                rows = np.flatnonzero(~same)
                i, a, b = i.take(rows), a.take(rows), b.take(rows)
        if not len(rows):
            return found
        if self.marks.shape[1]:
            # The first HEAD buckets first (their part of the sum is at most the whole sum, so this
            # dismisses nothing the full prefilter keeps), from small contiguous copies: most
            # candidates stop here, before any full bucket row is read. In place, in int16. The
            # first bucket's own difference (at most the head's sum) is read before that.
            mine = self.who.take(i)
            single = self.first.take(mine)
            single -= _gather(self.big_first, self.first, a)
            other = _gather(self.big_first, self.first, b)
            single = np.add(single, other, out=single) if sign > 0 else np.subtract(single, other, out=single)
            keep = np.flatnonzero((single <= self.d) & (single >= -self.d))
            rows, i, a, b, mine = rows.take(keep), i.take(keep), a.take(keep), b.take(keep), mine.take(keep)
            one = self.head.take(mine, axis=0)
            one -= _gather(self.big_head, self.head, a)
            other = _gather(self.big_head, self.head, b)
            one = np.add(one, other, out=one) if sign > 0 else np.subtract(one, other, out=one)
            keep = np.flatnonzero(_abs_total(one) <= self.d)
            rows, i, a, b = rows.take(keep), i.take(keep), a.take(keep), b.take(keep)
            marks = self._marks_of(i)
            marks -= self._gather_marks(a)
            other = self._gather_marks(b)
            marks = np.add(marks, other, out=marks) if sign > 0 else np.subtract(marks, other, out=marks)
            close = np.flatnonzero(_close_marks(marks, self.d))
            rows, i, a, b = rows.take(close), i.take(close), a.take(close), b.take(close)
        if not len(rows):
            return found
        diff = (self._sums_of(i) - self._gather_sums(a) + sign * self._gather_sums(b)) % P
        delta = self.n[i] - self._gather_counts(a) + sign * self._gather_counts(b)
        exact = (delta == 0) & ~np.any(diff != 0, axis=1)
        self._pending.append((diff, delta, exact, found, rows))  # decided in ``_solve``
        return found

    def _solve(self) -> None:
        """Decide every pending candidate in one ``within_many`` call and write the answers back."""
        if not self._pending:
            return
        # An exact match (the same units again) is never "within" (``& ~exact`` below), so it is not
        # solved at all: its system is all zeros, which the solver could only decide one at a time.
        exact = np.concatenate([p[2] for p in self._pending])
        ask = np.flatnonzero(~exact)
        answers = np.zeros(len(exact), dtype=bool)
        answers[ask] = within_many(
            np.concatenate([p[0] for p in self._pending])[ask],
            np.concatenate([p[1] for p in self._pending])[ask],
            self.d,
        )
        at = 0
        for _, delta, exact, found, rows in self._pending:
            found[rows] = answers[at : at + len(delta)] & ~exact
            at += len(delta)
        self._pending = []

    def _stage(
        self,
        cohort: np.ndarray,
        first: np.ndarray,
        second: np.ndarray,
        found: np.ndarray,
        *,
        held: np.ndarray,
        held_found: np.ndarray,
    ) -> _Stage:
        """Candidates grouped by cohort, their members as job positions (-1: a lineage cohort)."""
        first = np.where(first >= self.nbig, first - self.nbig, -1)
        second = np.where(second >= self.nbig, second - self.nbig, -1)
        order = np.argsort(cohort, kind="stable")
        bounds = np.searchsorted(cohort[order], np.arange(len(self.n) + 1), side="left")
        return _Stage(held, held_found, first[order], second[order], found[order], bounds)

    def _marks_of(self, cohort: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.marks.take(self.who.take(cohort), axis=0)
        return out

    def _sums_of(self, cohort: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.sums.take(self.who.take(cohort), axis=0)
        return out

    def _gather_marks(self, ids: np.ndarray) -> np.ndarray:
        return _gather(self.big.marks, self.marks, ids)

    def _gather_sums(self, ids: np.ndarray) -> np.ndarray:
        return _gather(self.big.sums, self.sums, ids)

    def _gather_counts(self, ids: np.ndarray) -> np.ndarray:
        return _gather(self.big.counts, self.counts, ids)
