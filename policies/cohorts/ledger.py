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
differs by at least k is released. Candidates are narrowed first by two exact necessary conditions
(a combination of at most k-1 units changes the unit count, and each keyed bucket count, by at most
k-1 in total), then decided exactly (``difference``). Pairs are checked against *every* earlier cohort
whose unit count is within k-1. Unions and complements are searched twice (``search``): over the whole
lineage by shared least elements (which finds every union, and the complements whose new cohort holds
least elements of the larger one), and among the ``RECENT`` most recently released cohorts by count
alone, at most ``triple_budget`` combinations per cohort and search (all pairs of a 10,000-cell ledger
would be 50 million combinations, far past a release's time budget). Combinations left out by the
budget are counted for the audit log.

Then the job's *margins* (``margins``: the sums of its released rows that agree on up to two visible
columns) are checked like cohorts; one that is within 1..k-1 of a released cohort, or of twice one of
its own rows, withholds its smallest row (secondary suppression), and the margins that pass are
recorded, so a total released later is compared with them.

What it cannot catch: combinations of three or more earlier cells other than one job's margins,
complements whose larger cohort's least elements lie in the subtracted part once they are out of the
recent window, differences over many jobs whose pieces each differ by at least k (a tracker built from
large cohorts), and anything a cell's *values* say beyond its units (two cohorts of the same units with
different filters on the aggregated column). Those need differential privacy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from policies.cohorts.batch import Batch
from policies.cohorts.difference import within_many
from policies.cohorts.margins import Margin, margins_of
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
from policies.cohorts.sketch import CohortSketch, P

DEFAULT_TRIPLE_BUDGET = 5_000
#: How many of the most recently released cohorts unions and complements are drawn from.
RECENT = 400
#: Power sums beyond the two spare equations: a sketch of ``m`` sums decides differences up to m - 2.
SPARE_SUMS = 2
#: The sketch width every threshold up to COMMON_SUMS - 1 shares (``sums_for``).
COMMON_SUMS = 16

_WITHHELD = (
    "withheld: the units behind this row differ by fewer than {k} (min_units) from those behind {what} "
    "released earlier under this scope (by any of its grantees), so the two together would single out "
    "that difference. Widen or change the cohort so that it differs by at least {k} units, or repeat an "
    "earlier query exactly; how many units differ is not disclosed"
)
_WHAT = {
    "pair": "a row (or a sum of rows of one result)",
    "union": "the union of two rows",
    "complement": "the difference of two rows",
}
_RELEASED = "released: no earlier row of this scope is within min_units of it"
_SECONDARY = (
    "withheld (secondary suppression): the rows released beside it add up to within {k} units "
    "(min_units) of a row released in this result or earlier under this scope, so their difference "
    "would give rows suppressed below min_units; the smallest row of that sum is withheld with them. "
    "How many units differ is not disclosed"
)


def sums_for(min_units: int) -> int:
    """How many power sums a cohort keeps under ``min_units``: at least ``COMMON_SUMS``, so that every
    threshold up to ``COMMON_SUMS - 1`` writes sketches of one width (a new ``min_units`` must not put
    the cohorts released before it out of reach), and more for a larger k (k - 1 units plus the spare
    equations). A decision reads only the sums its k needs.

    >>> sums_for(10), sums_for(11), sums_for(40)
    (16, 16, 41)
    """
    return max(COMMON_SUMS, max(1, min_units - 1) + SPARE_SUMS)


def least_for(min_units: int) -> int:
    """How many least elements a cohort keeps: one more than the largest difference its sums decide.

    >>> least_for(10), least_for(40)
    (15, 40)
    """
    return sums_for(min_units) - SPARE_SUMS + 1


@dataclass(frozen=True)
class Cell:
    """One row a job would release, with the cohorts behind it.

    ``slots`` names each cohort's slot (the hidden column it came from) and ``row`` holds the row's
    visible values: together they say which rows add up to a margin (``margins``). A cell without
    them takes part in no margin.
    """

    cohorts: tuple[CohortSketch, ...]
    slots: tuple[str, ...] = ()
    row: tuple[object, ...] = ()

    def slot(self, name: str) -> CohortSketch | None:
        return next((c for s, c in zip(self.slots, self.cohorts, strict=False) if s == name), None)


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


