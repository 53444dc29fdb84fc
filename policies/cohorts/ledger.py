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
from dataclasses import dataclass

from policies.cohorts import sizing
from policies.cohorts.batch import Batch
from policies.cohorts.decisions import RELEASED, WHAT, WITHHELD, Cell, Decision, Outcome, outcome
from policies.cohorts.index import CohortIndex, layout_of
from policies.cohorts.sizing import DEFAULT_TRIPLE_BUDGET, capacity, sums_for
from policies.cohorts.sketch import CohortSketch
from policies.cohorts.totals import MarginTotal, margin_totals, twice_a_part

__all__ = ["Cell", "Decision", "Outcome", "decide", "sums_for"]


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

    The same decisions as :func:`policies.cohorts.reference.decide_each`, which asks
    ``CohortIndex.match`` once per cohort: here the searches of all the job's cohorts run at once
    (``batch``), and ``match`` is asked only for a cohort the batch does not cover.

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
    guess, left_out = margin_totals(cells, list(range(len(cells))))
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
            decisions.append(Decision(False, WITHHELD.format(k=min_units, what=WHAT[kind]), kind))
            continue
        fresh_of[len(decisions)] = fresh
        decisions.append(Decision(True, RELEASED))
    searched = _Round(match, job, len(cohorts), guess, left_out) if len(fresh_of) == len(cells) else None
    kept, sums, skipped = _secondary_batched(
        index, cells, list(fresh_of), fresh_of, min_units=min_units, budget=triple_budget, first=searched
    )
    return outcome(
        index, decisions, fresh_of, kept, sums, unchecked + skipped, min_units=min_units, record=record
    )


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
    layouts = {layout_of(c) for c in cohorts} | index.layouts()
    if not who or len(layouts) != 1:
        return None, []
    ((width, nbuckets, _),) = layouts
    use, d = capacity(width, cohorts[who[0]], min_units)
    covered = [i for i, w in enumerate(who) if cohorts[w].units > d]
    if d < 1 or not covered:
        return None, []
    pool = index.pool(use, nbuckets, d + 1, latest=sizing.RECENT)
    return Batch(pool, cohorts, [who[i] for i in covered], use=use, d=d, h=d + 1), covered


@dataclass(frozen=True)
class _Round:
    """A search already run for a round of margins: ``match`` holds the job's released cohorts at
    the positions ``job`` and the ``margins`` from position ``offset`` on (``left_out``: how many
    ``margins_of`` left out)."""

    match: _Matcher
    job: list[int]
    offset: int
    margins: list[MarginTotal]
    left_out: int


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
    """:func:`policies.cohorts.reference.secondary` with each round's margins searched at once
    (``_Matcher``); the first round reuses ``first`` (every row released: the margins searched with
    the rows)."""
    kept = list(released)
    while True:
        if first is not None:
            match, job, offset = first.match, list(first.job), first.offset
            margins, unchecked = first.margins, first.left_out
            first = None
        else:
            margins, unchecked = margin_totals(cells, kept)
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
            if kind or twice_a_part(total, parts, min_units):
                sizes = {j: c.units for j in margin.members if (c := cells[j].slot(margin.slot)) is not None}
                culprit = min(sizes, key=lambda j: (sizes[j], j))
                break
            if not repeat:
                job.append(offset + i)
                accepted.append(total)
        if culprit is None:
            return kept, accepted, unchecked
        kept.remove(culprit)
