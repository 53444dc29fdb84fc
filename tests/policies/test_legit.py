"""Legitimate analytic queries must be allowed, and their released results must equal an independent
pandas computation on the fixture: row filter applied, masks applied with the scope's semantics,
aggregate bounds clamped, and rows behind fewer than k people dropped.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.policies.adversarial_fixture import (
    MIN_UNITS,
    Fixture,
    assert_no_leak,
    build_fixture,
    check,
    citizens_seen,
    joined_seen,
    normalise_key,
    prepare,
    run_rewritten,
    visits_seen,
)

Expected = Callable[[Fixture], pd.DataFrame]


@dataclass(frozen=True)
class Legit:
    id: str
    sql: str
    expected: Expected
    ordered: bool = False


def agg(
    frame: Callable[[Fixture], pd.DataFrame],
    keys: list[str],
    *,
    where: Callable[[pd.DataFrame], Any] | None = None,
    derive: dict[str, Callable[[pd.DataFrame], Any]] | None = None,
    having: Callable[[pd.DataFrame], Any] | None = None,
    sort: tuple[str, bool] | None = None,
    limit: int | None = None,
    **named: tuple[str, str],
) -> Expected:
    """Group ``frame`` by ``keys`` with named aggregations, then apply the k rule (and HAVING/ORDER/LIMIT).

    ``derive`` adds computed key columns before grouping (CASE buckets, year(...)).
    The k rule drops groups with fewer than MIN_UNITS distinct people.
    """

    def _expected(fx: Fixture) -> pd.DataFrame:
        data = frame(fx).copy()
        if where is not None:
            data = data[where(data)]
        for name, fn in (derive or {}).items():
            data[name] = fn(data)
        spec = {**named, "_units": ("person_id", "nunique")}
        if keys:
            out = data.groupby(keys, dropna=False).agg(**spec).reset_index()
        else:
            out = pd.DataFrame({name: [data[col].agg(how)] for name, (col, how) in spec.items()})
        if having is not None:
            out = out[having(out)]
        if sort is not None:
            out = out.sort_values(sort[0], ascending=sort[1], kind="stable")
        if limit is not None:
            out = out.head(limit)
        out = out[out["_units"] >= MIN_UNITS]
        return out.drop(columns="_units").reset_index(drop=True)

    return _expected


def _birth_bucket(d: pd.DataFrame) -> pd.Series:
    years = d["birth_date"].map(lambda v: v.year)
    return pd.Series(np.select([years < 1960, years < 1990], ["old", "middle"], "young"), index=d.index)


def _area(d: pd.DataFrame) -> pd.Series:
    return d["district"].map(lambda v: "rural" if v in ("Hills", "Riverside") else "urban")


def _year(col: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda d: d[col].map(lambda v: v.year)


def _month(col: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda d: d[col].map(lambda v: v.month)


C, V, J = citizens_seen, visits_seen, joined_seen

CASES: list[Legit] = [
    Legit(
        "people_by_district",
        "SELECT district, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY district",
        agg(C, ["district"], n=("person_id", "nunique")),
    ),
    Legit(
        "people_by_sex",
        "SELECT sex, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY sex",
        agg(C, ["sex"], n=("person_id", "nunique")),
    ),
    Legit(
        "income_by_district_and_sex",
        "SELECT district, sex, COUNT(DISTINCT person_id) AS n, SUM(income) AS total, AVG(income) AS mean "
        "FROM citizens GROUP BY district, sex",
        agg(
            C,
            ["district", "sex"],
            n=("person_id", "nunique"),
            total=("income", "sum"),
            mean=("income", "mean"),
        ),
    ),
    Legit(
        "avg_income_by_district",
        "SELECT district, AVG(income) AS mean FROM citizens GROUP BY district",
        agg(C, ["district"], mean=("income", "mean")),
    ),
    Legit(
        "counts_of_rows_and_values",
        "SELECT district, COUNT(*) AS rows_, COUNT(income) AS with_income, SUM(income) AS total "
        "FROM citizens GROUP BY district",
        agg(
            C,
            ["district"],
            rows_=("person_id", "size"),
            with_income=("income", "count"),
            total=("income", "sum"),
        ),
    ),
    Legit(
        "people_by_masked_birth_year",
        "SELECT birth_date AS born, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY birth_date",
        agg(C, ["born"], derive={"born": lambda d: d["birth_date"]}, n=("person_id", "nunique")),
    ),
    Legit(
        "people_by_year_function",
        "SELECT year(birth_date) AS y, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY y",
        agg(C, ["y"], derive={"y": _year("birth_date")}, n=("person_id", "nunique")),
    ),
    Legit(
        "case_bucket_of_birth_year",
        "SELECT CASE WHEN year(birth_date) < 1960 THEN 'old' WHEN year(birth_date) < 1990 THEN 'middle' "
        "ELSE 'young' END AS age_band, COUNT(DISTINCT person_id) AS n, AVG(income) AS mean "
        "FROM citizens GROUP BY age_band",
        agg(
            C,
            ["age_band"],
            derive={"age_band": _birth_bucket},
            n=("person_id", "nunique"),
            mean=("income", "mean"),
        ),
    ),
    Legit(
        "case_bucket_of_district",
        "SELECT CASE WHEN district IN ('Hills', 'Riverside') THEN 'rural' ELSE 'urban' END AS area, "
        "SUM(income) AS total FROM citizens GROUP BY 1",
        agg(C, ["area"], derive={"area": _area}, total=("income", "sum")),
    ),
    Legit(
        "visits_by_facility",
        "SELECT facility, COUNT(*) AS visits, COUNT(DISTINCT person_id) AS people, SUM(cost) AS total, "
        "AVG(cost) AS mean FROM visits GROUP BY facility",
        agg(
            V,
            ["facility"],
            visits=("person_id", "size"),
            people=("person_id", "nunique"),
            total=("cost", "sum"),
            mean=("cost", "mean"),
        ),
    ),
    Legit(
        "visits_by_masked_month",
        "SELECT visit_date AS month_, COUNT(*) AS visits FROM visits GROUP BY visit_date",
        agg(V, ["month_"], derive={"month_": lambda d: d["visit_date"]}, visits=("person_id", "size")),
    ),
    Legit(
        "visits_by_year_and_month",
        "SELECT year(visit_date) AS y, month(visit_date) AS m, COUNT(DISTINCT person_id) AS people, "
        "SUM(cost) AS total FROM visits GROUP BY 1, 2",
        agg(
            V,
            ["y", "m"],
            derive={"y": _year("visit_date"), "m": _month("visit_date")},
            people=("person_id", "nunique"),
            total=("cost", "sum"),
        ),
    ),
    Legit(
        "join_visits_by_district",
        "SELECT c.district, COUNT(*) AS visits, COUNT(DISTINCT c.person_id) AS people, SUM(v.cost) AS total "
        "FROM citizens c JOIN visits v ON c.person_id = v.person_id GROUP BY c.district",
        agg(
            J,
            ["district"],
            visits=("person_id", "size"),
            people=("person_id", "nunique"),
            total=("cost", "sum"),
        ),
    ),
    Legit(
        "join_visits_by_facility_and_sex",
        "SELECT v.facility, c.sex, COUNT(DISTINCT v.person_id) AS people, AVG(v.cost) AS mean "
        "FROM visits v JOIN citizens c ON v.person_id = c.person_id GROUP BY v.facility, c.sex",
        agg(J, ["facility", "sex"], people=("person_id", "nunique"), mean=("cost", "mean")),
    ),
    Legit(
        "join_using",
        "SELECT district, COUNT(*) AS visits FROM citizens JOIN visits USING (person_id) GROUP BY district",
        agg(J, ["district"], visits=("person_id", "size")),
    ),
    Legit(
        "cte_filtered_visits_joined",
        "WITH flu AS (SELECT person_id, cost FROM visits WHERE diagnosis LIKE 'J1%') "
        "SELECT c.district, COUNT(DISTINCT c.person_id) AS people, SUM(flu.cost) AS total "
        "FROM citizens c JOIN flu ON c.person_id = flu.person_id GROUP BY c.district",
        agg(
            J,
            ["district"],
            where=lambda d: d["diagnosis"].str.startswith("J1"),
            people=("person_id", "nunique"),
            total=("cost", "sum"),
        ),
    ),
    Legit(
        "cte_of_citizens",
        "WITH adults AS (SELECT person_id, district, income FROM citizens WHERE year(birth_date) <= 2000) "
        "SELECT district, COUNT(DISTINCT person_id) AS n, SUM(income) AS total FROM adults GROUP BY district",
        agg(
            C,
            ["district"],
            where=lambda d: d["birth_date"].map(lambda v: v.year) <= 2000,
            n=("person_id", "nunique"),
            total=("income", "sum"),
        ),
    ),
    Legit(
        "having_on_unit_count",
        "SELECT district, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY district "
        "HAVING COUNT(DISTINCT person_id) > 100",
        agg(C, ["district"], having=lambda o: o["n"] > 100, n=("person_id", "nunique")),
    ),
    Legit(
        "having_on_sum",
        "SELECT district, SUM(income) AS total FROM citizens GROUP BY district HAVING SUM(income) > 3000000",
        agg(C, ["district"], having=lambda o: o["total"] > 3_000_000, total=("income", "sum")),
    ),
    Legit(
        "order_by_aggregate",
        "SELECT district, AVG(income) AS mean FROM citizens GROUP BY district ORDER BY mean DESC",
        agg(C, ["district"], sort=("mean", False), mean=("income", "mean")),
        ordered=True,
    ),
    Legit(
        "order_by_count_limit",
        "SELECT facility, COUNT(DISTINCT person_id) AS people FROM visits GROUP BY facility "
        "ORDER BY people DESC LIMIT 3",
        agg(V, ["facility"], sort=("people", False), limit=3, people=("person_id", "nunique")),
        ordered=True,
    ),
    Legit(
        "where_on_filter_column",
        "SELECT facility, COUNT(DISTINCT person_id) AS people FROM visits "
        "WHERE diagnosis IN ('J10.1', 'J11.1') GROUP BY facility",
        agg(
            V,
            ["facility"],
            where=lambda d: d["diagnosis"].isin(["J10.1", "J11.1"]),
            people=("person_id", "nunique"),
        ),
    ),
    Legit(
        "where_on_group_columns",
        "SELECT district, COUNT(DISTINCT person_id) AS n, AVG(income) AS mean FROM citizens "
        "WHERE sex = 'F' AND district IN ('Central', 'North', 'Hills') GROUP BY district",
        agg(
            C,
            ["district"],
            where=lambda d: (d["sex"] == "F") & d["district"].isin(["Central", "North", "Hills"]),
            n=("person_id", "nunique"),
            mean=("income", "mean"),
        ),
    ),
    Legit(
        "masked_phone_as_key",
        "SELECT phone, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY phone",
        agg(C, ["phone"], n=("person_id", "nunique")),
    ),
    Legit(
        "masked_postcode_as_key",
        "SELECT postcode, COUNT(DISTINCT person_id) AS n, SUM(income) AS total FROM citizens GROUP BY "
        "postcode",
        agg(C, ["postcode"], n=("person_id", "nunique"), total=("income", "sum")),
    ),
    Legit(
        "keyed_hash_household_as_key",
        "SELECT household_id, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY household_id",
        agg(C, ["household_id"], n=("person_id", "nunique")),
    ),
    Legit(
        "group_by_all",
        "SELECT district, sex, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY ALL",
        agg(C, ["district", "sex"], n=("person_id", "nunique")),
    ),
    Legit(
        "facility_by_visit_year",
        "SELECT facility, year(visit_date) AS y, COUNT(*) AS visits, AVG(cost) AS mean FROM visits GROUP BY "
        "1, 2",
        agg(
            V,
            ["facility", "y"],
            derive={"y": _year("visit_date")},
            visits=("person_id", "size"),
            mean=("cost", "mean"),
        ),
    ),
    Legit(
        "where_on_masked_year",
        "SELECT sex, COUNT(DISTINCT person_id) AS n FROM citizens WHERE year(birth_date) >= 1980 GROUP BY "
        "sex",
        agg(
            C,
            ["sex"],
            where=lambda d: d["birth_date"].map(lambda v: v.year) >= 1980,
            n=("person_id", "nunique"),
        ),
    ),
    Legit(
        "join_with_filter_and_sex",
        "SELECT c.sex, COUNT(DISTINCT c.person_id) AS people, SUM(v.cost) AS total FROM citizens c "
        "JOIN visits v ON c.person_id = v.person_id WHERE v.diagnosis = 'I10' GROUP BY c.sex",
        agg(
            J,
            ["sex"],
            where=lambda d: d["diagnosis"] == "I10",
            people=("person_id", "nunique"),
            total=("cost", "sum"),
        ),
    ),
    Legit(
        "quoted_and_cased_identifiers",
        'SELECT "District", COUNT(DISTINCT Person_Id) AS n FROM Citizens GROUP BY "District"',
        agg(C, ["district"], n=("person_id", "nunique")),
    ),
    Legit(
        "whole_population",
        "SELECT COUNT(DISTINCT person_id) AS n, SUM(income) AS total FROM citizens",
        agg(C, [], n=("person_id", "nunique"), total=("income", "sum")),
    ),
    Legit(
        "bounded_sum_includes_clamped_billionaire",
        "SELECT district, SUM(income) AS total, AVG(income) AS mean FROM citizens WHERE district = 'Central' "
        "GROUP BY district",
        agg(
            C,
            ["district"],
            where=lambda d: d["district"] == "Central",
            total=("income", "sum"),
            mean=("income", "mean"),
        ),
    ),
    Legit(
        "bounded_cost_sum",
        "SELECT facility, SUM(cost) AS total FROM visits GROUP BY facility",
        agg(V, ["facility"], total=("cost", "sum")),
    ),
]


def _norm(value: Any) -> Any:
    value = normalise_key(value)
    if isinstance(value, str | int | float | dt.date) or value is None:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _same(a: Any, b: Any) -> bool:
    a, b = _norm(a), _norm(b)
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-6)
    return bool(a == b)


def _rows(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    return [tuple(_norm(v) for v in row) for row in frame.itertuples(index=False)]


def _sort_key(row: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(repr(v) if not isinstance(v, float) else f"{v:.6f}" for v in row)


def assert_same_table(released: pd.DataFrame, expected: pd.DataFrame, *, ordered: bool) -> None:
    got_cols = [str(c).lower() for c in released.columns]
    want_cols = [str(c).lower() for c in expected.columns]
    assert got_cols == want_cols, f"columns {got_cols} != expected {want_cols}"
    got, want = _rows(released), _rows(expected)
    assert len(got) == len(want), (
        f"{len(got)} rows released, expected {len(want)}:\n{released}\n---\n{expected}"
    )
    if not ordered:
        got, want = sorted(got, key=_sort_key), sorted(want, key=_sort_key)
    for g, w in zip(got, want, strict=True):
        assert all(_same(a, b) for a, b in zip(g, w, strict=True)), f"row {g} != expected {w}"


def test_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_legit_query_is_allowed_and_correct(case: Legit) -> None:
    report = check(case.sql)
    assert report.allowed, f"legitimate query refused: {[(f.rule, f.message) for f in report.findings]}"
    assert report.rewritten_sql
    released = run_rewritten(prepare(case.sql))
    assert_no_leak(released)
    assert_same_table(released, case.expected(build_fixture()), ordered=case.ordered)
