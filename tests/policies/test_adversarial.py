"""Attacks that try to get a person's value out through aggregates, windows, set operations, subqueries
and grouping.

Each case either must be refused with a finding of the named kind (``reject``) or, where the engine may
legitimately allow it, is executed and its released table checked independently (``safe``): no
protected value anywhere, every row backed by at least k people according to a pandas oracle.
Filtering, padding, FILTER clauses, ordering, error oracles and differencing are in
``test_adversarial_leaks.py``; statements, files, system functions, identifiers and masks in
``test_adversarial_surface.py``.
"""

from __future__ import annotations

import pandas as pd
import pytest

from tests.policies.adversarial_fixture import (
    MIN_UNITS,
    RARE_DIAGNOSIS,
    Attack,
    assert_attack,
    at_most_one_value,
    build_fixture,
    citizens_seen,
    joined_seen,
    reject,
    safe,
    units_oracle,
    visits_seen,
)

FX = build_fixture()
TARGET = FX.citizens.iloc[0]  # an ordinary person in 'Central'
PID = TARGET["person_id"]
NID = TARGET["national_id"]
OTHER_PID = FX.citizens.iloc[2]["person_id"]

BY_DISTRICT = units_oracle(citizens_seen, ["district"])
BY_FACILITY = units_oracle(visits_seen, ["facility"])
JOINED_BY_DISTRICT = units_oracle(joined_seen, ["district"])


def _totals_of_large_districts(table: pd.DataFrame) -> None:
    """A pass-through of per-district sums may only show sums of districts with at least k people."""
    seen = citizens_seen(FX)
    raw = FX.visible_citizens
    sizes = seen.groupby("district")["person_id"].nunique()
    large = sizes[sizes >= MIN_UNITS].index
    allowed = set(seen.groupby("district")["income"].sum()[large].round(2)) | set(
        raw.groupby("district")["income"].sum()[large].round(2)
    )
    for value in table.iloc[:, 0].tolist():
        assert round(float(value), 2) in allowed, f"released total {value} is not the sum of a large district"


