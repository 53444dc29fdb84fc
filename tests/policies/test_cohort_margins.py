"""The ledger against sums of rows and against many jobs: margins (secondary suppression), the keyed
search of unions and complements over the whole lineage, and one sketch width for every threshold.

Cohorts here are sets of integer units; "the target" is unit 0, a district of one person.
"""

from __future__ import annotations

import numpy as np

from policies.cohorts import (
    Cell,
    CohortIndex,
    CohortSketch,
    decide,
    element_key,
    elements,
    least_for,
    sketch_of,
    sums_for,
)
from policies.cohorts.margins import MAX_MARGINS, margins_of
from policies.cohorts.sizing import RECENT

KEY = element_key(bytes(range(32)))
K = 10
TARGET = 0


def sketch(units: set[int] | range, *, k: int = K, least: bool = True) -> CohortSketch:
    return sketch_of(np.array(sorted(units), dtype=np.int64), KEY, sums_for(k), least_for(k) if least else 0)


def row(units: set[int] | range, *keys: object) -> Cell:
    return Cell((sketch(units),), slots=("_sbx_sketch",), row=keys)


# Women of five districts (40 people each) and of 'Tiny' (the target alone).
DISTRICTS = {name: set(range(1 + 40 * i, 41 + 40 * i)) for i, name in enumerate("NSEWH")}
WOMEN = set().union(*DISTRICTS.values()) | {TARGET}
MEN = {name: set(range(1001 + 40 * i, 1041 + 40 * i)) for i, name in enumerate("NSEWH")}


def partition() -> list[Cell]:
    """District x sex with Tiny's cells suppressed (the query never returned them)."""
    return [row(DISTRICTS[d], d, "F") for d in "NSEWH"] + [row(MEN[d], d, "M") for d in "NSEWH"]


def test_a_partition_after_its_total_withholds_its_smallest_row() -> None:
    index = CohortIndex()
    assert decide(index, [row(WOMEN, "F")], min_units=K).decisions[0].released
    decisions = decide(index, partition(), min_units=K).decisions
    withheld = [i for i, d in enumerate(decisions) if not d.released]
    assert len(withheld) == 1
    assert decisions[withheld[0]].matched == "margin"
    assert "secondary suppression" in decisions[withheld[0]].reason
    # The released women's rows no longer add up to all women but one.
    released = set().union(*(DISTRICTS[d] for i, d in enumerate("NSEWH") if i not in withheld))
    assert len(WOMEN - released) >= K


def test_a_total_after_its_partition_is_withheld() -> None:
    index = CohortIndex()
    assert all(d.released for d in decide(index, partition(), min_units=K).decisions)
    total = decide(index, [row(WOMEN, "F")], min_units=K).decisions[0]
    assert not total.released
    assert total.matched == "pair"


def test_a_subtotal_beside_its_parts_is_caught_in_one_job() -> None:
    """``ROLLUP`` or a ``UNION ALL`` of a total and its parts: the subtotal is in the parts' margin."""
    cells = [row(WOMEN, "all", "F"), *partition()]
    decisions = decide(CohortIndex(), cells, min_units=K).decisions
    assert [d.matched for d in decisions if not d.released] == ["margin"]


def test_a_complete_partition_is_released_in_full_and_its_margins_are_repeats() -> None:
    index = CohortIndex()
    women = WOMEN - {TARGET}
    assert decide(index, [row(women, "F")], min_units=K).decisions[0].released
    held = len(index)
    outcome = decide(index, partition(), min_units=K)
    assert all(d.released for d in outcome.decisions)
    # The women's margin equals the released total: not stored again. The others are new cohorts.
    assert sketch(women) not in outcome.recorded
    assert len(index) == held + len(outcome.recorded)


def test_margins_are_formed_per_slot_and_capped() -> None:
    rows = [(f"a{i}", "x") for i in range(200)]
    found, left_out = margins_of(rows, [("s",)] * 200, list(range(200)))
    assert len(found) == 1  # all rows, and the rows with x: the same set
    many = [(f"a{i % 30}", f"b{i % 29}", f"c{i % 31}") for i in range(900)]
    found, left_out = margins_of(many, [("s",)] * 900, list(range(900)))
    assert len(found) == MAX_MARGINS
    assert left_out > 0


def fillers(count: int) -> list[CohortSketch]:
    """Unrelated cohorts of other people, released in between (cheap jobs)."""
    return [sketch(range(100_000 + 50 * i, 100_000 + 50 * i + 20 + i % 25)) for i in range(count)]


def test_a_union_is_found_however_many_cohorts_were_released_in_between() -> None:
    north_south = DISTRICTS["N"] | DISTRICTS["S"]
    rest = WOMEN - north_south - {TARGET}
    index = CohortIndex([sketch(north_south), sketch(rest)])
    index.add(fillers(2 * RECENT))
    assert not decide(index, [Cell((sketch(WOMEN),))], min_units=K).decisions[0].released


def test_without_least_elements_only_the_recent_window_is_searched() -> None:
    """The control: the same sequence with sketches of the first format is released (the hole the
    keyed search closes)."""
    north_south = DISTRICTS["N"] | DISTRICTS["S"]
    rest = WOMEN - north_south - {TARGET}
    index = CohortIndex([sketch(north_south, least=False), sketch(rest, least=False)])
    index.add(fillers(2 * RECENT))
    assert decide(index, [Cell((sketch(WOMEN, least=False),))], min_units=K).decisions[0].released


def test_a_complement_whose_least_units_are_in_the_new_cohort_is_found_far_back() -> None:
    """N = A - B - target, with N holding A's least elements: A is found by N's least elements."""
    everyone = sorted(WOMEN, key=lambda u: int(elements(np.array([u]), KEY)[0]))
    first = set(everyone[:100]) - {TARGET}
    rest = set(everyone[100:]) - {TARGET}
    index = CohortIndex([sketch(WOMEN), sketch(rest)])
    index.add(fillers(2 * RECENT))
    assert not decide(index, [Cell((sketch(first),))], min_units=K).decisions[0].released


def test_two_thresholds_share_one_sketch_width() -> None:
    """Parts released under k = 10, the whole under k = 11: compared at full width."""
    assert sums_for(10) == sums_for(11) == sums_for(15)
    north_south = DISTRICTS["N"] | DISTRICTS["S"]
    rest = WOMEN - north_south - {TARGET}
    index = CohortIndex([sketch(north_south, k=10), sketch(rest, k=10)])
    assert not decide(index, [Cell((sketch(WOMEN, k=11),))], min_units=11).decisions[0].released


def test_sketches_of_the_first_format_and_width_are_still_compared_in_unions() -> None:
    """Parts stored before the common width (11 sums, no least elements), the whole now."""

    def old(units: set[int]) -> CohortSketch:
        return sketch_of(np.array(sorted(units), dtype=np.int64), KEY, 11)

    north_south = DISTRICTS["N"] | DISTRICTS["S"]
    rest = WOMEN - north_south - {TARGET}
    index = CohortIndex([old(north_south), old(rest)])
    assert not decide(index, [Cell((sketch(WOMEN),))], min_units=K).decisions[0].released
