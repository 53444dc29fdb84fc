"""Whether COUNT(*), SUM and AVG across domains are exact is decided at submit, from the catalog and the
scope, never from the rows a run reads (``docs/cross-domain.md``: a run whose outcome turned on one
person's second row would answer a question about that person)."""

from __future__ import annotations

from typing import Any

import pytest

from executors.crossdomain.split import split
from policies import PolicyViolation
from policies.model import DifferentialPrivacy
from sandbox_api.server.services.catalog import VersionView
from sandbox_api.server.services.crossdomain_jobs import one_row_datasets

INPUTS = [
    {"dataset": "civil-affairs/citizens", "table": "citizens", "sql_name": "citizens"},
    {"dataset": "health-bureau/visits", "table": "visits", "sql_name": "visits"},
]
SQL = (
    "SELECT c.district AS district, COUNT(*) AS n, SUM(v.cost) AS total FROM citizens AS c "
    "JOIN visits AS v ON c.person_id = v.person_id GROUP BY c.district"
)


def _version(**described: Any) -> VersionView:
    return VersionView("v1", "active", "2026-01-01", "cleo", [{"name": "citizens", **described}])


def _visits() -> VersionView:
    return VersionView("v2", "active", "2026-01-01", "cleo", [{"name": "visits", "unique_units": False}])


@pytest.mark.parametrize(
    ("described", "dp", "expected"),
    [
        ({"one_row_per_unit": True, "unique_units": True}, None, True),
        ({"unique_units": True}, None, True),  # measured at the pinned version: shown by the catalog
        ({"unique_units": False}, None, False),
        ({}, None, False),  # a version stored before the measure: not assumed
        # Under DP never a measured fact (the noise never depends on one): a register, or a bound of 1.
        (
            {"unique_units": True},
            DifferentialPrivacy(epsilon_per_job=1, budget=2, max_rows_per_unit=3),
            False,
        ),
        (
            {"one_row_per_unit": True},
            DifferentialPrivacy(epsilon_per_job=1, budget=2, max_rows_per_unit=3),
            True,
        ),
        ({}, DifferentialPrivacy(epsilon_per_job=1, budget=2, max_rows_per_unit=1), True),
    ],
)
def test_one_row_per_person_comes_from_the_catalog_or_the_dp_bound(
    described: dict[str, Any], dp: DifferentialPrivacy | None, expected: bool
) -> None:
    versions = {"civil-affairs/citizens": _version(**described), "health-bureau/visits": _visits()}
    got = one_row_datasets(INPUTS, versions, dp)
    assert ("civil-affairs/citizens" in got) is expected
    if dp is None or dp.rows_per_unit("visits") > 1:
        assert "health-bureau/visits" not in got


def test_a_question_the_rows_per_person_would_make_inexact_is_refused_at_submit_with_what_to_do() -> None:
    datasets = {"citizens": "civil-affairs/citizens", "visits": "health-bureau/visits"}
    domains = {"civil-affairs/citizens": "civil-affairs", "health-bureau/visits": "health-bureau"}
    with pytest.raises(PolicyViolation) as refused:
        split(SQL, datasets=datasets, domains=domains)
    findings = {f.fragment: f.message for f in refused.value.findings}
    assert set(findings) == {"n", "total"}
    assert "COUNT(DISTINCT unit)" in findings["n"]
    assert "one_row_per_unit" in findings["total"]
    plan = split(SQL, datasets=datasets, domains=domains, one_row={"civil-affairs/citizens"}).plan
    assert plan.left.one_row is True
    assert plan.right.one_row is False