AGGREGATES: list[Attack] = [
    reject("agg_min_income", "SELECT district, MIN(income) FROM citizens GROUP BY district", "aggregate_fn"),
    reject("agg_max_income", "SELECT district, MAX(income) FROM citizens GROUP BY district", "aggregate_fn"),
    reject("agg_max_cost", "SELECT facility, MAX(cost) FROM visits GROUP BY facility", "aggregate_fn"),
    reject(
        "agg_any_value_national_id",
        "SELECT district, ANY_VALUE(national_id) FROM citizens GROUP BY district",
        "deny",
    ),
    reject("agg_first_name", "SELECT district, FIRST(name) FROM citizens GROUP BY district", "deny"),
    reject("agg_last_name", "SELECT district, LAST(name) FROM citizens GROUP BY district", "deny"),
    reject(
        "agg_arbitrary_email", "SELECT district, ARBITRARY(email) FROM citizens GROUP BY district", "deny"
    ),
    reject(
        "agg_arg_min_national_id",
        "SELECT district, ARG_MIN(national_id, income) FROM citizens GROUP BY 1",
        "deny",
    ),
    reject(
        "agg_arg_max_name", "SELECT district, ARG_MAX(name, income) FROM citizens GROUP BY district", "deny"
    ),
    reject(
        "agg_max_by_phone",
        "SELECT district, MAX_BY(phone, income) FROM citizens GROUP BY district",
        "group_col",
        "aggregate_fn",
        "aggregate_col",
    ),
    reject(
        "agg_arg_max_cost_by_date",
        "SELECT facility, ARG_MAX(cost, visit_date) FROM visits GROUP BY 1",
        "aggregate_fn",
        "group_col",
    ),
    reject(
        "agg_string_agg_name",
        "SELECT district, STRING_AGG(name, ',') FROM citizens GROUP BY district",
        "deny",
    ),
    reject(
        "agg_string_agg_phone",
        "SELECT district, STRING_AGG(phone, ',') FROM citizens GROUP BY district",
        "group_col",
        "aggregate_fn",
    ),
    reject("agg_group_concat_national_id", "SELECT GROUP_CONCAT(national_id) FROM citizens", "deny"),
    reject(
        "agg_list_national_id", "SELECT district, LIST(national_id) FROM citizens GROUP BY district", "deny"
    ),
    reject(
        "agg_array_agg_person_id",
        "SELECT district, ARRAY_AGG(person_id) FROM citizens GROUP BY district",
        "join_key",
    ),
    reject(
        "agg_list_income", "SELECT district, LIST(income) FROM citizens GROUP BY district", "aggregate_fn"
    ),
    reject(
        "agg_histogram_income", "SELECT district, HISTOGRAM(income) FROM citizens GROUP BY 1", "aggregate_fn"
    ),
    reject(
        "agg_histogram_birth_year",
        "SELECT district, HISTOGRAM(birth_date) FROM citizens GROUP BY 1",
        "aggregate_fn",
        "group_col",
    ),
    reject(
        "agg_mode_income", "SELECT district, MODE(income) FROM citizens GROUP BY district", "aggregate_fn"
    ),
    reject("agg_mode_diagnosis", "SELECT facility, MODE(diagnosis) FROM visits GROUP BY facility", "filter"),
    reject(
        "agg_quantile_cont_income",
        "SELECT district, QUANTILE_CONT(income, 0.99) FROM citizens GROUP BY 1",
        "aggregate_fn",
    ),
    reject(
        "agg_quantile_disc_cost",
        "SELECT facility, QUANTILE_DISC(cost, 1.0) FROM visits GROUP BY 1",
        "aggregate_fn",
    ),
    reject(
        "agg_median_income", "SELECT district, MEDIAN(income) FROM citizens GROUP BY district", "aggregate_fn"
    ),
    reject("agg_approx_quantile_income", "SELECT APPROX_QUANTILE(income, 0.5) FROM citizens", "aggregate_fn"),
    reject(
        "agg_stddev_not_listed", "SELECT district, STDDEV(income) FROM citizens GROUP BY 1", "aggregate_fn"
    ),
    reject("agg_fsum_not_listed", "SELECT district, FSUM(income) FROM citizens GROUP BY 1", "aggregate_fn"),
    reject(
        "agg_max_person_id", "SELECT district, MAX(person_id) FROM citizens GROUP BY district", "join_key"
    ),
    reject(
        "agg_min_birth_date",
        "SELECT district, MIN(birth_date) FROM citizens GROUP BY district",
        "group_col",
        "aggregate_fn",
    ),
    reject(
        "agg_max_visit_date",
        "SELECT facility, MAX(visit_date) FROM visits GROUP BY facility",
        "group_col",
        "aggregate_fn",
    ),
    reject("agg_count_distinct_national_id", "SELECT COUNT(DISTINCT national_id) FROM citizens", "deny"),
    reject(
        "agg_sum_case_on_national_id",
        f"SELECT SUM(CASE WHEN national_id = '{NID}' THEN income ELSE 0 END) FROM citizens",
        "deny",
    ),
    reject("agg_sum_cast_national_id", "SELECT SUM(CAST(national_id AS BIGINT)) FROM citizens", "deny"),
    reject("agg_bit_xor_income", "SELECT BIT_XOR(CAST(income AS BIGINT)) FROM citizens", "aggregate_fn"),
    reject(
        "agg_min_inside_cte",
        "WITH m AS (SELECT district, MIN(income) AS x FROM citizens GROUP BY district) "
        "SELECT district, SUM(x) FROM m GROUP BY district",
        "aggregate_fn",
        "aggregate_col",
    ),
    reject("agg_min_email", "SELECT MIN(email) FROM citizens", "deny"),
    reject("agg_max_upper_name", "SELECT district, MAX(UPPER(name)) FROM citizens GROUP BY 1", "deny"),
    reject(
        "agg_max_in_having",
        "SELECT district, COUNT(DISTINCT person_id) FROM citizens GROUP BY district HAVING MAX(income) > "
        "1000000",
        "aggregate_fn",
    ),
    reject(
        "agg_list_distinct_diagnosis",
        "SELECT facility, LIST(DISTINCT diagnosis) FROM visits GROUP BY 1",
        "filter",
    ),
    reject(
        "agg_sum_diagnosis_length", "SELECT facility, SUM(LENGTH(diagnosis)) FROM visits GROUP BY 1", "filter"
    ),
]

