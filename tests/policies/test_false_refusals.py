"""Ordinary analyses that used to be refused: each must be allowed, and its released result must equal
an independent pandas computation on the fixture (row filter, bounds, and the k rule applied)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

from tests.policies.adversarial_fixture import (
    MIN_UNITS,
    build_fixture,
    check,
    citizens_seen,
    prepare,
    run_rewritten,
)

FX = build_fixture()


def _by_district(values: Callable[[pd.DataFrame], pd.Series]) -> dict[str, float]:
    """``values`` per district of the citizens a query sees, for districts of at least k people."""
    seen = citizens_seen(FX)
    out: dict[str, float] = {}
    for district, rows in seen.groupby("district"):
        if rows["person_id"].nunique() >= MIN_UNITS:
            out[str(district)] = float(values(rows).iloc[0])
    return out


def _one(fn: Callable[[pd.DataFrame], float]) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda rows: pd.Series([fn(rows)])


def _sum(rows: pd.DataFrame) -> float:
    return float(rows["income"].sum())


CASES: dict[str, tuple[str, Callable[[pd.DataFrame], pd.Series]]] = {
    "sum_over_distinct_units": (
        "SELECT district, SUM(income) / COUNT(DISTINCT person_id) AS v FROM citizens GROUP BY district",
        _one(lambda r: _sum(r) / r["person_id"].nunique()),
    ),
    "filtered_sum_over_sum": (
        "SELECT district, SUM(income) FILTER (WHERE sex = 'F') / SUM(income) AS v FROM citizens "
        "GROUP BY district",
        _one(lambda r: _sum(r[r["sex"] == "F"]) / _sum(r)),
    ),
    "ratio_of_filtered_counts": (
        "SELECT district, COUNT(*) FILTER (WHERE sex = 'F') * 1.0 / COUNT(*) FILTER (WHERE sex = 'M') AS v "
        "FROM citizens GROUP BY district",
        _one(lambda r: (r["sex"] == "F").sum() / (r["sex"] == "M").sum()),
    ),
    "rate_from_a_case_bucket": (
        "SELECT district, AVG(CASE WHEN sex = 'F' THEN 1.0 ELSE 0.0 END) AS v FROM citizens "
        "GROUP BY district",
        _one(lambda r: (r["sex"] == "F").mean()),
    ),
    "share_of_the_released_total": (
        "SELECT district, 100.0 * COUNT(*) / SUM(COUNT(*)) OVER () AS v FROM citizens GROUP BY district",
        _one(lambda r: 100.0 * len(r) / _released_people()),
    ),
    "small_rest_reads_as_the_whole_row": (
        "SELECT district, COUNT(*) FILTER (WHERE sex <> 'X') AS v FROM citizens GROUP BY district",
        _one(lambda r: float(len(r))),
    ),
}


def test_a_subset_below_k_reads_as_null_like_an_empty_one() -> None:
    table = run_rewritten(
        prepare("SELECT district, COUNT(*) FILTER (WHERE sex = 'X') AS v FROM citizens GROUP BY district")
    )
    assert len(table) == len(_by_district(_one(lambda r: 0.0)))
    assert table["v"].isna().all()


def _released_people() -> int:
    seen = citizens_seen(FX)
    sizes = seen.groupby("district")["person_id"].nunique()
    return int(sizes[sizes >= MIN_UNITS].sum())


@pytest.mark.parametrize("name", sorted(CASES))
def test_allowed_with_exact_answers(name: str) -> None:
    sql, values = CASES[name]
    report = check(sql)
    assert report.allowed, report.findings
    table = run_rewritten(prepare(sql))
    released = {str(d): float(v) for d, v in zip(table["district"], table["v"], strict=True)}
    expected = _by_district(values)
    assert released.keys() == expected.keys()
    for district, value in expected.items():
        assert released[district] == pytest.approx(value, rel=1e-9), district


def test_avg_of_a_group_column_is_refused_without_claiming_a_persons_value() -> None:
    report = check("SELECT district, AVG(sex) FROM citizens GROUP BY district")
    messages = [f.message for f in report.findings if f.rule == "group_use"]
    assert messages
    assert not any("one person" in m for m in messages)
    assert "GROUP BY sex" in messages[0]


@pytest.mark.parametrize(
    ("sql", "compared"),
    [
        (
            "SELECT sex, COUNT(*) AS n FROM citizens WHERE birth_date = DATE '1965-10-03' GROUP BY sex",
            "1965-01-01",
        ),
        (
            "SELECT sex, COUNT(*) AS n FROM citizens WHERE birth_date < '1965-10-03' GROUP BY sex",
            "1965-01-01",
        ),
        ("SELECT sex, COUNT(*) AS n FROM citizens WHERE postcode = '12345' GROUP BY sex", "123"),
    ],
)
def test_a_comparison_finer_than_the_mask_is_explained_not_refused(sql: str, compared: str) -> None:
    report = check(sql)
    assert report.allowed
    assert [n.rule for n in report.notes] == ["mask_comparison"]
    assert compared in report.notes[0].message
    assert report.to_dict()["notes"][0]["severity"] == "note"
    assert prepare(sql).notes == report.notes


def test_a_comparison_the_mask_can_produce_has_no_note() -> None:
    report = check(
        "SELECT sex, COUNT(*) AS n FROM citizens WHERE birth_date = DATE '1965-01-01' GROUP BY sex"
    )
    assert report.allowed
    assert report.notes == ()