_Layout = tuple[int, int, bool]  # power sums, prefilter buckets, whether least elements are kept
_Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass
class _Group:
    """Cohorts of one sketch layout, sorted by unit count: counts, power sums, bucket counts, the
    order in which each was released (``seqs``) and least elements (0-padded to ``width - 1``)."""

    layout: _Layout
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sums: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    marks: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int16))
    seqs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    least: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    #: Every nonzero least element with the seq of its cohort, sorted by element: the keyed lookup's
    #: table, kept up to date on insert so that a check never sorts the whole lineage.
    table_values: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    table_seqs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

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
        self.counts = np.insert(self.counts, at, counts)
        self.sums = np.insert(self.sums.reshape(held, width), at, _sums(ordered, width), axis=0)
        self.marks = np.insert(self.marks.reshape(held, nbuckets), at, _marks(ordered, nbuckets), axis=0)
        self.seqs = np.insert(self.seqs, at, np.array([q for _, q in pairs], dtype=np.int64))
        fresh = _least(ordered, h)
        self.least = np.insert(self.least.reshape(held, h), at, fresh, axis=0)
        values = fresh.ravel()
        owners = np.repeat(np.array([q for _, q in pairs], dtype=np.int64), h)
        order = np.argsort(values[values != 0], kind="stable")
        values, owners = values[values != 0][order], owners[values != 0][order]
        where = np.searchsorted(self.table_values, values, side="right")
        self.table_values = np.insert(self.table_values, where, values)
        self.table_seqs = np.insert(self.table_seqs, where, owners)

    def arrays(self) -> _Arrays:
        return self.counts, self.sums, self.marks, self.seqs, self.least, self.table_values, self.table_seqs


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


def _layout(cohort: CohortSketch) -> _Layout:
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
        for layout, (counts, sums, marks, seqs, least, values, owners) in arrays.items():
            group = self._groups[layout]
            group.counts, group.sums, group.marks, group.seqs, group.least = counts, sums, marks, seqs, least
            group.table_values, group.table_seqs = values, owners

    def add(self, cohorts: Sequence[CohortSketch]) -> None:
        by_layout: dict[_Layout, tuple[list[CohortSketch], list[int]]] = {}
        for cohort in cohorts:
            group, seqs = by_layout.setdefault(_layout(cohort), ([], []))
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
                use, d = _capacity(width, cohort, min_units)
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
                (group.table_values, row_of[group.table_seqs]),
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
        use, d = _capacity(len(cohort.sums), cohort, min_units)
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
        big = self.pool(use, nbuckets, h, latest=RECENT)
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


def _capacity(width: int, cohort: CohortSketch, min_units: int) -> tuple[int, int]:
    """The sums a decision reads (those two sketches share, no more than k - 1 needs) and the
    largest difference it decides (k - 1 at most)."""
    shared = min(width, len(cohort.sums))
    d = min(min_units - 1, shared - SPARE_SUMS)
    return d + SPARE_SUMS, d


