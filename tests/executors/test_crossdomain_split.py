"""The demo's SQL, through the policy engine, split into each domain's part, joined privately and
released: the same cells as the single-process query; other shapes refused with what is supported."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from executors.crossdomain import Protection, Side, new_party, run_in_process
from executors.crossdomain.gateway_party import Gateway
from executors.crossdomain.plan import Aggregate, CrossDomainPlan, Function, SidePlan
from executors.crossdomain.split import RULE, DomainPart, SplitQuery, disclosure_findings, dp_findings
from policies import Finding, PolicyViolation, PreparedQuery, prepare
from policies.dp.plan import Cell as DpCell
from policies.dp.plan import DpColumn, DpPlan
from policies.model import DifferentialPrivacy, Disclosure
from sandbox_api.cli.demo import FLU_BY_DISTRICT
from sandbox_api.cli.demo_cross_domain import demo_catalog, demo_scope, run_domain_part, split_prepared
from sandbox_api.cli.demo_data import demo_datasets
from sandbox_api.server.services.release import Released, TableResult, release
from sandbox_api.server.services.release_facts import ReleaseFacts

SCOPE, CATALOG = demo_scope(), demo_catalog()
DP = DifferentialPrivacy(epsilon_per_job=0.5, budget=5.0)


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    citizens, visits = demo_datasets(citizens_n=3000, visits_n=6000)
    return {"citizens": citizens.frame, "visits": visits.frame}


def _released(table: pd.DataFrame, prepared: PreparedQuery) -> Released:
    facts = ReleaseFacts(additive_columns=prepared.additive_columns)
    out = release(TableResult(table), scope=SCOPE, facts=facts)
    assert isinstance(out, Released)
    return out


def _both_ways(
    prepared: PreparedQuery, tables: dict[str, pd.DataFrame]
) -> tuple[SplitQuery, Released, Released]:
    """The split query, its cells released across domains, and the same query's in one process."""
    one_process = duckdb.connect()
    for name, frame in tables.items():
        one_process.register(name, frame)
    expected = _released(one_process.execute(prepared.sql).df(), prepared)
    query = split_prepared(prepared)
    # Values as shares: the Paillier path gives the same sums (test_crossdomain_protocol.py), slower.
    run = run_in_process(
        new_party(query.plan, Side.LEFT, run_domain_part(query.left, tables), protection=Protection.SHARES),
        new_party(query.plan, Side.RIGHT, run_domain_part(query.right, tables), protection=Protection.SHARES),
        Gateway(query.plan, min_units=SCOPE.disclosure.min_units),
    )
    return query, _released(run.table, prepared), expected


def test_the_demo_query_across_domains_releases_the_single_process_cells(
    tables: dict[str, pd.DataFrame],
) -> None:
    prepared = prepare(FLU_BY_DISTRICT, SCOPE, CATALOG)
    query, got, expected = _both_ways(prepared, tables)
    assert query.order_by == (("patients", True),)
    assert got.columns == expected.columns
    assert len(expected.rows) >= 3
    # Ties in ORDER BY patients may come in any order, in SQL as here: compare by district.
    pd.testing.assert_frame_equal(
        pd.DataFrame(got.rows, columns=got.columns).sort_values("district", ignore_index=True),
        pd.DataFrame(expected.rows, columns=expected.columns).sort_values("district", ignore_index=True),
        check_dtype=False,
        rtol=1e-9,
    )


COUNT_OF_COLUMNS = (
    "SELECT c.district, COUNT(v.diagnosis) AS diagnosed, COUNT(v.cost) AS costed, "
    "SUM(v.cost) AS total FROM visits v "
    "JOIN citizens c ON v.person_id = c.person_id GROUP BY c.district"
)


def test_a_count_of_a_column_across_domains_counts_its_non_null_values_as_one_query_does(
    tables: dict[str, pd.DataFrame],
) -> None:
    # NULLs on both sides, in a text column and in a summed one: COUNT(x) counts what is not NULL,
    # text included, and the sum beside it is unchanged by the count's own slot.
    visits = tables["visits"].copy()
    visits.loc[visits.index % 3 == 0, "diagnosis"] = None
    visits.loc[visits.index % 5 == 0, "cost"] = None
    nulls = {"visits": visits, "citizens": tables["citizens"]}
    query, got, expected = _both_ways(prepare(COUNT_OF_COLUMNS, SCOPE, CATALOG), nulls)
    assert {a.function for a in query.plan.aggregates} >= {Function.COUNT_VALUES, Function.SUM}
    frame = pd.DataFrame(got.rows, columns=got.columns).sort_values("district", ignore_index=True)
    assert (frame["diagnosed"] < frame["costed"]).all()  # the NULLs were left out, each column its own
    pd.testing.assert_frame_equal(
        frame,
        pd.DataFrame(expected.rows, columns=expected.columns).sort_values("district", ignore_index=True),
        check_dtype=False,
        rtol=1e-9,
    )


