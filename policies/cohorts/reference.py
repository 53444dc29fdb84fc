"""The ledger's decision one cohort at a time: ``CohortIndex.match`` for each of a job's cohorts and
margins in turn, as the ledger decided before its searches were batched (``ledger.decide``). Kept as
the reference the batched search is tested against, and the benchmark's baseline."""

from __future__ import annotations

from collections.abc import Sequence

from policies.cohorts.decisions import RELEASED, WHAT, WITHHELD, Cell, Decision, Outcome, outcome
from policies.cohorts.index import CohortIndex
from policies.cohorts.sizing import DEFAULT_TRIPLE_BUDGET
from policies.cohorts.sketch import CohortSketch
from policies.cohorts.totals import margin_totals, twice_a_part


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
            decisions.append(Decision(False, WITHHELD.format(k=min_units, what=WHAT[kind]), kind))
            continue
        fresh_of[position] = fresh
        decisions.append(Decision(True, RELEASED))
    kept, sums, skipped = secondary(
        index, cells, list(fresh_of), fresh_of, min_units=min_units, budget=triple_budget
    )
    return outcome(
        index, decisions, fresh_of, kept, sums, unchecked + skipped, min_units=min_units, record=record
    )


def secondary(
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
    while True:
        margins, unchecked = margin_totals(cells, kept)
        job = CohortIndex([c for p in kept for c in fresh_of[p]])
        accepted: list[CohortSketch] = []
        culprit: int | None = None
        for margin, parts, total in margins:
            kind, repeat, skipped = index.match(total, min_units=min_units, budget=budget, also=job)
            unchecked += skipped
            if kind or twice_a_part(total, parts, min_units):
                sizes = {i: c.units for i in margin.members if (c := cells[i].slot(margin.slot)) is not None}
                culprit = min(sizes, key=lambda i: (sizes[i], i))
                break
            if not repeat:
                job.add([total])
                accepted.append(total)
        if culprit is None:
            return kept, accepted, unchecked
        kept.remove(culprit)