WINDOWS: list[Attack] = [
    reject("win_rank_income", "SELECT district, RANK() OVER (ORDER BY income) FROM citizens", "window"),
    reject(
        "win_sum_partition",
        "SELECT district, SUM(income) OVER (PARTITION BY district) FROM citizens",
        "window",
    ),
    reject(
        "win_lead_over_aggregates",
        "SELECT district, SUM(income) AS s, LEAD(SUM(income)) OVER (ORDER BY district) AS next_s "
        "FROM citizens GROUP BY district",
        "window",
    ),
    reject(
        "win_lag_unit_count",
        "SELECT district, COUNT(DISTINCT person_id) AS n, LAG(COUNT(DISTINCT person_id)) OVER (ORDER BY n) "
        "FROM citizens GROUP BY district",
        "window",
    ),
    reject(
        "win_row_number_top6",
        "SELECT district, SUM(income) FROM (SELECT district, income, ROW_NUMBER() OVER "
        "(PARTITION BY district ORDER BY income DESC) AS rn FROM citizens) t WHERE rn <= 6 GROUP BY district",
        "window",
    ),
    reject(
        "win_qualify",
        "SELECT district, income FROM citizens "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY district ORDER BY income DESC) = 1",
        "window",
    ),
    reject("win_count_over_all", "SELECT district, COUNT(*) OVER () FROM citizens", "window"),
    reject(
        "win_named_window",
        "SELECT district, SUM(income) OVER w FROM citizens WINDOW w AS (PARTITION BY district)",
        "window",
    ),
    reject(
        "win_nth_value",
        "SELECT NTH_VALUE(income, 2) OVER (ORDER BY income DESC) FROM citizens LIMIT 1",
        "window",
    ),
    reject(
        "win_first_value_name",
        "SELECT FIRST_VALUE(name) OVER (PARTITION BY district ORDER BY income DESC) FROM citizens",
        "window",
    ),
    reject(
        "win_in_where_subquery",
        "SELECT district, COUNT(DISTINCT person_id) FROM citizens WHERE person_id IN (SELECT person_id FROM "
        "(SELECT person_id, ROW_NUMBER() OVER (ORDER BY income DESC) AS rn FROM citizens) t WHERE rn = 1) "
        "GROUP BY district",
        "window",
    ),
    reject(
        "win_cume_dist_over_sums",
        "SELECT district, CUME_DIST() OVER (ORDER BY SUM(income)) FROM citizens GROUP BY district",
        "window",
    ),
]

SET_OPERATIONS: list[Attack] = [
    reject(
        "union_all_raw_names",
        "SELECT district, COUNT(DISTINCT person_id) FROM citizens GROUP BY district "
        "UNION ALL SELECT name, income FROM citizens",
        "deny",
    ),
    reject(
        "union_national_id",
        "SELECT district, SUM(income) FROM citizens GROUP BY district UNION SELECT national_id, 0 FROM "
        "citizens",
        "deny",
    ),
    reject(
        "union_all_raw_income",
        "SELECT district, SUM(income) FROM citizens GROUP BY district UNION ALL SELECT district, income "
        "FROM citizens",
        "aggregate_col",
        "raw_output",
    ),
    reject(
        "union_all_group_rows",
        "SELECT district, COUNT(DISTINCT person_id) FROM citizens GROUP BY district "
        "UNION ALL SELECT district, 1 FROM citizens",
        "raw_output",
    ),
    reject(
        "union_by_name_raw_income",
        "SELECT district, SUM(income) AS s FROM citizens GROUP BY district "
        "UNION ALL BY NAME SELECT income AS s FROM citizens",
        "aggregate_col",
        "raw_output",
    ),
    reject(
        "except_names",
        "SELECT district FROM citizens GROUP BY district EXCEPT SELECT name FROM citizens",
        "deny",
    ),
    reject(
        "intersect_national_id",
        "SELECT national_id FROM citizens INTERSECT SELECT national_id FROM citizens",
        "deny",
    ),
    reject(
        "union_visits_raw_cost",
        "SELECT facility, COUNT(*) FROM visits GROUP BY facility UNION ALL SELECT diagnosis, cost FROM "
        "visits",
        "filter",
        "aggregate_col",
        "raw_output",
    ),
]