def decide(
    index: CohortIndex,
    cells: Sequence[Cell],
    *,
    min_units: int,
    triple_budget: int = DEFAULT_TRIPLE_BUDGET,
    record: bool = True,
) -> Outcome:
    """Decide each cell in order against ``index``, comparing it with the cells of the job released
    before it too; then the job's margins (sums of its released rows, ``margins``), withholding the
    smallest row of a margin that is within 1..k-1 of a released cohort (secondary suppression).
    ``index`` is updated in place, unless ``record`` is False: then it is left as it was (the caller
    adds ``Outcome.recorded`` once they are stored).

    The same decisions as :func:`decide_each`, which asks ``CohortIndex.match`` once per cohort:
    here the searches of all the job's cohorts run at once (``batch``), and ``match`` is asked only
    for a cohort the batch does not cover.

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
    fresh_of: dict[int, list[CohortSketch]] = {}
    unchecked = 0
    own = [[c for c in cell.cohorts if c.units != 0] for cell in cells]
    cohorts = [c for mine in own for c in mine]
    # The margins the job has if every row is released (the usual case) are searched in the same
    # batch as its rows; if some row is withheld, ``_secondary_batched`` searches the actual ones.
    guess, left_out = _margin_totals(cells, list(range(len(cells))))
    everything = cohorts + [total for _, _, total in guess]
    match = _Matcher(index, everything, range(len(everything)), min_units=min_units, budget=triple_budget)
    job: list[int] = []  # positions (in ``cohorts``) of this job's released cohorts so far
    at = 0
    for mine in own:
        first, at = at, at + len(mine)
        kind = ""
        # A cell's cohorts are compared with each other too (two FILTER subsets one person apart):
        # each joins the job's cohorts as soon as it is checked, and all leave again if it is withheld.
        before = len(job)
        fresh: list[CohortSketch] = []
        for position, cohort in enumerate(mine, start=first):
            kind, repeat, skipped = match(position, job)
            unchecked += skipped
            if kind:
                break
            if not repeat:
                job.append(position)
                fresh.append(cohort)
        if kind:
            del job[before:]
            decisions.append(Decision(False, _WITHHELD.format(k=min_units, what=_WHAT[kind]), kind))
            continue
        fresh_of[len(decisions)] = fresh
        decisions.append(Decision(True, _RELEASED))
    searched = _Round(match, job, len(cohorts), guess, left_out) if len(fresh_of) == len(cells) else None
    kept, sums, skipped = _secondary_batched(
        index, cells, list(fresh_of), fresh_of, min_units=min_units, budget=triple_budget, first=searched
    )
    return _outcome(
        index, decisions, fresh_of, kept, sums, unchecked + skipped, min_units=min_units, record=record
    )


def decide_each(
    index: CohortIndex,
    cells: Sequence[Cell],
    *,
    min_units: int,
    triple_budget: int = DEFAULT_TRIPLE_BUDGET,
    record: bool = True,
) -> Outcome:
    """:func:`decide` one cohort at a time (``CohortIndex.match`` for each, against a copy of the
    job's cohorts kept as an index): the reference the batched search is tested against."""
    decisions: list[Decision] = []
    fresh_of: dict[int, list[CohortSketch]] = {}
    unchecked = 0
    job = CohortIndex()  # this job's released cohorts so far: compared like the earlier ones
    for position, cell in enumerate(cells):
        kind = ""
        before = job.snapshot()
        fresh: list[CohortSketch] = []
        for cohort in cell.cohorts:
            if cohort.units == 0:
                continue
            kind, repeat, skipped = index.match(cohort, min_units=min_units, budget=triple_budget, also=job)
            unchecked += skipped
            if kind:
                break
            if not repeat:
                job.add([cohort])
                fresh.append(cohort)
        if kind:
            job.restore(before)
            decisions.append(Decision(False, _WITHHELD.format(k=min_units, what=_WHAT[kind]), kind))
            continue
        fresh_of[position] = fresh
        decisions.append(Decision(True, _RELEASED))
    kept, sums, skipped = _secondary(
        index, cells, list(fresh_of), fresh_of, min_units=min_units, budget=triple_budget
    )
    return _outcome(
        index, decisions, fresh_of, kept, sums, unchecked + skipped, min_units=min_units, record=record
    )


def _outcome(
    index: CohortIndex,
    decisions: list[Decision],
    fresh_of: dict[int, list[CohortSketch]],
    kept: list[int],
    sums: list[CohortSketch],
    unchecked: int,
    *,
    min_units: int,
    record: bool,
) -> Outcome:
    for position in fresh_of:
        if position not in kept:
            decisions[position] = Decision(False, _SECONDARY.format(k=min_units), "margin")
    recorded = [c for p in kept for c in fresh_of[p]] + sums
    if record:
        index.add(recorded)
    return Outcome(tuple(decisions), tuple(recorded), unchecked)


class _Matcher:
    """``CohortIndex.match`` for the cohorts at the positions ``who`` in ``cohorts``, each against
    the index and the cohorts it is given as accepted (positions in ``cohorts`` too): from one
    :class:`~policies.cohorts.batch.Batch` for the cohorts it covers, from ``match`` itself for the
    others (and for a search the batch leaves to it)."""

    def __init__(
        self,
        index: CohortIndex,
        cohorts: Sequence[CohortSketch],
        who: Sequence[int],
        *,
        min_units: int,
        budget: int,
    ) -> None:
        self.index, self.cohorts, self.who = index, cohorts, list(who)
        self.min_units, self.budget = min_units, budget
        self.batch, covered = _batch(index, cohorts, self.who, min_units=min_units)
        self.row = {self.who[i]: row for row, i in enumerate(covered)}

    def __call__(self, position: int, accepted: Sequence[int]) -> tuple[str, bool, int]:
        """``match`` for the cohort at ``position`` (one of ``who``) against the index and the
        cohorts at the positions ``accepted``."""
        row = self.row.get(position)
        if self.batch is not None and row is not None:
            got = self.batch.match(row, accepted, self.budget)
            if got is not None:
                return got[0], got[1], 0
        also = CohortIndex([self.cohorts[j] for j in accepted])
        cohort = self.cohorts[position]
        return self.index.match(cohort, min_units=self.min_units, budget=self.budget, also=also)


def _batch(
    index: CohortIndex, cohorts: Sequence[CohortSketch], who: Sequence[int], *, min_units: int
) -> tuple[Batch | None, list[int]]:
    """The batched search, and which of ``who`` (by their order there) it covers: those it decides
    as ``match`` does. That needs one sketch layout in the lineage and the job (so one width,
    searched once), at least one unit to decide, and a cohort larger than that (``match`` pairs a
    cohort of at most d units with itself as a complement)."""
    layouts = {_layout(c) for c in cohorts} | set(index._groups)
    if not who or len(layouts) != 1:
        return None, []
    ((width, nbuckets, _),) = layouts
    use, d = _capacity(width, cohorts[who[0]], min_units)
    covered = [i for i, w in enumerate(who) if cohorts[w].units > d]
    if d < 1 or not covered:
        return None, []
    pool = index.pool(use, nbuckets, d + 1, latest=RECENT)
    return Batch(pool, cohorts, [who[i] for i in covered], use=use, d=d, h=d + 1), covered


def _secondary(
    index: CohortIndex,
    cells: Sequence[Cell],
    released: list[int],
    fresh_of: dict[int, list[CohortSketch]],
    *,
    min_units: int,
    budget: int,
) -> tuple[list[int], list[CohortSketch], int]:
    """Secondary suppression: ``(kept, margins, unchecked)``. The released cells that stay released,
    and the margins (sums of them) to record, once no margin is within 1..k-1 units of a held cohort,
    of a cohort of this job, or of another margin, and no margin is one of its own rows twice give or
    take 1..k-1 (a subtotal released beside its parts, as ``ROLLUP`` or a ``UNION ALL`` does).

    Each failing margin withholds its smallest row (by units: a choice that depends only on released
    cohorts) and everything is decided again; a row less changes every margin that held it.
    """
    kept = list(released)
    rows = [c.row for c in cells]
    slots = [c.slots for c in cells]
    while True:
        found, unchecked = margins_of(rows, slots, kept)
        job = CohortIndex([c for p in kept for c in fresh_of[p]])
        accepted: list[CohortSketch] = []
        culprit: int | None = None
        for margin in found:
            parts = [c for c in (cells[i].slot(margin.slot) for i in margin.members) if c is not None]
            total = _total(parts)
            if total is None:
                continue
            kind, repeat, skipped = index.match(total, min_units=min_units, budget=budget, also=job)
            unchecked += skipped
            if kind or _twice_a_part(total, parts, min_units):
                sizes = {i: c.units for i in margin.members if (c := cells[i].slot(margin.slot)) is not None}
                culprit = min(sizes, key=lambda i: (sizes[i], i))
                break
            if not repeat:
                job.add([total])
                accepted.append(total)
        if culprit is None:
            return kept, accepted, unchecked
        kept.remove(culprit)


@dataclass(frozen=True)
class _Round:
    """A search already run for a round of margins: ``match`` holds the job's released cohorts at
    the positions ``job`` and the ``margins`` from position ``offset`` on (``left_out``: how many
    ``margins_of`` left out)."""

    match: _Matcher
    job: list[int]
    offset: int
    margins: list[tuple[Margin, list[CohortSketch], CohortSketch]]
    left_out: int


def _margin_totals(
    cells: Sequence[Cell], kept: list[int]
) -> tuple[list[tuple[Margin, list[CohortSketch], CohortSketch]], int]:
    """The margins of the ``kept`` rows that have a total, with their parts and total, in order; and
    how many ``margins_of`` left out."""
    found, unchecked = margins_of([c.row for c in cells], [c.slots for c in cells], kept)
    out: list[tuple[Margin, list[CohortSketch], CohortSketch]] = []
    for margin in found:
        parts = [c for c in (cells[i].slot(margin.slot) for i in margin.members) if c is not None]
        total = _total(parts)
        if total is not None:
            out.append((margin, parts, total))
    return out, unchecked


def _secondary_batched(
    index: CohortIndex,
    cells: Sequence[Cell],
    released: list[int],
    fresh_of: dict[int, list[CohortSketch]],
    *,
    min_units: int,
    budget: int,
    first: _Round | None = None,
) -> tuple[list[int], list[CohortSketch], int]:
    """:func:`_secondary` with each round's margins searched at once (``_Matcher``); the first round
    reuses ``first`` (every row released: the margins searched with the rows)."""
    kept = list(released)
    while True:
        if first is not None:
            match, job, offset = first.match, list(first.job), first.offset
            margins, unchecked = first.margins, first.left_out
            first = None
        else:
            margins, unchecked = _margin_totals(cells, kept)
            base = [c for p in kept for c in fresh_of[p]]
            cohorts = base + [total for _, _, total in margins]
            match = _Matcher(
                index, cohorts, range(len(base), len(cohorts)), min_units=min_units, budget=budget
            )
            job, offset = list(range(len(base))), len(base)
        accepted: list[CohortSketch] = []
        culprit: int | None = None
        for i, (margin, parts, total) in enumerate(margins):
            kind, repeat, skipped = match(offset + i, job)
            unchecked += skipped
            if kind or _twice_a_part(total, parts, min_units):
                sizes = {j: c.units for j in margin.members if (c := cells[j].slot(margin.slot)) is not None}
                culprit = min(sizes, key=lambda j: (sizes[j], j))
                break
            if not repeat:
                job.append(offset + i)
                accepted.append(total)
        if culprit is None:
            return kept, accepted, unchecked
        kept.remove(culprit)


def _total(parts: Sequence[CohortSketch]) -> CohortSketch | None:
    """The sketch of the multiset union of ``parts`` (sums and counts add up; the least elements of
    the union are the least of the parts' least elements, when every part keeps them); None without
    parts."""
    if not parts:
        return None
    width = min(len(c.sums) for c in parts)
    nbuckets = min(len(c.buckets) for c in parts)
    sums = np.array([c.sums[:width] for c in parts], dtype=np.int64).sum(axis=0) % P
    buckets = np.array([c.buckets[:nbuckets] for c in parts], dtype=np.int64).sum(axis=0) % 2**16
    least: tuple[int, ...] = ()
    if all(c.least for c in parts):
        h = width - SPARE_SUMS + 1  # what ``least_for`` keeps at this width
        least = tuple(sorted({v for c in parts for v in c.least}))[:h]
    return CohortSketch(
        sum(c.units for c in parts), tuple(int(v) for v in sums), tuple(int(b) for b in buckets), least
    )


def _twice_a_part(total: CohortSketch, parts: Sequence[CohortSketch], min_units: int) -> bool:
    """Whether ``total - 2 * part`` holds 1..k-1 units for a part: the part is a subtotal of the others."""
    width, d = _capacity(len(total.sums), total, min_units)
    d = min(d, min((_capacity(len(p.sums), p, min_units)[1] for p in parts), default=d))
    if d < 1:
        return False
    units = np.array([p.units for p in parts], dtype=np.int64)
    delta = total.units - 2 * units
    near = np.abs(delta) <= d
    if not near.any():
        return False
    held = np.array([p.sums[:width] for p in parts], dtype=np.int64)[near]
    diff = (np.array(total.sums[:width], dtype=np.int64)[None, :] - 2 * held) % P
    exact = (delta[near] == 0) & ~np.any(diff != 0, axis=1)
    return bool((within_many(diff, delta[near], d) & ~exact).any())
