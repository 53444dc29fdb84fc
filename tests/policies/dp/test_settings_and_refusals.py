"""Every DP setting is documented for policy officers; old scopes stay valid; the DP query shape refuses
what would let the exact data decide what is released, and says why."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from policies.dp.examples import DP_SCOPE, dp_context, dp_scope
from policies.dp.plan import RULE, dp_query_shape, plan_dp
from policies.examples import example_context
from policies.model import DifferentialPrivacy, load_scope

DOCS = (Path(__file__).resolve().parents[3] / "docs" / "writing-a-scope.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(DifferentialPrivacy.model_fields))
def test_every_dp_setting_is_documented(name: str) -> None:
    assert f"`{name}`" in DOCS, f"docs/writing-a-scope.md does not explain dp.{name}"


def test_a_scope_written_before_dp_ran_stays_valid() -> None:
    scope = load_scope(
        "scope: s\npurpose: p\ngrantees: [group:g]\nvalid: {from: 2026-01-01, until: 2026-02-01}\n"
        "datasets: {hb/people: {}}\ndisclosure: {dp: {epsilon_per_job: 0.5, budget: 5.0, delta: 1.0e-7}}\n"
    )
    dp = scope.disclosure.dp
    assert dp is not None
    assert (dp.mechanism, dp.refresh, dp.max_rows_per_unit, dp.max_groups_per_unit) == (
        "laplace",
        "none",
        1,
        1,
    )


@pytest.mark.parametrize(
    "settings",
    [
        {"epsilon_per_job": 1, "budget": 0.5},
        {"epsilon_per_job": 1, "budget": 5, "mechanism": "gaussian"},
        {"epsilon_per_job": 1, "budget": 5, "refresh": {"every_days": 30, "risk_accepted": "fine"}},
        {"epsilon_per_job": 1, "budget": 5, "public_groups": {"district": []}},
        {"epsilon_per_job": 1, "budget": 5, "max_rows_per_unit": 0},
        {"epsilon_per_job": 1, "budget": 5, "epsilon": 1},
    ],
    ids=[
        "job-above-budget",
        "gaussian-without-delta",
        "refresh-risk-unstated",
        "empty-domain",
        "zero-rows",
        "typo",
    ],
)
def test_incoherent_settings_are_refused(settings: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DifferentialPrivacy.model_validate(settings)


BY_DISTRICT = "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district"
REFUSED = {
    "top-k by exact count": f"{BY_DISTRICT} ORDER BY n DESC LIMIT 1",
    "having on an exact count": f"{BY_DISTRICT} HAVING COUNT(*) > 3",
    "self-join doubling one person": "SELECT a.district, COUNT(*) AS n FROM citizens a "
    "JOIN citizens b ON a.person_id = b.person_id GROUP BY a.district",
    "join on a non-unit key": "SELECT v.ward, COUNT(*) AS n FROM citizens c "
    "JOIN visits v ON c.district = v.ward GROUP BY v.ward",
    "membership subquery": "SELECT COUNT(*) AS n FROM citizens "
    "WHERE person_id IN (SELECT person_id FROM visits)",
    "arithmetic over aggregates": "SELECT district, SUM(income) / COUNT(*) AS m FROM citizens "
    "GROUP BY district",
    "union spending twice": "SELECT COUNT(*) AS n FROM citizens UNION ALL SELECT COUNT(*) FROM visits",
    "data keys without delta": "SELECT ward, COUNT(*) AS n FROM visits GROUP BY ward",
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_what_dp_cannot_bound_is_refused_with_a_reason(case: str) -> None:
    scope = (
        dp_scope(DP_SCOPE.replace("delta: 1.0e-8", "delta: 0")) if case == "data keys without delta" else None
    )
    ctx, _, analysis = dp_context(REFUSED[case], scope)
    findings = list(dp_query_shape(analysis, ctx))
    assert findings
    assert all(f.rule == RULE and "differential privacy" in f.message for f in findings)


def test_dp_query_shape_says_nothing_without_dp() -> None:
    ctx, _, analysis = example_context(REFUSED["top-k by exact count"].replace("LIMIT 1", ""))
    assert list(dp_query_shape(analysis, ctx)) == []


def test_a_join_on_the_unit_with_filters_and_ctes_is_planned() -> None:
    sql = (
        "WITH v AS (SELECT person_id, cost FROM visits WHERE ward <> 'C') "
        "SELECT c.district, COUNT(*) AS n, SUM(v.cost) AS s FROM citizens c "
        "JOIN v ON c.person_id = v.person_id WHERE c.sex = 'F' GROUP BY c.district"
    )
    ctx, _, analysis = dp_context(sql)
    plan = plan_dp(analysis, ctx)
    assert (plan.rows_per_unit, plan.groups_per_unit, plan.selects_keys) == (6, 6, False)
