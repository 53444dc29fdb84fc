"""Red-team attacks on Python jobs: laundering one person's value through operations the taint tracker
treats as row-local, and outcome oracles (released against withheld). The person wanted is the fixture's
target: the only person aged 95 (in 'north'), income ``TARGET_INCOME`` (see ``attack_fixture``).

Each test asserts the fact cannot be computed from what the operator receives automatically; the ones
marked ``xfail(strict=True)`` are attacks that still succeed (the reason says why). Every other
attack here succeeded before dominance and p% were judged on deviations from each cell's median and
cells with fewer than k deviating units (none included) were withheld (``policies.cell_rules``).
"""

from __future__ import annotations

import pytest

from executors.pyjobs import AggregateOutput

from .attack_fixture import TARGET_INCOME, received, run

OFFSET = 10_000_000.0


@pytest.mark.parametrize(
    "indicator",
    [
        "np.maximum(0, people['age'] - 94)",
        "np.floor(people['age'] / 95)",
        "people['age'] // 95",
        "np.clip(people['age'] - 94, 0, 1)",
    ],
    ids=["maximum", "floor", "floordiv", "clip"],
)
def test_a_row_local_indicator_behind_a_large_offset_does_not_release_the_income(indicator: str) -> None:
    """The fact: the target's income. One job: ``x = income * indicator + 1e7``, the indicator a
    row-local number that is 1 for the only person aged 95 and 0 for everyone else (``max(0, age - 94)``,
    ``floor(age / 95)``, ...), plus the same large constant for all;
    ``aggregate(people, by='sex', aggs={'s': ('x', 'sum'), 'n': ('x', 'count')})``. Every cell has
    many units and no one dominates, so the table is released; ``s - 1e7 * n`` of the target's sex
    is their income."""
    code = (
        "import numpy as np\n"
        f"people['x'] = people['income'] * ({indicator}) + {OFFSET}\n"
        "result = aggregate(people, by='sex', aggs={'s': ('x', 'sum'), 'n': ('x', 'count')})"
    )
    table = received(run(code))
    recovered = [] if table is None else [row.s - OFFSET * row.n for row in table.itertuples()]
    assert not any(abs(value - TARGET_INCOME) < 0.005 for value in recovered)


def test_released_or_withheld_does_not_tell_whether_someone_is_older_than_a_threshold() -> None:
    """The fact: the target's exact age (the oldest person, 95). Jobs: ``x = income * max(0, age - a)``
    summed by district, for a = 94 and a = 95. The first is withheld (one person carries the whole
    cell), the second is released (every cell 0): a binary search over ``a`` finds the age, and the
    district whose cell is withheld (by district in the report, or by splitting the groups) finds where
    the person lives."""
    outcomes = []
    for age in (94, 95):
        code = (
            "import numpy as np\n"
            f"people['x'] = people['income'] * np.maximum(0, people['age'] - {age})\n"
            "result = aggregate(people, by='district', aggs={'s': ('x', 'sum')})"
        )
        outcomes.append(isinstance(run(code), AggregateOutput))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize(
    "noise",
    ["people['age'] * 1e-6", "(people['income'] % 1) * 1e-3"],
    ids=["age-jitter", "cents-jitter"],
)
def test_a_jitter_that_gives_everyone_a_deviation_does_not_hide_the_income(noise: str) -> None:
    """The fact: the target's income. As above, with a tiny row-local jitter added so that every unit
    deviates from the cell's median (the contributor threshold is met): the deviations are then
    dominated by the target, and the table is withheld."""
    code = (
        "import numpy as np\n"
        f"people['x'] = people['income'] * (people['age'] // 95) + {OFFSET} + {noise}\n"
        "result = aggregate(people, by='sex', aggs={'s': ('x', 'sum'), 'n': ('x', 'count')})"
    )
    table = received(run(code))
    recovered = [] if table is None else [row.s - OFFSET * row.n for row in table.itertuples()]
    assert not any(abs(value - TARGET_INCOME) < 1.0 for value in recovered)


