"""The lineage's in-memory index (policies/cohorts/index) is the same however it was filled.

A release adds a few cohorts to thousands: the index inserts them in place (``inserted``) and puts
their least elements in a small recent part of the keyed lookup's table, merged into the large part
now and then. Whatever the sequence of additions (and merges, and undone additions), the index must
hold what an index built at once from the same cohorts holds, and its lookups must find the same
rows.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.cohorts import CohortIndex, CohortSketch
from policies.cohorts import index as index_module
from policies.cohorts.index import inserted

WIDTH, BUCKETS, LEAST = 16, 16, 15


def random_cohorts(seed: int, count: int) -> list[CohortSketch]:
    """Cohorts with few distinct unit counts and least elements (ties and shared elements come up)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        units = int(rng.integers(1, 40))
        least = tuple(sorted(set(rng.integers(1, 300, min(units, LEAST)).tolist())))
        out.append(
            CohortSketch(
                units,
                tuple(int(v) for v in rng.integers(0, 2**31 - 1, WIDTH)),
                tuple(int(v) for v in rng.integers(0, 2**16, BUCKETS)),
                least,
            )
        )
    return out


def held(index: CohortIndex) -> list[tuple[object, ...]]:
    """What each sketch layout holds: its arrays, and its lookup table as sorted (element, seq) pairs."""
    out: list[tuple[object, ...]] = []
    for layout, group in sorted(index._groups.items()):
        values = np.concatenate([v for v, _ in group.tables()])
        seqs = np.concatenate([s for _, s in group.tables()])
        table = sorted(zip(values.tolist(), seqs.tolist(), strict=True))
        arrays = (group.counts, group.sums, group.marks, group.seqs, group.least)
        out.append((layout, *(a.tolist() for a in arrays), table))
    return out


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.lists(st.integers(0, 40), min_size=1, max_size=12),
    st.sampled_from([1, 7, 50, 4096]),
)
def test_an_index_filled_release_by_release_holds_what_one_built_at_once_holds(
    seed: int, batches: list[int], recent_entries: int
) -> None:
    cohorts = random_cohorts(seed, sum(batches))
    with mock.patch.object(index_module, "RECENT_ENTRIES", recent_entries):
        grown = CohortIndex()
        at = 0
        for size in batches:
            grown.add(cohorts[at : at + size])
            at += size
    fresh = CohortIndex(cohorts)
    assert len(grown) == len(fresh) == len(cohorts)
    assert held(grown) == held(fresh)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.sampled_from([7, 300]))
def test_the_keyed_lookup_finds_the_same_rows_in_a_grown_index(seed: int, releases: int, recent: int) -> None:
    """Large enough (over 256 cohorts) that the lookup reads the table, not the cohorts directly."""
    cohorts = random_cohorts(seed, 300 + 20 * releases)
    with mock.patch.object(index_module, "RECENT_ENTRIES", recent):
        grown = CohortIndex(cohorts[:300])
        for i in range(releases):
            grown.add(cohorts[300 + 20 * i : 320 + 20 * i])
    fresh = CohortIndex(cohorts)
    rng = np.random.default_rng(seed)
    for h in (1, 5, LEAST):
        mine, theirs = grown.pool(WIDTH, BUCKETS, h, latest=10), fresh.pool(WIDTH, BUCKETS, h, latest=10)
        assert mine.counts.tolist() == theirs.counts.tolist()
        for _ in range(5):
            least = np.unique(rng.integers(1, 300, h))
            found, tally = mine.sharing(least)
            expected, expected_tally = theirs.sharing(least)
            assert found.tolist() == expected.tolist()
            assert mine.rows_sharing(least).tolist() == expected.tolist()
            assert tally.tolist() == expected_tally.tolist()
            # The rows found are those that hold one of the elements among their least (the table
            # lists all a cohort keeps, not only its first h: more candidates, never fewer).
            (group,) = fresh._groups.values()
            direct = np.nonzero(np.isin(group.least, least).any(axis=1))[0]
            assert found.tolist() == direct.tolist()


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 30))
def test_an_undone_addition_leaves_the_index_as_it_was(seed: int, size: int) -> None:
    cohorts = random_cohorts(seed, 280 + size)
    with mock.patch.object(index_module, "RECENT_ENTRIES", 100):
        index = CohortIndex(cohorts[:260])
        index.add(cohorts[260:280])  # something in the recent part
        before = held(index)
        state = index.snapshot()
        index.add(cohorts[280:])  # may merge the recent part
        index.restore(state)
    assert held(index) == before
    assert held(index) == held(CohortIndex(cohorts[:280]))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-50, 50), max_size=30),
    st.lists(st.integers(-50, 50), max_size=12),
    st.integers(1, 3),
)
def test_inserting_in_place_is_numpy_insert(held_values: list[int], new: list[int], width: int) -> None:
    base = np.sort(np.array(held_values, dtype=np.int64))
    rows = np.sort(np.array(new, dtype=np.int64))
    at = np.searchsorted(base, rows, side="right")
    assert inserted(base, at, rows).tolist() == np.insert(base, at, rows).tolist()
    wide = np.repeat(base[:, None], width, axis=1)
    wide_rows = np.repeat(rows[:, None], width, axis=1) + 1000
    assert inserted(wide, at, wide_rows).tolist() == np.insert(wide, at, wide_rows, axis=0).tolist()
