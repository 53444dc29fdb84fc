"""Property tests of the released-cohort ledger's sketches and decision (policies/cohorts)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.cohorts import (
    Cell,
    CohortIndex,
    CohortSketch,
    decide,
    element_key,
    elements,
    sketch_of,
    sums_for,
)
from policies.cohorts.difference import within, within_many
from policies.cohorts.sketch import P

KEY = element_key(bytes(range(32)))
K = 10
M = sums_for(K)


def sketch(units: set[int] | set[str]) -> CohortSketch:
    values = np.array(
        sorted(units), dtype=object if units and isinstance(next(iter(units)), str) else np.int64
    )
    return sketch_of(values, KEY, M)


def one(index: CohortIndex, cohort: CohortSketch) -> bool:
    """Whether the ledger releases ``cohort``."""
    return decide(index, [Cell((cohort,))], min_units=K).decisions[0].released


@st.composite
def base_and_change(draw: st.DrawFn, low: int, high: int) -> tuple[set[int], set[int]]:
    """A random cohort and another that removes ``r`` of its units and adds ``s`` new ones, r + s in
    [low, high]."""
    base = set(draw(st.lists(st.integers(0, 10**9), min_size=K + high, max_size=400, unique=True)))
    size = draw(st.integers(low, high))
    removed = draw(st.integers(0, min(size, len(base) - K)))
    added = size - removed
    drop = set(sorted(base)[:removed]) if removed else set()
    fresh = set(
        draw(st.lists(st.integers(10**9 + 1, 2 * 10**9), min_size=added, max_size=added, unique=True))
    )
    return base, (base - drop) | fresh


@settings(max_examples=150, deadline=None)
@given(base_and_change(1, K - 1))
def test_every_difference_of_one_to_k_minus_one_units_is_withheld(case: tuple[set[int], set[int]]) -> None:
    base, near = case
    index = CohortIndex([sketch(base)])
    assert not one(index, sketch(near))


@settings(max_examples=150, deadline=None)
@given(base_and_change(K, 3 * K))
def test_a_difference_of_k_or_more_units_is_released(case: tuple[set[int], set[int]]) -> None:
    base, far = case
    assert one(CohortIndex([sketch(base)]), sketch(far))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10**12), min_size=K, max_size=300, unique=True))
def test_the_same_units_again_are_released_and_not_stored_twice(units: list[int]) -> None:
    index = CohortIndex([sketch(set(units))])
    outcome = decide(index, [Cell((sketch(set(units)),))], min_units=K)
    assert outcome.decisions[0].released
    assert outcome.recorded == ()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**62), min_size=K + 5, max_size=200, unique=True), st.integers(1, K - 1))
def test_large_integer_units_go_through_the_keyed_hash_and_still_differ(units: list[int], cut: int) -> None:
    assert not one(CohortIndex([sketch(set(units))]), sketch(set(units[cut:])))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.text(min_size=1, max_size=12), min_size=K + 5, max_size=200, unique=True),
    st.integers(1, K - 1),
)
def test_text_units_differ_too(units: list[str], cut: int) -> None:
    assert not one(CohortIndex([sketch(set(units))]), sketch(set(units[cut:])))


@st.composite
def two_groups(draw: st.DrawFn) -> tuple[set[int], set[int], set[int]]:
    """Two disjoint groups and the units outside both (the ones a total would add)."""
    units = draw(st.lists(st.integers(0, 10**9), min_size=3 * K, max_size=400, unique=True))
    split = draw(st.integers(K, len(units) - K))
    extra = set(draw(st.lists(st.integers(10**9 + 1, 2 * 10**9), min_size=0, max_size=K - 1, unique=True)))
    return set(units[:split]), set(units[split:]), extra


@settings(max_examples=80, deadline=None)
@given(two_groups())
def test_a_total_that_a_few_units_keep_from_equalling_two_released_groups_is_withheld(
    case: tuple[set[int], set[int], set[int]],
) -> None:
    """The NULL-group tracker: GROUP BY sex releases M and F; the total adds the few whose sex is
    NULL. Total - M - F would be their sum: withheld. With nobody outside, total = M + F: released."""
    men, women, outside = case
    index = CohortIndex([sketch(men), sketch(women)])
    total = decide(index, [Cell((sketch(men | women | outside),))], min_units=K).decisions[0]
    assert total.released is (not outside)
    assert total.released or total.matched == "union"


@settings(max_examples=80, deadline=None)
@given(two_groups(), st.integers(1, K - 1))
def test_a_total_without_one_region_plus_or_minus_a_few_is_withheld(
    case: tuple[set[int], set[int], set[int]], few: int
) -> None:
    """Complement: the total T and a region R are released; T minus R minus a few people is not."""
    region, rest, _ = case
    total = region | rest
    index = CohortIndex([sketch(total), sketch(region)])
    without = set(sorted(rest)[few:])
    assert not one(index, sketch(without))
    exact = decide(index, [Cell((sketch(rest),))], min_units=K).decisions[0]
    assert exact.released  # T - R exactly is computable from T and R anyway: nothing new


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, P - 1), min_size=M, max_size=M), min_size=1, max_size=20),
    st.lists(st.integers(-(K - 1), K - 1), min_size=20, max_size=20),
)
def test_the_batched_solver_agrees_with_the_exact_one(rows: list[list[int]], deltas: list[int]) -> None:
    delta = np.array(deltas[: len(rows)], dtype=np.int64)
    batched = within_many(np.array(rows, dtype=np.int64), delta, K - 1).tolist()
    assert batched == [within(row, int(dl), K - 1) for row, dl in zip(rows, delta, strict=True)]


@st.composite
def differences(draw: st.DrawFn) -> tuple[int, np.ndarray, np.ndarray]:
    """``(d, sums, delta)``: signed differences of a few field elements (within d or just past it, so
    that both answers come up, at every delta) mixed with random rows, at widths from d + 2 up."""
    d = draw(st.integers(1, K))
    m = d + 2 + draw(st.integers(0, 2))
    rows, deltas = [], []
    for _ in range(draw(st.integers(1, 30))):
        if draw(st.booleans()):
            rows.append(draw(st.lists(st.integers(0, P - 1), min_size=m, max_size=m)))
            deltas.append(draw(st.integers(-d - 1, d + 1)))
            continue
        plus = draw(st.lists(st.integers(1, P - 1), max_size=d + 1))
        minus = draw(st.lists(st.integers(1, P - 1), max_size=d + 1))
        rows.append(
            [
                (sum(pow(x, j, P) for x in plus) - sum(pow(x, j, P) for x in minus)) % P
                for j in range(1, m + 1)
            ]
        )
        deltas.append(len(plus) - len(minus))
    return d, np.array(rows, dtype=np.int64), np.array(deltas, dtype=np.int64)


@settings(max_examples=150, deadline=None)
@given(differences())
def test_the_batched_solver_decides_every_delta_in_one_elimination_as_the_exact_one(
    case: tuple[int, np.ndarray, np.ndarray],
) -> None:
    """``within_many`` pads the systems of all deltas into one shape: the answers are those of the
    scalar reference, including the differences of at most d units it must find."""
    d, sums, delta = case
    batched = within_many(sums, delta, d).tolist()
    assert batched == [within(row.tolist(), int(dl), d) for row, dl in zip(sums, delta, strict=True)]


@settings(max_examples=50, deadline=None)
@given(base_and_change(1, K - 1))
def test_same_job_cells_are_compared_with_each_other(case: tuple[set[int], set[int]]) -> None:
    """UNION ALL of a cohort and the same cohort with one person more: the second row is withheld."""
    base, near = case
    outcome = decide(CohortIndex(), [Cell((sketch(base),)), Cell((sketch(near),))], min_units=K)
    assert [d.released for d in outcome.decisions] == [True, False]
    assert "how many units differ is not disclosed" in outcome.decisions[1].reason


def test_a_row_is_withheld_when_any_of_its_cohorts_is_close() -> None:
    """A join row has one cohort per table; the second table's cohort alone decides."""
    a = sketch(set(range(100)))
    b = sketch(set(range(1000, 1100)))
    index = CohortIndex([b])
    near_b = sketch(set(range(1000, 1099)))
    assert (
        not decide(index, [Cell((sketch(set(range(500, 700))), near_b))], min_units=K).decisions[0].released
    )
    assert decide(CohortIndex([b]), [Cell((a,))], min_units=K).decisions[0].released