def test_a_count_of_a_column_weighted_by_the_other_sides_rows_is_refused_at_submit() -> None:
    sql = (
        "SELECT v.diagnosis, COUNT(c.income) AS n FROM visits v "
        "JOIN citizens c ON v.person_id = c.person_id GROUP BY v.diagnosis"
    )
    with pytest.raises(PolicyViolation) as raised:
        split_prepared(prepare(sql, SCOPE, CATALOG))
    (finding,) = raised.value.findings
    assert "COUNT of a left column" in finding.message or "COUNT of a right column" in finding.message
    assert "one row per person" in finding.message


def test_each_domain_part_reads_only_its_own_table_with_the_scope_applied() -> None:
    query = split_prepared(prepare(FLU_BY_DISTRICT, SCOPE, CATALOG))
    parts = {part.dataset: part.sql for part in (query.left, query.right)}
    assert "citizens" not in parts["health-bureau/visits"]
    assert "visits" not in parts["civil-affairs/citizens"]
    assert "Military Zone" in parts["civil-affairs/citizens"]  # the scope's row filter came along
    assert "50000" in parts["health-bureau/visits"]  # the scope's bounds clamp the summed cost


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        (
            "SELECT c.district, COUNT(*) + 1 AS n FROM visits v "
            "JOIN citizens c ON v.person_id = c.person_id GROUP BY c.district",
            "+ 1",
        ),
        (
            "SELECT c.district, COUNT(DISTINCT v.person_id) AS n FROM visits v JOIN citizens c "
            "ON v.person_id = c.person_id WHERE v.diagnosis = 'J11 Influenza' OR c.sex = 'F' "
            "GROUP BY c.district",
            "OR",
        ),
    ],
    ids=["arithmetic on an aggregate", "a condition across both sides"],
)
def test_other_shapes_are_refused_with_the_supported_one(sql: str, fragment: str) -> None:
    with pytest.raises(PolicyViolation) as raised:
        split_prepared(prepare(sql, SCOPE, CATALOG))
    (finding,) = raised.value.findings
    assert finding.rule == RULE
    assert "the supported shape is" in finding.message
    assert fragment in finding.fragment


def test_remainder_rows_are_named_as_what_a_cross_domain_job_lacks() -> None:
    (finding,) = disclosure_findings(Disclosure(suppression="remainder"))
    assert finding.rule == RULE
    assert finding.fragment == "suppression: remainder"
    assert "use suppression: drop" in finding.message


def test_differential_privacy_fits_a_cross_domain_job() -> None:
    """The gateway noises the rebuilt cells through the one release function (tests in
    ``test_crossdomain_dp.py`` and the API's ``test_cross_domain_dp_jobs.py``)."""
    assert disclosure_findings(Disclosure(dp=DP)) == ()


def _one_sum(bounds: tuple[float, float], rows: dict[str, int]) -> tuple[Finding, ...]:
    query = SplitQuery(
        DomainPart("a/x", ""),
        DomainPart("b/y", ""),
        CrossDomainPlan(
            SidePlan("u"),
            SidePlan("u", sums=("cost",)),
            (Aggregate("total", Function.SUM, Side.RIGHT, "cost"),),
        ),
        order_by=(),
        limit=None,
    )
    plan = DpPlan((DpColumn("total", DpCell.SUM, 0, "cost", bounds),), 1, 1, None, None)
    return dp_findings(query, plan, rows_per_unit=rows)


def test_under_dp_a_bound_past_the_encrypted_sums_range_is_refused_before_a_value_can_fail_the_run() -> None:
    # A declared high above what the sums hold would let the run fail exactly when someone's clamped
    # value is above it: a one-bit answer about that person that the noise does not cover.
    assert [f.fragment for f in _one_sum((0, 1e12), {"a/x": 1, "b/y": 3})] == ["total"]
    assert [f.fragment for f in _one_sum((-1e12, 0), {"a/x": 1, "b/y": 3})] == ["total"]
    assert _one_sum((0, 5000), {"a/x": 1, "b/y": 3}) == ()


def test_under_dp_negative_bounds_are_accepted_since_negative_values_have_their_own_slot() -> None:
    assert _one_sum((-5000, 5000), {"a/x": 1, "b/y": 3}) == ()


def test_under_dp_a_table_whose_rows_per_person_are_unknown_counts_as_several() -> None:
    assert [f.fragment for f in _one_sum((0, 5000), {"b/y": 3})] == ["total"]
