"""The ledger's decision, pure: release a cell, or withhold it because its units differ from what was
released before by 1..k-1.

A *cell* is one released row; its cohorts are the unit sets behind it (one per unit slot: one per
joined protected table, and one per ``FILTER`` subset). A cell is withheld if any of its cohorts,
against the cohorts already released in the lineage (earlier jobs, and earlier cells of the same job),

- differs from one of them by 1..k-1 units (``N - A``: the same total without one small region, the
  ``UNION ALL`` of a cohort and the same cohort plus one person);
- differs from the union of two of them by 1..k-1 units (``N - A - B``: two groups and their total
  when a small group is missing from the groups, or inclusion-exclusion over two overlapping cells);
- differs from the difference of two of them by 1..k-1 units (``N - A + B``: a total, a part of it,
  and "the total without that part" with a few more or fewer people).

A repeat (the same units again, or a combination that matches exactly) is released; a cohort that
differs by at least k is released. Pairs are checked against every earlier cohort whose unit count is
within k-1 (only those can be that close). Unions and complements are checked for pairs of earlier
cohorts whose counts add up (or subtract) to within k-1, up to ``triple_budget`` combinations per
cohort: past that budget the rest are not checked, which the caller logs for auditors.

What it cannot catch: combinations of three or more earlier cells, differences over many jobs whose
pieces each differ by at least k (a tracker built from large cohorts), and anything a cell's *values*
say beyond its units (two cohorts of the same units with different filters on the aggregated column).
Those need differential privacy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from policies.cohorts.difference import within_many
from policies.cohorts.sketch import CohortSketch, P

DEFAULT_TRIPLE_BUDGET = 20_000
#: Power sums beyond the two spare equations: a sketch of ``m`` sums decides differences up to m - 2.
SPARE_SUMS = 2

_WITHHELD = (
    "withheld: the units behind this row differ by fewer than {k} (min_units) from those behind {what} "
    "released earlier under this scope (by any of its grantees), so the two together would single out "
    "that difference. Widen or change the cohort so that it differs by at least {k} units, or repeat an "
    "earlier query exactly; how many units differ is not disclosed"
)
_WHAT = {
    "pair": "a row",
    "union": "the union of two rows",
    "complement": "the difference of two rows",
}


def sums_for(min_units: int) -> int:
    """How many power sums a cohort keeps under ``min_units``: k - 1 units, plus the spare equations.

    >>> sums_for(10)
    11
    """
    return max(1, min_units - 1) + SPARE_SUMS


@dataclass(frozen=True)
class Cell:
    """One row a job would release, with the cohorts behind it."""

    cohorts: tuple[CohortSketch, ...]


@dataclass(frozen=True)
class Decision:
    released: bool
    reason: str
    #: For auditors only: pair, union or complement (empty when released).
    matched: str = ""


@dataclass(frozen=True)
class Outcome:
    decisions: tuple[Decision, ...]
    #: The cohorts of the released cells that the ledger did not hold yet (repeats are not stored again).
    recorded: tuple[CohortSketch, ...]
    #: Union and complement combinations left unchecked because of the budget (for the audit log).
    unchecked: int = 0


@dataclass
class _Bucket:
    """Cohorts with the same number of power sums, sorted by unit count."""

    width: int
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sums: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))

    def add(self, cohorts: Sequence[CohortSketch]) -> None:
        counts = np.array([c.units for c in cohorts], dtype=np.int64)
        sums = np.array([c.sums for c in cohorts], dtype=np.int64).reshape(len(cohorts), self.width)
        counts = np.concatenate([self.counts, counts])
        sums = np.concatenate([self.sums.reshape(-1, self.width), sums])
        order = np.argsort(counts, kind="stable")
        self.counts, self.sums = counts[order], sums[order]


class CohortIndex:
    """The cohorts released so far in one lineage, indexed by unit count (in memory, rebuilt from the
    sealed store)."""

    def __init__(self, cohorts: Sequence[CohortSketch] = ()) -> None:
        self._buckets: dict[int, _Bucket] = {}
        self._size = 0
        self.add(cohorts)

    def __len__(self) -> int:
        return self._size

    def snapshot(self) -> tuple[int, dict[int, tuple[np.ndarray, np.ndarray]]]:
        """What :meth:`restore` needs to undo later additions (the arrays are replaced, never edited)."""
        return self._size, {w: (b.counts, b.sums) for w, b in self._buckets.items()}

    def restore(self, state: tuple[int, dict[int, tuple[np.ndarray, np.ndarray]]]) -> None:
        size, arrays = state
        self._size = size
        self._buckets = {w: b for w, b in self._buckets.items() if w in arrays}
        for width, (counts, sums) in arrays.items():
            self._buckets[width].counts, self._buckets[width].sums = counts, sums

    def add(self, cohorts: Sequence[CohortSketch]) -> None:
        by_width: dict[int, list[CohortSketch]] = {}
        for cohort in cohorts:
            by_width.setdefault(len(cohort.sums), []).append(cohort)
        for width, group in by_width.items():
            self._buckets.setdefault(width, _Bucket(width)).add(group)
            self._size += len(group)

    def match(self, cohort: CohortSketch, *, min_units: int, budget: int) -> tuple[str, bool, int]:
        """``(kind, repeat, unchecked)``: ``kind`` is pair, union or complement when ``cohort`` is within
        1..k-1 units of what the index holds ('' otherwise); ``repeat`` when it equals a held cohort."""
        repeat = False
        unchecked = 0
        for bucket in self._buckets.values():
            width = min(bucket.width, len(cohort.sums))
            d = min(min_units - 1, width - SPARE_SUMS)
            if d < 1 or not len(bucket.counts):
                continue
            mine = np.array(cohort.sums[:width], dtype=np.int64)
            held = bucket.sums[:, :width]
            kind, same = _pairs(cohort.units, mine, bucket.counts, held, d)
            repeat |= same
            if kind:
                return kind, repeat, unchecked
            for kind, combos in (("union", _unions), ("complement", _complements)):
                left, right, skipped = combos(cohort.units, bucket.counts, d, budget)
                unchecked += skipped
                if len(left) and _any_within(
                    cohort.units, mine, bucket.counts, held, left, right, d, sign=-1 if kind == "union" else 1
                ):
                    return kind, repeat, unchecked
        return "", repeat, unchecked


def _pairs(n: int, mine: np.ndarray, counts: np.ndarray, held: np.ndarray, d: int) -> tuple[str, bool]:
    lo, hi = np.searchsorted(counts, [n - d, n + d + 1])
    if lo == hi:
        return "", False
    diff = (mine[None, :] - held[lo:hi]) % P
    delta = n - counts[lo:hi]
    same = (delta == 0) & ~np.any(diff != 0, axis=1)
    near = within_many(diff, delta, d) & ~same
    return ("pair" if bool(near.any()) else ""), bool(same.any())


def _ranges(counts: np.ndarray, lows: np.ndarray, highs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _any_within(
    n: int,
    mine: np.ndarray,
    counts: np.ndarray,
    held: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    d: int,
    *,
    sign: int,
) -> bool:
    """Whether ``N - A[left] + sign * B[right]`` holds 1..d units for some candidate."""
    diff = (mine[None, :] - held[left] + sign * held[right]) % P
    delta = n - counts[left] + sign * counts[right]
    exact = (delta == 0) & ~np.any(diff != 0, axis=1)
    return bool((within_many(diff, delta, d) & ~exact).any())


def decide(
    index: CohortIndex,
    cells: Sequence[Cell],
    *,
    min_units: int,
    triple_budget: int = DEFAULT_TRIPLE_BUDGET,
) -> Outcome:
    """Decide each cell in order against ``index``, adding each released cell's cohorts to it, so
    that the cells of one job are compared with each other too. ``index`` is updated in place.

    >>> import numpy as np
    >>> from policies.cohorts.sketch import element_key, sketch_of
    >>> key = element_key(bytes(32))
    >>> central = sketch_of(np.arange(946), key, sums_for(10))
    >>> plus_one = sketch_of(np.arange(947), key, sums_for(10))
    >>> out = decide(CohortIndex(), [Cell((central,)), Cell((plus_one,)), Cell((central,))], min_units=10)
    >>> [d.released for d in out.decisions], len(out.recorded)
    ([True, False, True], 1)
    """
    decisions: list[Decision] = []
    recorded: list[CohortSketch] = []
    unchecked = 0
    for cell in cells:
        kind = ""
        fresh: list[CohortSketch] = []
        # A cell's cohorts are compared with each other too (two FILTER subsets one person apart):
        # each joins the index as soon as it is checked, and all leave again if the cell is withheld.
        before = index.snapshot()
        for cohort in cell.cohorts:
            if cohort.units == 0:
                continue
            kind, repeat, skipped = index.match(cohort, min_units=min_units, budget=triple_budget)
            unchecked += skipped
            if kind:
                break
            if not repeat:
                index.add([cohort])
                fresh.append(cohort)
        if kind:
            index.restore(before)
            decisions.append(Decision(False, _WITHHELD.format(k=min_units, what=_WHAT[kind]), kind))
            continue
        recorded.extend(fresh)
        decisions.append(Decision(True, "released: no earlier row of this scope is within min_units of it"))
    return Outcome(tuple(decisions), tuple(recorded), unchecked)