def test_a_per_row_offset_over_several_rows_per_person_does_not_release_a_cost() -> None:
    """The fact: the target's visit costs. ``visits`` has several rows per person; ``x = cost *
    <target indicator> + 1e7`` per row, merged on the unit, summed by sex with the row count: the
    offset is per row, so ``s - 1e7 * rows`` would be the target's total cost."""
    code = (
        "v = visits.merge(people[['person_id', 'age', 'sex']], on='person_id')\n"
        f"v['x'] = v['cost'] * (v['age'] // 95) + {OFFSET}\n"
        "result = aggregate(v, by='sex', aggs={'s': ('x', 'sum'), 'rows': ('x', 'count')})"
    )
    out = run(code)
    assert not isinstance(out, AggregateOutput)


def test_a_mean_with_a_constant_offset_does_not_release_the_income() -> None:
    """The fact: the target's income, from a mean: ``(mean - 1e7) * n``."""
    code = (
        f"people['x'] = people['income'] * (people['age'] // 95) + {OFFSET}\n"
        "result = aggregate(people, by='district', aggs={'m': ('x', 'mean'), 'n': ('x', 'count')})"
    )
    table = received(run(code))
    recovered = [] if table is None else [(row.m - OFFSET) * row.n for row in table.itertuples()]
    assert not any(abs(value - TARGET_INCOME) < 0.01 for value in recovered)


@pytest.mark.parametrize("shift", ["0", "5", "-3.5"])
def test_an_all_equal_cell_and_a_cell_with_one_exception_get_the_same_answer(shift: str) -> None:
    """The fact: whether anyone is older than 94 (then 95). ``x = income * max(0, age - a) + c``:
    everyone equal (c) for a = 95, one exception for a = 94; both are withheld, so the outcome says
    nothing."""
    outcomes = []
    for age in (94, 95):
        code = (
            "import numpy as np\n"
            f"people['x'] = people['income'] * np.maximum(0, people['age'] - {age}) + {shift}\n"
            "result = aggregate(people, by='district', aggs={'s': ('x', 'sum')})"
        )
        outcomes.append(isinstance(run(code), AggregateOutput))
    assert outcomes == [False, False]


@pytest.mark.xfail(
    strict=True,
    reason="an offset the analyst learns from another released column (1e7 * age, with the sum of age) "
    "spreads every deviation: no cell rule sees the one person left over, and the table is released",
)
def test_an_offset_learned_from_another_column_does_not_release_the_income() -> None:
    """The fact: the target's income. ``x = income * (age // 95) + 1e7 * age``, summed by sex with the
    sum of age: ``s - 1e7 * a`` is the target's income."""
    code = (
        "people['x'] = people['income'] * (people['age'] // 95) + 1e7 * people['age']\n"
        "result = aggregate(people, by='sex', aggs={'s': ('x', 'sum'), 'a': ('age', 'sum')})"
    )
    table = received(run(code))
    recovered = [] if table is None else [row.s - 1e7 * row.a for row in table.itertuples()]
    assert not any(abs(value - TARGET_INCOME) < 1.0 for value in recovered)


@pytest.mark.xfail(
    strict=True,
    reason="dominance is one bit about the top contributor: a value that one person dominates exactly "
    "when they are older than a (1e6 * income * max(0, age - a), plus age // 61 so that many people "
    "deviate) is withheld for a = 94 and released for a = 95",
)
def test_dominance_does_not_tell_whether_someone_is_older_than_a_threshold() -> None:
    """The fact: whether anyone is older than 94."""
    outcomes = []
    for age in (94, 95):
        code = (
            "import numpy as np\n"
            f"people['x'] = 1e6 * people['income'] * np.maximum(0, people['age'] - {age})"
            " + people['age'] // 61\n"
            "result = aggregate(people, by='sex', aggs={'s': ('x', 'sum')})"
        )
        outcomes.append(isinstance(run(code), AggregateOutput))
    assert outcomes[0] == outcomes[1]
