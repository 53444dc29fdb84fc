"""The disclosure rules at the service level (real executor).

``suppression: remainder`` merges the rows below k into one remainder row inside the query
(``merge_small_rows``: its counts and averages are computed over the merged rows' own people, exactly)
when, together, they are backed by at least k people, and drops them otherwise; rounding touches COUNT
and SUM columns only, never averages or ratios (the additive columns are recorded at submit and read at
release). Before, no remainder row was ever released and rounding rounded averages too: these tests
failed then.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.sandbox_api.api_helpers import World, citizens_table, world
from tests.sandbox_api.python_job_helpers import approve_scope, result_of, run_job
from tests.sandbox_api.release_helpers import rules_scope_yaml

BY_DISTRICT = "SELECT district, COUNT(*) AS n, AVG(income) AS avg_income FROM citizens GROUP BY district"
ROUNDED = "rounded"
SMALL = "remainder-small-k"  # k = 10: only the tiny district falls below
WIDE = "remainder-wide-k"  # k = Harbour's size + 1: Harbour and the tiny district fall below


@pytest.fixture(scope="module")
def citizens() -> pd.DataFrame:
    return citizens_table().to_pandas()


@pytest.fixture(scope="module")
def wide_k(citizens: pd.DataFrame) -> int:
    sizes = citizens["district"].value_counts()
    k = int(sizes["Harbour"]) + 1
    # The data this relies on: Harbour and Tiny are the only districts below k, and together reach it.
    assert sorted(sizes[sizes < k].index) == ["Harbour", "Tiny"]
    assert sizes["Harbour"] + sizes["Tiny"] >= k
    return k


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, wide_k: int) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("state")) as deployment:
        approve_scope(deployment, rules_scope_yaml(SMALL, min_units=10, suppression="remainder"), SMALL)
        approve_scope(deployment, rules_scope_yaml(WIDE, min_units=wide_k, suppression="remainder"), WIDE)
        approve_scope(deployment, rules_scope_yaml(ROUNDED, min_units=10, rounding="{base: 5}"), ROUNDED)
        yield deployment


def released(api: World, scope: str, sql: str) -> dict[str, Any]:
    job = run_job(api, {"scope": scope, "sql": sql})
    assert job["state"] == "released", job["reason"]
    return result_of(api, job["job_id"])


def test_small_groups_that_together_reach_k_are_released_as_one_remainder_row(
    api: World, citizens: pd.DataFrame, wide_k: int
) -> None:
    result = released(api, WIDE, BY_DISTRICT)
    rows = {row[0]: row for row in result["rows"]}
    sizes = citizens["district"].value_counts()
    big = {d: int(n) for d, n in sizes.items() if n >= wide_k}
    assert {d: rows[d][1] for d in big} == big
    assert "Harbour" not in rows
    assert "Tiny" not in rows
    # One remainder row: group key NULL, its count and its average over the merged groups' people.
    merged = citizens[citizens["district"].isin(["Harbour", "Tiny"])]
    assert rows[None][:2] == [None, len(merged)]
    assert rows[None][2] == pytest.approx(merged["income"].mean(), rel=1e-9)
    assert len(result["rows"]) == len(big) + 1
    assert result["report"]["remainder"] is True


def test_small_groups_that_together_stay_below_k_are_dropped(api: World, citizens: pd.DataFrame) -> None:
    for sql in (BY_DISTRICT, "SELECT district, sex, COUNT(*) AS n FROM citizens GROUP BY district, sex"):
        result = released(api, SMALL, sql)
        assert all(row[0] not in (None, "Tiny") for row in result["rows"]), result["rows"]
    sizes = citizens["district"].value_counts()
    assert int(sizes["Tiny"]) < 10  # the dropped group really was below k


def test_a_remainder_with_subset_cells_counts_its_own_people(
    api: World, citizens: pd.DataFrame, wide_k: int
) -> None:
    """The remainder is computed inside the query over the merged groups' rows, so a FILTER cell of it
    counts exactly the people it holds (nothing is added up from rows a person could be behind twice);
    a subset cell below k reads NULL there as anywhere."""
    sql = (
        "SELECT district, COUNT(*) AS n, COUNT(*) FILTER (WHERE sex = 'F') AS women "
        "FROM citizens GROUP BY district"
    )
    checked = api.client.post("/v1/jobs/check", headers=api.h("alice"), json={"scope": WIDE, "sql": sql})
    assert checked.json()["allowed"], checked.json()["findings"]
    result = released(api, WIDE, sql)
    rows = {row[0]: row for row in result["rows"]}
    assert {"Harbour", "Tiny"}.isdisjoint(rows)
    merged = citizens[citizens["district"].isin(["Harbour", "Tiny"])]
    women = int((merged["sex"] == "F").sum())
    assert rows[None][1] == len(merged)
    others = len(merged) - women
    # neutralise_small_subsets: a subset below k reads NULL; a rest of 1..k-1 people, the whole row.
    expected = None if women < wide_k else len(merged) if 0 < others < wide_k else women
    assert rows[None][2] == expected


def test_rounding_touches_counts_and_sums_never_averages_or_ratios(
    api: World, citizens: pd.DataFrame
) -> None:
    sql = (
        "SELECT district, COUNT(*) AS n, SUM(income) AS total, AVG(income) AS avg_income, "
        "SUM(income) / COUNT(*) AS per_person FROM citizens GROUP BY district"
    )
    result = released(api, ROUNDED, sql)
    assert result["columns"] == ["district", "n", "total", "avg_income", "per_person"]
    truth = citizens.groupby("district")["income"].agg(["count", "sum", "mean"])
    rows = {row[0]: row[1:] for row in result["rows"]}
    # Every district of 10 people or more, except one the released-cohort ledger withheld because an
    # earlier test of this module released it merged with a smaller one (every scope over the same
    # data shares one ledger).
    expected = {d for d, c in truth["count"].items() if c >= 10}
    assert set(rows) <= expected
    assert len(expected - set(rows)) == result["report"].get("rows_withheld_by_ledger", 0)
    for district, (n, total, mean, per_person) in rows.items():
        expected = truth.loc[district]
        assert n == int(np.round(expected["count"] / 5) * 5)
        assert total == pytest.approx(np.round(expected["sum"] / 5) * 5, abs=1e-6)
        assert mean == pytest.approx(expected["mean"], rel=1e-9)
        assert per_person == pytest.approx(expected["sum"] / expected["count"], rel=1e-9)
    # Exact averages are (almost surely) not multiples of 5: they were left alone.
    assert any(mean % 5 for _, _, mean, _ in rows.values())
    assert result["report"]["cells_rounded"] > 0
