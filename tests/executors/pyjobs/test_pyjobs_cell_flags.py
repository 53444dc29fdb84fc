"""The automatic disclosure report flags every value computed from fewer than k units, whatever
computed it, and every value that is one unit's own (a maximum, a minimum), before a checker sees it.

Before, a mean over 5 people and a per-group maximum were withheld with no flag at all: the report
only looked for small integer counts in the output.
"""

from __future__ import annotations

import pytest

from executors.pyjobs import AggregateOutput, WithheldOutput

from .attack_fixture import MIN_UNITS, cohort, run

OLD = "people[people['age'] >= 77]"  # the target (95) and a handful of people aged 77-79


def small_cohort_size() -> int:
    people = cohort()["people"]
    return int(people[people["age"] >= 77]["person_id"].nunique())


def flags(out: object, rule: str) -> list[str]:
    assert isinstance(out, WithheldOutput)
    return [f.message for f in out.report.findings if f.rule == rule and f.severity == "flag"]


@pytest.mark.parametrize(
    "code",
    [
        f"result = {OLD}['income'].mean()",
        f"result = {OLD}['income'].std()",
        f"result = {OLD}['income'].quantile(0.9)",
        f"result = {OLD}['income'].median()",
        f"result = {OLD}['income'].agg(lambda s: s.sum() / len(s))",
        f"result = {OLD}[['income', 'age']].describe()",
        f"import numpy as np\nresult = float(np.mean({OLD}['income']))",
        f"import statistics\nresult = statistics.fmean({OLD}['income'])",
    ],
    ids=["mean", "std", "quantile", "median", "custom", "describe", "numpy", "statistics"],
)
def test_a_value_over_fewer_than_k_units_is_flagged(code: str) -> None:
    assert 1 < small_cohort_size() < MIN_UNITS
    found = flags(run(code), "min-units")
    assert found
    assert f"fewer than {MIN_UNITS} units ({small_cohort_size()})" in found[0]


def test_a_value_over_enough_units_is_not_flagged() -> None:
    assert flags(run("result = people['income'].mean()"), "min-units") == []


def test_groups_below_k_are_flagged_whatever_the_aggregate() -> None:
    people = cohort()["people"]
    small = int((people.groupby("age")["person_id"].nunique() < MIN_UNITS).sum())
    for function in ("mean", "max", "std", "median"):
        found = flags(run(f"result = people.groupby('age')['income'].{function}()"), "min-units")
        assert found == [
            f"{small} group(s) of this groupby have fewer than {MIN_UNITS} units; every value computed from "
            "them is flagged"
        ]


def test_a_per_group_maximum_is_flagged_as_one_units_value() -> None:
    out = run("result = people.groupby('sex')['income'].max()")
    assert flags(out, "min-units") == []  # two large groups
    assert flags(out, "extreme-value") == [".max is one unit's own value"]


def test_dominance_is_judged_only_on_cells_that_will_be_released() -> None:
    """'north' holds the target's dominant income; below k (24 people over 70, fewer than k in each
    district) the cell is suppressed by the output check anyway, so it does not withhold the table."""
    code = (
        "few = people[people['age'] >= 70]\n"
        "result = aggregate(few, by='district', aggs={'total': ('income', 'sum')})"
    )
    out = run(code)
    assert isinstance(out, AggregateOutput)
    assert not [f for f in out.report.findings if f.rule in {"dominance", "p-ratio"}]
    assert (out.table["_sbx_units"] < MIN_UNITS).all()