def test_the_union_budget_is_reported_when_exceeded() -> None:
    cohorts = [sketch(set(range(i * 1000, i * 1000 + 50))) for i in range(30)]
    outcome = decide(
        CohortIndex(cohorts), [Cell((sketch(set(range(10**6, 10**6 + 100))),))], min_units=K, triple_budget=5
    )
    assert outcome.unchecked > 0


def test_a_sketch_of_an_earlier_threshold_is_still_compared_up_to_its_capacity() -> None:
    """A new scope version raised k from 5 to 10: cohorts kept with 6 sums still catch 1..4 units."""
    old = sketch_of(np.arange(200), KEY, sums_for(5))
    index = CohortIndex([old])
    assert not one(index, sketch(set(range(197))))
    assert one(CohortIndex([old]), sketch(set(range(190))))


@st.composite
def query_sequence(draw: st.DrawFn) -> list[frozenset[int]]:
    """Cohorts a sequence of queries over 40 people could select: random predicates, often nested
    (a cohort, then the same cohort with a few people added or removed), each of at least k = 5."""
    population = range(40)
    out: list[frozenset[int]] = []
    for _ in range(draw(st.integers(2, 12))):
        if out and draw(st.booleans()):
            base = set(draw(st.sampled_from(out)))
            flips = draw(st.sets(st.sampled_from(population), min_size=1, max_size=6))
            cohort = frozenset(base ^ flips)
        else:
            cohort = frozenset(draw(st.sets(st.sampled_from(population), min_size=5, max_size=40)))
        if len(cohort) >= 5:
            out.append(cohort)
    return out


