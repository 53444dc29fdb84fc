"""A cross-domain job end to end, in process: the released cells equal the plain join's, and what
crosses between parties is only what the protocol says (docs/cross-domain.md)."""

from __future__ import annotations

import pandas as pd
import pytest

from executors.crossdomain import (
    CrossDomainPlan,
    CrossDomainRun,
    CrossDomainUnsupported,
    Protection,
    SidePlan,
    run_plan,
)
from executors.crossdomain.messages import DecryptRequest, Payloads, ShareSumRequest
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


def test_a_cell_below_k_carries_its_count_of_people_and_no_values(demo_run: CrossDomainRun) -> None:
    tiny = demo_run.table[demo_run.table["district"] == "Tiny"]
    assert tiny["_sbx_units"].tolist() == [1]
    assert tiny[["patients", "visits", "avg_cost", "total_cost"]].isna().all(axis=None)


def test_only_cells_of_k_people_are_ever_summed(demo_run: CrossDomainRun) -> None:
    received = demo_run.transcript.received_by("right") + demo_run.transcript.received_by("left")
    asked = [len(m.ciphertexts) for m in received if isinstance(m, DecryptRequest)]
    asked += [len(m.cells) for m in received if isinstance(m, ShareSumRequest)]
    assert asked == [int((demo_run.table["_sbx_units"] >= K).sum())]


def test_the_side_without_summed_columns_hands_over_no_values(demo_run: CrossDomainRun) -> None:
    payloads = {m.origin: m for m in demo_run.transcript.received_by("gateway") if isinstance(m, Payloads)}
    assert (payloads["left"].paillier_n, payloads["left"].ciphertexts, payloads["left"].gateway_shares) == (
        None,
        (),
        (),
    )
    assert payloads["right"].ciphertexts or payloads["right"].gateway_shares


def test_both_sides_with_several_rows_per_unit_refuse_counts_and_name_what_is_supported() -> None:
    plan = CrossDomainPlan(
        left=SidePlan("person_id", group_by=("district",)),
        right=SidePlan("person_id", sums=("cost",)),
        aggregates=DEMO_PLAN.aggregates,
    )
    doubled = pd.concat([citizens(20), citizens(20)], ignore_index=True)
    with pytest.raises(CrossDomainUnsupported, match="Supported: COUNT\\(DISTINCT unit\\) always"):
        run_plan(plan, doubled, visits(30, people=20), min_units=K)


def test_null_values_in_a_summed_column_are_refused_with_the_filter_to_add() -> None:
    rows = visits(5)
    rows.loc[0, "cost"] = None
    with pytest.raises(CrossDomainUnsupported, match="WHERE cost IS NOT NULL"):
        run_plan(DEMO_PLAN, citizens(20), rows, min_units=K)


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
