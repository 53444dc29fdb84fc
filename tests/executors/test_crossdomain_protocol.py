"""A cross-domain job end to end, in process: the released cells equal the plain join's, and what
crosses between parties is only what the protocol says (docs/cross-domain.md)."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from executors.crossdomain import (
    Aggregate,
    CrossDomainPlan,
    CrossDomainRun,
    CrossDomainUnsupported,
    Function,
    Protection,
    Side,
    SidePlan,
    run_plan,
)
from executors.crossdomain.domain_party import _shuffled
from executors.crossdomain.messages import DecryptRequest, Payloads, ShareSumRequest
from policies import result_hash
from policies.model import Disclosure
from policies.output import check_output
from tests.executors.crossdomain_world import DEMO_PLAN, K, citizens, plain_join, visits


@pytest.fixture(scope="module", params=list(Protection), ids=lambda p: f"values-as-{p.value}")
def demo_run(request: pytest.FixtureRequest) -> CrossDomainRun:
    return run_plan(DEMO_PLAN, citizens(), visits(), min_units=K, protection=request.param)


def test_released_cells_equal_the_plain_join(demo_run: CrossDomainRun) -> None:
    expected = plain_join(citizens(), visits())
    expected = expected[expected["patients"] >= K].reset_index(drop=True)
    released = check_output(demo_run.table, Disclosure(min_units=K)).table
    pd.testing.assert_frame_equal(released, expected, check_dtype=False, check_exact=False, rtol=1e-9)


def test_a_cell_below_k_is_left_out_before_anything_else_sees_it(demo_run: CrossDomainRun) -> None:
    assert "Tiny" not in set(demo_run.table["district"])
    assert (demo_run.table["_sbx_units"] >= K).all()


def test_only_cells_of_k_people_are_ever_summed(demo_run: CrossDomainRun) -> None:
    received = demo_run.transcript.received_by("right") + demo_run.transcript.received_by("left")
    asked = [len(m.ciphertexts) for m in received if isinstance(m, DecryptRequest)]
    asked += [len(m.cells) for m in received if isinstance(m, ShareSumRequest)]
    assert asked == [len(demo_run.table)]


def test_the_side_without_summed_columns_hands_over_no_values(demo_run: CrossDomainRun) -> None:
    payloads = {m.origin: m for m in demo_run.transcript.received_by("gateway") if isinstance(m, Payloads)}
    assert (payloads["left"].paillier_n, payloads["left"].ciphertexts, payloads["left"].gateway_shares) == (
        None,
        (),
        (),
    )
    assert payloads["right"].ciphertexts or payloads["right"].gateway_shares


def test_both_sides_with_several_rows_per_unit_refuse_counts_and_name_what_is_supported() -> None:
    """Decided from the plan (neither side declared one row per person), not from the rows: the rows
    here are the citizens twice, but no row is read before the refusal
    (``test_crossdomain_data_oracle.py`` shows why)."""
    plan = CrossDomainPlan(
        left=SidePlan("person_id", group_by=("district",)),
        right=SidePlan("person_id", sums=("cost",)),
        aggregates=DEMO_PLAN.aggregates,
    )
    doubled = pd.concat([citizens(20), citizens(20)], ignore_index=True)
    with pytest.raises(CrossDomainUnsupported, match="ask COUNT\\(DISTINCT unit\\)"):
        run_plan(plan, doubled, visits(30, people=20), min_units=K)


@pytest.mark.parametrize("protection", list(Protection))
def test_a_domain_with_no_rows_after_its_filters_gives_an_empty_result(protection: Protection) -> None:
    out = run_plan(DEMO_PLAN, citizens(30), visits(5).iloc[0:0], min_units=K, protection=protection)
    assert out.table.empty
    assert list(out.table.columns) == [
        "district",
        "patients",
        "visits",
        "avg_cost",
        "total_cost",
        "_sbx_units",
    ]


def test_group_keys_from_both_sides_and_a_sum_of_the_single_row_side_equal_the_plain_join() -> None:
    """Cells by district (civil-affairs) x clinic (health); SUM of the citizens' income, which the
    health side (one row per person here) does not multiply."""
    people = citizens(240).assign(income=lambda f: (f.index % 7) * 1000 + 0.5)
    patients = (
        visits(400, people=260)
        .drop_duplicates("person_id")
        .assign(clinic=lambda f: ["A" if i % 3 else "B" for i in range(len(f))])
    )
    plan = CrossDomainPlan(
        left=SidePlan("person_id", group_by=("district",), sums=("income",)),
        # One row per patient here (deduplicated), as the catalog would say of such a table.
        right=SidePlan("person_id", group_by=("clinic",), one_row=True),
        aggregates=(
            Aggregate("people", Function.COUNT_UNITS),
            Aggregate("income", Function.SUM, Side.LEFT, "income"),
        ),
    )
    out = run_plan(plan, people, patients, min_units=5, protection=Protection.SHARES).table
    joined = people.merge(patients, on="person_id")
    expected = (
        joined.groupby(["district", "clinic"])
        .agg(people=("person_id", "nunique"), income=("income", "sum"))
        .reset_index()
    )
    expected = expected[expected["people"] >= 5].reset_index(drop=True)
    released = check_output(out, Disclosure(min_units=5)).table
    assert len(expected) >= 4
    pd.testing.assert_frame_equal(released, expected, check_dtype=False)


def test_two_runs_with_fresh_keys_give_the_same_result_bytes(demo_run: CrossDomainRun) -> None:
    """Replay: keys, shuffles, dummies and masks are fresh each run, the released table is not."""
    again = run_plan(DEMO_PLAN, citizens(), visits(), min_units=K, protection=Protection.SHARES)
    disclosure = Disclosure(min_units=K)
    assert result_hash(check_output(again.table, disclosure).table) == result_hash(
        check_output(demo_run.table, disclosure).table
    )


def test_a_batch_order_tells_nothing_every_item_lands_anywhere_alike() -> None:
    """Batches are shuffled before blinding, so the position of a token says nothing about whose it is:
    every shuffle is a permutation, and over many draws each item lands first about equally often."""
    items = list(range(8))
    firsts: Counter[int] = Counter()
    for _ in range(4000):
        order = _shuffled(items)
        assert sorted(order) == items
        firsts[order[0]] += 1
    # 500 expected each; a binomial(4000, 1/8) stays within +-120 with overwhelming probability.
    assert all(380 < firsts[i] < 620 for i in items), firsts