def _mass(plus: list[frozenset[int]], minus: list[frozenset[int]]) -> int:
    """How many units a signed combination of cohorts leaves (counted with multiplicity)."""
    counts: dict[int, int] = {}
    for sign, group in ((1, plus), (-1, minus)):
        for cohort in group:
            for unit in cohort:
                counts[unit] = counts.get(unit, 0) + sign
    return sum(abs(v) for v in counts.values())


@settings(max_examples=150, deadline=None)
@given(query_sequence())
def test_no_two_released_cohorts_and_no_union_or_difference_isolate_fewer_than_k(
    cohorts: list[frozenset[int]],
) -> None:
    """Whatever sequence of cohorts is asked for, among those released no pair differs by 1..k-1
    units, and no released cohort is within 1..k-1 units of the union or difference of two others."""
    k = 5
    key = element_key(bytes(range(32)))
    index = CohortIndex()
    outcome = decide(
        index,
        [Cell((sketch_of(np.array(sorted(c)), key, sums_for(k)),)) for c in cohorts],
        min_units=k,
    )
    out = [c for c, d in zip(cohorts, outcome.decisions, strict=True) if d.released]
    for i, n in enumerate(out):
        for a in out[:i]:
            assert _mass([n], [a]) == 0 or _mass([n], [a]) >= k
            for b in out[:i]:
                if b is not a:
                    assert _mass([n], [a, b]) == 0 or _mass([n], [a, b]) >= k
                    assert _mass([n, b], [a]) == 0 or _mass([n, b], [a]) >= k


def test_the_element_map_never_changes() -> None:
    """Sketches stay in the ledger for years: if the map from units to field elements changed (our code,
    or pandas' SipHash of text and large integers), every later comparison with an earlier cohort would
    silently miss. These values are pinned; a change here needs a new ledger format, not a new value."""
    key = element_key(bytes(range(32)))
    assert elements(np.array([0, 42, 2**40]), key).tolist() == [741422652, 1437435228, 1594268571]
    assert elements(np.array(["P0042"], dtype=object), key).tolist() == [1919349692]