SUBQUERIES: list[Attack] = [
    reject(
        "cte_raw_national_id",
        "WITH raw AS (SELECT national_id, income FROM citizens) SELECT * FROM raw",
        "deny",
    ),
    reject("subquery_raw_name_phone", "SELECT * FROM (SELECT name, phone FROM citizens) s", "deny"),
    reject(
        "cte_raw_person_id", "WITH r AS (SELECT person_id FROM citizens) SELECT person_id FROM r", "join_key"
    ),
    reject(
        "cte_raw_group_rows",
        "WITH r AS (SELECT district, sex FROM citizens) SELECT district, sex FROM r",
        "raw_output",
    ),
    reject(
        "scalar_subquery_name",
        "SELECT (SELECT name FROM citizens LIMIT 1) AS n, COUNT(DISTINCT person_id) FROM citizens",
        "deny",
    ),
    reject(
        "scalar_subquery_top_income",
        "SELECT district, COUNT(DISTINCT person_id), (SELECT income FROM citizens ORDER BY income DESC "
        "LIMIT 1) "
        "AS top FROM citizens GROUP BY district",
        "aggregate_col",
        "subquery",
    ),
    reject(
        "correlated_subquery_national_id",
        "SELECT district, COUNT(DISTINCT person_id), (SELECT national_id FROM citizens c2 "
        "WHERE c2.district = c.district LIMIT 1) FROM citizens c GROUP BY district",
        "deny",
    ),
    reject(
        "nested_cte_raw_cost",
        "WITH a AS (SELECT cost FROM visits), b AS (SELECT cost FROM a) SELECT cost FROM b",
        "aggregate_col",
        "raw_output",
    ),
    reject(
        "exists_on_name",
        "SELECT district, COUNT(DISTINCT person_id) FROM citizens c WHERE EXISTS "
        "(SELECT 1 FROM citizens d WHERE d.name = 'Zebulon Quarrington') GROUP BY district",
        "deny",
    ),
    reject(
        "in_subquery_raw_income",
        "SELECT district, COUNT(DISTINCT person_id) FROM citizens WHERE income IN "
        "(SELECT income FROM citizens WHERE income > 100000) GROUP BY district",
        "aggregate_col",
    ),
    safe(
        "subquery_aggregate_passthrough",
        "SELECT s.total FROM (SELECT district, SUM(income) AS total FROM citizens GROUP BY district) s",
        extra=_totals_of_large_districts,
    ),
    safe("constant_only", "SELECT 42 AS answer", keys=(), oracle=lambda fx: {(): 0}),
    safe(
        "constant_with_aggregate_of_nobody",
        "SELECT 42 AS answer, COUNT(DISTINCT person_id) AS n FROM citizens WHERE district = 'Nowhere'",
        keys=(),
        oracle=lambda fx: {(): 0},
    ),
]

