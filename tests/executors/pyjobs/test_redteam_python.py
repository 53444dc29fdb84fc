"""Red-team attacks on Python jobs: laundering one person's value through operations the taint tracker
treats as row-local, and outcome oracles (released against withheld). The person wanted is the fixture's
target: the only person aged 95 (in 'north'), income ``TARGET_INCOME`` (see ``attack_fixture``).

Each test asserts the fact cannot be computed from what the operator receives automatically; the ones
marked ``xfail(strict=True)`` are attacks that succeed on the current code (the defence fails).
"""

from __future__ import annotations

import pytest

from executors.pyjobs import AggregateOutput

from .attack_fixture import TARGET_INCOME, received, run

OFFSET = 10_000_000.0


@pytest.mark.xfail(
    strict=True,
    reason="a row-local column income * <0/1 indicator from age> + 1e7 is not tainted (no condition, "
    "no other "
    "rows) and the offset dilutes the target's share below the dominance/p% thresholds, so sum - 1e7 * n "
    "is the target's income to the cent",
)
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


@pytest.mark.xfail(
    strict=True,
    reason="the outcome is the oracle: income * max(0, age - a) is released (all zeros) when nobody is "
    "older than a and withheld (dominance) when one person is, so the operator learns the oldest "
    "person's age from released-vs-withheld across jobs",
)
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
