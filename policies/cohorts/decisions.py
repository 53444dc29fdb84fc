"""What the ledger decides about a job's rows: the cells it is given, each row's decision with a
reason a person can act on, and the outcome (decisions, the cohorts to record, what the budget left
unchecked)."""

from __future__ import annotations

from dataclasses import dataclass

from policies.cohorts.index import CohortIndex
from policies.cohorts.sketch import CohortSketch

WITHHELD = (
    "withheld: the units behind this row differ by fewer than {k} (min_units) from those behind {what} "
    "released earlier under this scope (by any of its grantees), so the two together would single out "
    "that difference. Widen or change the cohort so that it differs by at least {k} units, or repeat an "
    "earlier query exactly; how many units differ is not disclosed"
)
WHAT = {
    "pair": "a row (or a sum of rows of one result)",
    "union": "the union of two rows",
    "complement": "the difference of two rows",
}
RELEASED = "released: no earlier row of this scope is within min_units of it"
SECONDARY = (
    "withheld (secondary suppression): the rows released beside it add up to within {k} units "
    "(min_units) of a row released in this result or earlier under this scope, so their difference "
    "would give rows suppressed below min_units; the smallest row of that sum is withheld with them. "
    "How many units differ is not disclosed"
)


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


def outcome(
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
            decisions[position] = Decision(False, SECONDARY.format(k=min_units), "margin")
    recorded = [c for p in kept for c in fresh_of[p]] + sums
    if record:
        index.add(recorded)
    return Outcome(tuple(decisions), tuple(recorded), unchecked)
