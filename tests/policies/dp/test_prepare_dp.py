"""``prepare`` under a DP scope is the DP rewrite: the bounding passes in their places, no k rule and no
LIMIT in the SQL (partition selection and the cap after noise replace them), and the plan for the
release, derived from the operator's query."""

from __future__ import annotations

import pytest

from policies import prepare
from policies.context import compile_context
from policies.dp.examples import dp_catalog, dp_scope
from policies.errors import PolicyViolation
from tests.policies.dp.pipeline_dp import prepare_dp
from tests.policies.dp.test_recheck_contract import QUERIES


@pytest.mark.parametrize("sql", QUERIES)
def test_prepare_under_dp_is_the_dp_rewrite_with_its_plan(sql: str) -> None:
    prepared = prepare(sql, dp_scope(), dp_catalog())
    expected = prepare_dp(sql, compile_context(dp_scope(), dp_catalog()))
    assert prepared.sql == expected.sql
    assert prepared.dp_plan == expected.plan
    assert "LIMIT" not in prepared.sql
    assert ">= 10" not in prepared.sql
    assert "collect_cohorts" not in prepared.applied


def test_prepare_refuses_what_dp_cannot_bound() -> None:
    with pytest.raises(PolicyViolation) as refused:
        prepare(
            "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district LIMIT 2", dp_scope(), dp_catalog()
        )
    assert {f.rule for f in refused.value.findings} == {"dp_query_shape"}


def test_without_dp_there_is_no_plan() -> None:
    with_dp = dp_scope()
    scope = with_dp.model_copy(update={"disclosure": with_dp.disclosure.model_copy(update={"dp": None})})
    assert prepare(QUERIES[0], scope, dp_catalog()).dp_plan is None