GROUPING: list[Attack] = [
    reject("group_person_id", "SELECT person_id, COUNT(*) FROM visits GROUP BY person_id", "join_key"),
    reject("group_national_id", "SELECT national_id, SUM(income) FROM citizens GROUP BY national_id", "deny"),
    reject(
        "group_case_national_id",
        f"SELECT CASE WHEN national_id = '{NID}' THEN 'target' ELSE 'rest' END AS g, SUM(income) "
        "FROM citizens GROUP BY g",
        "deny",
    ),
    reject(
        "group_case_person_id",
        f"SELECT CASE WHEN person_id = '{PID}' THEN 'target' ELSE 'rest' END AS g, SUM(income) "
        "FROM citizens GROUP BY 1",
        "join_key",
    ),
    reject(
        "group_length_person_id",
        "SELECT LENGTH(person_id) AS l, COUNT(*) FROM citizens GROUP BY l",
        "join_key",
    ),
    reject(
        "group_hash_person_id",
        "SELECT HASH(person_id) % 1000 AS b, COUNT(*) FROM citizens GROUP BY b",
        "join_key",
        "aggregate_fn",
    ),
    reject(
        "group_person_id_prefix",
        "SELECT SUBSTR(person_id, 1, 7) AS p, SUM(income) FROM citizens GROUP BY p",
        "join_key",
    ),
    reject(
        "group_unit_comparison",
        "SELECT person_id > 'P5' AS half, COUNT(*) FROM citizens GROUP BY half",
        "join_key",
    ),
    reject(
        "group_income",
        "SELECT income, COUNT(DISTINCT person_id) FROM citizens GROUP BY income",
        "aggregate_col",
    ),
    reject(
        "group_round_income",
        "SELECT ROUND(income, -4) AS band, COUNT(DISTINCT person_id) FROM citizens GROUP BY band",
        "aggregate_col",
    ),
    reject(
        "group_case_income",
        "SELECT CASE WHEN income > 1000000 THEN 'rich' ELSE 'other' END AS g, SUM(income) FROM citizens "
        "GROUP BY g",
        "aggregate_col",
    ),
    reject("group_cost", "SELECT cost, COUNT(*) FROM visits GROUP BY cost", "aggregate_col"),
    reject(
        "group_diagnosis",
        "SELECT diagnosis, COUNT(DISTINCT person_id) FROM visits GROUP BY diagnosis",
        "filter",
    ),
    reject(
        "group_case_diagnosis",
        f"SELECT CASE WHEN diagnosis = '{RARE_DIAGNOSIS}' THEN 'x' END AS g, COUNT(DISTINCT person_id) "
        "FROM visits GROUP BY g",
        "filter",
    ),
    reject("group_visit_id", "SELECT visit_id, SUM(cost) FROM visits GROUP BY visit_id", "deny"),
    reject(
        "group_email_domain",
        "SELECT SPLIT_PART(email, '@', 2) AS d, COUNT(*) FROM citizens GROUP BY d",
        "deny",
    ),
    reject("group_all_national_id", "SELECT national_id, COUNT(*) FROM citizens GROUP BY ALL", "deny"),
    safe(
        "group_rare_sex",
        "SELECT district, sex, SUM(income) AS s FROM citizens GROUP BY district, sex",
        keys=("district", "sex"),
        oracle=units_oracle(citizens_seen, ["district", "sex"]),
    ),
    safe(
        "group_tiny_districts",
        "SELECT district, COUNT(DISTINCT person_id) AS n, AVG(income) AS a FROM citizens GROUP BY district",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
    safe(
        "group_isle_facility",
        "SELECT facility, COUNT(*) AS n FROM visits GROUP BY facility",
        keys=("facility",),
        oracle=BY_FACILITY,
    ),
    safe(
        "group_masked_phone",
        "SELECT phone, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY phone",
        keys=("phone",),
        oracle=units_oracle(citizens_seen, ["phone"]),
    ),
    safe(
        "group_keyed_hash_household",
        "SELECT household_id, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY household_id",
        keys=("household_id",),
        oracle=units_oracle(citizens_seen, ["household_id"]),
    ),
    safe(
        "group_near_unique_combination",
        "SELECT district, sex, birth_date, postcode, COUNT(DISTINCT person_id) AS n, SUM(income) AS s "
        "FROM citizens GROUP BY ALL",
        keys=("district", "sex", "birth_date", "postcode"),
        oracle=units_oracle(citizens_seen, ["district", "sex", "birth_date", "postcode"]),
    ),
    safe(
        "group_month_of_year_masked_birth",
        "SELECT month(birth_date) AS mo, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY mo",
        extra=at_most_one_value("mo"),
    ),
    safe(
        "group_strftime_masked_birth",
        "SELECT strftime(birth_date, '%m') AS mo, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY mo",
        extra=at_most_one_value("mo"),
    ),
    safe(
        "group_day_masked_visit_date",
        "SELECT day(visit_date) AS d, COUNT(DISTINCT person_id) AS n FROM visits GROUP BY d",
        extra=at_most_one_value("d"),
    ),
    safe(
        "group_substr_masked_phone",
        "SELECT SUBSTR(phone, 6, 2) AS d, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY d",
        extra=at_most_one_value("d"),
    ),
    safe(
        "group_substr_masked_postcode",
        "SELECT SUBSTR(postcode, 4, 2) AS s, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY s",
        extra=at_most_one_value("s"),
    ),
]

ALL: list[Attack] = AGGREGATES + WINDOWS + SET_OPERATIONS + SUBQUERIES + GROUPING


def test_case_ids_are_unique() -> None:
    ids = [a.id for a in ALL]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("attack", ALL, ids=lambda a: a.id)
def test_attack(attack: Attack) -> None:
    assert_attack(attack)
