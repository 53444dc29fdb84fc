"""A cross-domain run's outcome must not answer a question about one person.

Attack (why): a run that fails on the data tells the operator something the released cells do not.
``SUM(NULLIF(cost, <one person's cost>))`` failed the run exactly when someone had that cost; a
``CASE`` that gives one person a negative or huge value failed it exactly when that person was
there; a unit that is ``NULL`` failed it; and a side that has one row per person except for one
person (two rows) failed it, since the protocol decided from the rows whether COUNT(*) and SUM were
exact. "failed" against "released" is a one-bit answer about a person that no disclosure rule sees.

Now every such case is computed, with SQL's meaning: a ``NULL`` in a summed column counts as nothing
(``SUM`` ignores it; ``AVG`` divides by the non-``NULL`` count; a cell with none is ``NULL``), rows
whose unit is ``NULL`` cannot join and drop out, negative values are summed exactly, values past the
exact range are clamped to it (a fixed rule), and which side has one row per person is part of the
plan, decided before any data is read (from the catalog, at submit), never from the rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from executors.crossdomain import (
    Aggregate,
    CrossDomainPlan,
    CrossDomainUnsupported,
    Function,
    Protection,
    Side,
    SidePlan,
    run_plan,
)
from executors.crossdomain.messages import Payloads
from executors.crossdomain.records import MAX_SCALED, per_person
from policies.model import Disclosure
from policies.output import check_output
from tests.executors.crossdomain_world import DEMO_PLAN, TARGET, K, citizens, plain_join, visits

PROTECTIONS = pytest.mark.parametrize("protection", list(Protection), ids=lambda p: p.value)


def _released(left: pd.DataFrame, right: pd.DataFrame, protection: Protection) -> pd.DataFrame:
    out = run_plan(DEMO_PLAN, left, right, min_units=K, protection=protection)
    return check_output(out.table, Disclosure(min_units=K)).table


def _sql_join(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
    """What SQL gives: rows with a NULL unit join nothing; SUM and AVG skip NULLs; SUM of none is NULL."""
    joined = right.dropna(subset=["person_id"]).merge(left.dropna(subset=["person_id"]), on="person_id")
    out = (
        joined.groupby("district")
        .agg(
            patients=("person_id", "nunique"),
            visits=("person_id", "size"),
            avg_cost=("cost", "mean"),
            total_cost=("cost", lambda s: s.sum() if s.notna().any() else None),
        )
        .reset_index()
    )
    return out[out["patients"] >= K].reset_index(drop=True)


@PROTECTIONS
def test_a_null_made_from_one_persons_value_is_summed_as_nothing_and_the_run_releases(
    protection: Protection,
) -> None:
    """``SUM(NULLIF(cost, <the target's cost>))``: today's run failed exactly when that cost occurred."""
    rows = visits()
    nulled = rows.assign(cost=rows["cost"].where(rows["person_id"] != TARGET))
    assert nulled["cost"].isna().sum() >= 1
    released = _released(citizens(), nulled, protection)
    pd.testing.assert_frame_equal(
        released, _sql_join(citizens(), nulled), check_dtype=False, check_exact=False, rtol=1e-9
    )
    # The same cells come out as without the NULL: the outcome is a release either way.
    assert list(released["district"]) == list(_released(citizens(), rows, protection)["district"])


def test_a_cell_whose_summed_values_are_all_null_has_null_sums_as_in_sql() -> None:
    rows = visits()
    rows["cost"] = np.nan
    released = _released(citizens(), rows, Protection.SHARES)
    assert len(released) >= 2
    assert released["total_cost"].isna().all()
    assert released["avg_cost"].isna().all()
    assert (released["visits"] > 0).all()


@PROTECTIONS
def test_rows_whose_unit_is_null_drop_out_on_both_sides(protection: Protection) -> None:
    left, right = citizens(), visits()
    left.loc[3, "person_id"] = None
    right.loc[[1, 2], "person_id"] = None
    released = _released(left, right, protection)
    pd.testing.assert_frame_equal(
        released, _sql_join(left, right), check_dtype=False, check_exact=False, rtol=1e-9
    )


@PROTECTIONS
def test_negative_values_are_summed_exactly_rather_than_failing_the_run(protection: Protection) -> None:
    """``SUM(CASE WHEN person_id = <target> THEN -cost ELSE cost END)``: one person's negative value."""
    rows = visits()
    rows.loc[rows["person_id"] == TARGET, "cost"] *= -1
    rows.loc[5, "cost"] = -0.01
    released = _released(citizens(), rows, protection)
    pd.testing.assert_frame_equal(
        released, _sql_join(citizens(), rows), check_dtype=False, check_exact=False, rtol=1e-9
    )


def test_a_value_past_the_exact_range_is_clamped_to_it_by_a_fixed_rule() -> None:
    rows = visits()
    huge = rows["person_id"] == TARGET
    rows.loc[huge, "cost"] = 1e15
    plan = SidePlan("person_id", sums=("cost",))
    people = per_person(rows, plan)
    target = [p for group in people.groups.values() for p in group if p.unit == TARGET]
    # Slots: rows, then per summed column its positive part, negative part and non-NULL count.
    assert target[0].slots[1:] == (MAX_SCALED, 0, int(huge.sum()))
    released = _released(citizens(), rows, Protection.SHARES)
    assert len(released) >= 2  # released, not failed


@PROTECTIONS
def test_one_person_with_two_rows_on_the_side_declared_one_row_per_person_does_not_change_the_outcome(
    protection: Protection,
) -> None:
    """The citizens' side is declared one row per person (the catalog says so at submit). Today the
    run decided that from the rows: a second row for the target made both sides 'several rows per
    person' and failed the run. Now the plan decides; the rows cannot change the outcome."""
    plan = _demo(one_row_left=True)
    doubled = pd.concat([citizens(), citizens().query("person_id == @TARGET")], ignore_index=True)
    once = run_plan(plan, citizens(), visits(), min_units=K, protection=protection).table
    twice = run_plan(plan, doubled, visits(), min_units=K, protection=protection).table
    pd.testing.assert_frame_equal(once.drop(columns="_sbx_units"), twice.drop(columns="_sbx_units"))


def test_which_side_has_one_row_per_person_crosses_as_the_plan_says_not_as_the_rows_say() -> None:
    plan = _demo(one_row_left=True)
    doubled = pd.concat([citizens(), citizens().query("person_id == @TARGET")], ignore_index=True)
    out = run_plan(plan, doubled, visits(), min_units=K, protection=Protection.SHARES)
    payloads = {m.origin: m for m in out.transcript.received_by("gateway") if isinstance(m, Payloads)}
    assert payloads[Side.LEFT].one_row_per_unit is True
    assert payloads[Side.RIGHT].one_row_per_unit is False


@pytest.mark.parametrize(
    "aggregate",
    [Aggregate("n", Function.COUNT), Aggregate("s", Function.SUM, Side.RIGHT, "cost")],
    ids=["count", "sum"],
)
def test_a_plan_that_would_multiply_rows_is_refused_before_any_row_is_read(aggregate: Aggregate) -> None:
    """Neither side declared one row per person: refused whatever the rows hold, even none."""
    plan = CrossDomainPlan(
        left=SidePlan("person_id", group_by=("district",)),
        right=SidePlan("person_id", sums=("cost",)),
        aggregates=(aggregate,),
    )
    with pytest.raises(CrossDomainUnsupported, match="one row per person"):
        run_plan(plan, citizens().iloc[0:0], visits().iloc[0:0], min_units=K)


def test_the_demo_plan_with_the_citizens_declared_one_row_per_person_equals_the_plain_join() -> None:
    released = check_output(
        run_plan(_demo(one_row_left=True), citizens(), visits(), min_units=K).table, Disclosure(min_units=K)
    ).table
    expected = plain_join(citizens(), visits())
    expected = expected[expected["patients"] >= K].reset_index(drop=True)
    pd.testing.assert_frame_equal(released, expected, check_dtype=False, check_exact=False, rtol=1e-9)


def _demo(*, one_row_left: bool) -> CrossDomainPlan:
    return CrossDomainPlan(
        left=SidePlan("person_id", group_by=("district",), one_row=one_row_left),
        right=SidePlan("person_id", sums=("cost",)),
        aggregates=DEMO_PLAN.aggregates,
    )
