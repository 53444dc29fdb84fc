"""Attacks that try to get a person's value out through filtering, literals on the privacy unit, row-count
padding, FILTER clauses, ordering, error messages and differencing (margins, HAVING, relabelled unions),
plus the output layer on its own. Judged like ``test_adversarial.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

import policies
from tests.policies.adversarial_fixture import (
    MIN_UNITS,
    RARE_DIAGNOSIS,
    RARE_DIAGNOSIS_3,
    SCOPE_YAML,
    TINY_DISTRICT,
    Attack,
    assert_attack,
    assert_no_leak,
    build_catalog,
    build_fixture,
    build_scope,
    citizens_seen,
    execute_prepared,
    joined_seen,
    min_units_oracle,
    never_value,
    normalise_key,
    reject,
    released_nothing,
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


FILTERING: list[Attack] = [
    reject(
        "where_like_name",
        "SELECT district, COUNT(DISTINCT person_id) FROM citizens WHERE name LIKE 'Zeb%' GROUP BY district",
        "deny",
    ),
    reject(
        "where_regexp_national_id",
        "SELECT COUNT(DISTINCT person_id) FROM citizens WHERE regexp_matches(national_id, '^1')",
        "deny",
    ),
    reject(
        "where_substr_national_id",
        "SELECT COUNT(DISTINCT person_id) FROM citizens WHERE SUBSTR(national_id, 1, 1) = '1'",
        "deny",
    ),
    reject(
        "where_length_name", "SELECT COUNT(DISTINCT person_id) FROM citizens WHERE LENGTH(name) > 12", "deny"
    ),
    reject(
        "where_email_like",
        "SELECT COUNT(DISTINCT person_id) FROM citizens WHERE email LIKE '%1@example.org'",
        "deny",
    ),
    reject(
        "where_glob_name", "SELECT COUNT(DISTINCT person_id) FROM citizens WHERE name GLOB '*Quarr*'", "deny"
    ),
    reject(
        "where_starts_with_national_id",
        "SELECT COUNT(DISTINCT person_id) FROM citizens WHERE starts_with(national_id, '2')",
        "deny",
    ),
    reject(
        "where_contains_name",
        "SELECT COUNT(DISTINCT person_id) FROM citizens WHERE contains(name, 'Quarr')",
        "deny",
    ),
    reject(
        "where_levenshtein_name",
        "SELECT COUNT(DISTINCT person_id) FROM citizens WHERE levenshtein(name, 'Zebulon Quarrington') < 3",
        "deny",
    ),
    reject(
        "where_similar_to_name",
        "SELECT COUNT(DISTINCT person_id) FROM citizens WHERE name SIMILAR TO 'Z.*'",
        "deny",
    ),
    reject(
        "where_income_gt",
        "SELECT district, COUNT(DISTINCT person_id) FROM citizens WHERE income > 1000000 GROUP BY district",
        "aggregate_col",
    ),
    reject(
        "where_income_between",
        "SELECT COUNT(DISTINCT person_id) FROM citizens WHERE income BETWEEN 73219 AND 73220",
        "aggregate_col",
    ),
    reject(
        "where_cost_gt",
        "SELECT facility, COUNT(*) FROM visits WHERE cost > 20000 GROUP BY facility",
        "aggregate_col",
    ),
    reject("where_visit_id", "SELECT COUNT(*) FROM visits WHERE visit_id = 'V97659659'", "deny"),
    safe(
        "where_rare_diagnosis",
        f"SELECT COUNT(DISTINCT person_id) AS n FROM visits WHERE diagnosis = '{RARE_DIAGNOSIS}'",
        oracle=units_oracle(visits_seen, where=lambda d: d["diagnosis"] == RARE_DIAGNOSIS),
    ),
    safe(
        "where_diagnosis_like",
        "SELECT facility, COUNT(DISTINCT person_id) AS n FROM visits WHERE diagnosis LIKE 'B2%' GROUP BY "
        "facility",
        keys=("facility",),
        oracle=units_oracle(visits_seen, ["facility"], where=lambda d: d["diagnosis"].str.startswith("B2")),
    ),
    safe(
        "where_diagnosis_in_list",
        f"SELECT facility, COUNT(*) AS n FROM visits WHERE diagnosis IN ('{RARE_DIAGNOSIS}', "
        f"'{RARE_DIAGNOSIS_3}') "
        "GROUP BY facility",
        keys=("facility",),
        oracle=units_oracle(
            visits_seen, ["facility"], where=lambda d: d["diagnosis"].isin([RARE_DIAGNOSIS, RARE_DIAGNOSIS_3])
        ),
    ),
]

UNIT_LITERALS: list[Attack] = [
    reject("unit_equals_literal", f"SELECT SUM(income) FROM citizens WHERE person_id = '{PID}'", "join_key"),
    reject("unit_like", "SELECT SUM(income) FROM citizens WHERE person_id LIKE 'P50%'", "join_key"),
    reject("unit_range", "SELECT SUM(income) FROM citizens WHERE person_id < 'P1100000'", "join_key"),
    reject(
        "unit_in_list",
        f"SELECT SUM(income) FROM citizens WHERE person_id IN ('{PID}', '{OTHER_PID}')",
        "join_key",
    ),
    reject(
        "unit_between",
        "SELECT SUM(income) FROM citizens WHERE person_id BETWEEN 'P5071650' AND 'P5071660'",
        "join_key",
    ),
    reject(
        "unit_join_on_literal",
        f"SELECT c.district, COUNT(*) FROM citizens c JOIN visits v ON v.person_id = '{PID}' GROUP BY 1",
        "join_key",
    ),
    reject(
        "unit_join_and_literal",
        "SELECT SUM(v.cost) FROM citizens c JOIN visits v ON c.person_id = v.person_id AND c.person_id = "
        f"'{PID}'",
        "join_key",
    ),
    reject(
        "unit_join_inequality",
        "SELECT c.district, COUNT(*) FROM citizens c JOIN visits v ON c.person_id < v.person_id GROUP BY 1",
        "join_key",
    ),
    reject(
        "unit_join_to_non_key",
        "SELECT c.district, COUNT(*) FROM citizens c JOIN visits v ON c.person_id = v.diagnosis GROUP BY 1",
        "join_key",
        "filter",
    ),
    reject(
        "unit_join_on_denied",
        "SELECT COUNT(*) FROM citizens c JOIN visits v ON c.national_id = v.visit_id",
        "deny",
    ),
    reject(
        "unit_equals_national_id",
        "SELECT COUNT(*) FROM citizens WHERE person_id = national_id",
        "deny",
        "join_key",
    ),
    reject(
        "unit_having_min", f"SELECT SUM(income) FROM citizens HAVING MIN(person_id) = '{PID}'", "join_key"
    ),
    reject(
        "unit_filter_clause",
        "SELECT district, COUNT(DISTINCT person_id) FILTER (WHERE person_id > 'P5') FROM citizens GROUP BY 1",
        "join_key",
    ),
    reject(
        "unit_hash_parity",
        "SELECT SUM(income) FROM citizens WHERE HASH(person_id) % 2 = 0",
        "join_key",
        "aggregate_fn",
    ),
    reject("unit_substr", "SELECT SUM(income) FROM citizens WHERE SUBSTR(person_id, 2, 1) = '1'", "join_key"),
    reject(
        "unit_count_not_distinct",
        "SELECT district, COUNT(person_id) FROM citizens GROUP BY district",
        "join_key",
    ),
]

PADDING: list[Attack] = [
    safe(
        "pad_cross_join_self",
        "SELECT c.district, COUNT(*) AS n FROM citizens c CROSS JOIN citizens d "
        f"WHERE c.district IN ('{TINY_DISTRICT}', 'Small Town') GROUP BY c.district",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
    reject(
        "pad_cross_join_range",
        "SELECT c.district, COUNT(*) FROM citizens c CROSS JOIN range(1000) GROUP BY c.district",
        "table_function",
    ),
    reject(
        "pad_generate_series",
        "SELECT c.district, COUNT(*) FROM citizens c, generate_series(1, 1000) g GROUP BY c.district",
        "table_function",
    ),
    reject(
        "pad_unnest_range",
        "SELECT c.district, COUNT(*) FROM citizens c, UNNEST(range(1000)) u GROUP BY c.district",
        "table_function",
    ),
    safe(
        "pad_union_all_copies",
        "SELECT district, COUNT(*) AS n FROM (SELECT district FROM citizens UNION ALL SELECT district FROM "
        "citizens "
        "UNION ALL SELECT district FROM citizens) u GROUP BY district",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
    safe(
        "pad_values_table",
        "SELECT c.district, COUNT(*) AS n FROM citizens c, (VALUES (1), (2), (3), (4), (5), (6)) t(x) "
        "GROUP BY c.district",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
    safe(
        "pad_join_visits_count_rows",
        "SELECT c.district, COUNT(*) AS n FROM citizens c JOIN visits v ON c.person_id = v.person_id "
        "GROUP BY c.district",
        keys=("district",),
        oracle=JOINED_BY_DISTRICT,
    ),
    safe(
        "pad_join_visits_self",
        "SELECT v1.facility, COUNT(*) AS n FROM visits v1 JOIN visits v2 ON v1.person_id = v2.person_id "
        "GROUP BY v1.facility",
        keys=("facility",),
        oracle=BY_FACILITY,
    ),
    safe(
        "pad_join_on_true",
        "SELECT c.district, COUNT(*) AS n FROM citizens c JOIN visits v ON TRUE WHERE c.district = "
        f"'{TINY_DISTRICT}' "
        "GROUP BY c.district",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
    safe(
        "pad_join_on_unrelated_column",
        "SELECT c.district, COUNT(*) AS n FROM citizens c JOIN visits v ON c.district <> v.facility "
        "WHERE c.district = 'Small Town' GROUP BY c.district",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
    safe(
        "pad_join_on_group_column",
        "SELECT district, COUNT(*) AS n FROM (SELECT c.district FROM citizens c JOIN citizens d "
        "ON c.district = d.district) t GROUP BY district",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
    safe(
        "pad_visits_sum_cost",
        "SELECT facility, COUNT(*) AS n, SUM(cost) AS total FROM visits GROUP BY facility",
        keys=("facility",),
        oracle=BY_FACILITY,
    ),
    safe(
        "count_rows_of_rare_diagnosis",
        f"SELECT COUNT(*) AS n FROM visits WHERE diagnosis = '{RARE_DIAGNOSIS}'",
        oracle=units_oracle(visits_seen, where=lambda d: d["diagnosis"] == RARE_DIAGNOSIS),
    ),
    safe(
        "count_visits_of_three_people",
        f"SELECT facility, COUNT(*) AS n FROM visits WHERE diagnosis = '{RARE_DIAGNOSIS_3}' GROUP BY "
        "facility",
        keys=("facility",),
        oracle=units_oracle(visits_seen, ["facility"], where=lambda d: d["diagnosis"] == RARE_DIAGNOSIS_3),
    ),
    safe(
        "count_heavy_user_dates",
        "SELECT c.district, COUNT(v.visit_date) AS n FROM citizens c JOIN visits v ON c.person_id = "
        "v.person_id "
        "GROUP BY c.district",
        keys=("district",),
        oracle=JOINED_BY_DISTRICT,
    ),
    reject("count_visit_id", "SELECT facility, COUNT(visit_id) FROM visits GROUP BY facility", "deny"),
    reject(
        "count_distinct_visit_id", "SELECT facility, COUNT(DISTINCT visit_id) FROM visits GROUP BY 1", "deny"
    ),
]


def cell_neutralised(column: str) -> Callable[[pd.DataFrame], None]:
    """A FILTER cell whose subset has fewer than k people is NULL (the row itself is released)."""

    def _check(table: pd.DataFrame) -> None:
        assert len(table) > 0, "the rows themselves are large and must be released"
        values = [v for v in table[column].tolist() if not pd.isna(v)]
        assert not values, f"a small subset was computed: {values}"

    return _check


_X_IN = units_oracle(citizens_seen, ["district"], where=lambda d: d["sex"] == "X")

FILTER_CLAUSES: list[Attack] = [
    safe(
        "filter_rare_sex",
        "SELECT district, COUNT(DISTINCT person_id) AS n, SUM(income) FILTER (WHERE sex = 'X') AS s "
        "FROM citizens GROUP BY district",
        keys=("district",),
        oracle=BY_DISTRICT,
        extra=cell_neutralised("s"),
    ),
    safe(
        "filter_tiny_district",
        "SELECT sex, COUNT(DISTINCT person_id) AS n, COUNT(DISTINCT person_id) FILTER "
        f"(WHERE district = '{TINY_DISTRICT}') AS isle FROM citizens GROUP BY sex",
        keys=("sex",),
        oracle=units_oracle(citizens_seen, ["sex"]),
        extra=cell_neutralised("isle"),
    ),
    safe(
        "filter_rare_diagnosis",
        "SELECT facility, COUNT(DISTINCT person_id) AS n, SUM(cost) FILTER "
        f"(WHERE diagnosis = '{RARE_DIAGNOSIS}') AS c FROM visits GROUP BY facility",
        keys=("facility",),
        oracle=BY_FACILITY,
        extra=cell_neutralised("c"),
    ),
    reject(
        "filter_on_national_id",
        f"SELECT district, SUM(income) FILTER (WHERE national_id = '{NID}') FROM citizens GROUP BY 1",
        "deny",
    ),
    reject(
        "filter_on_unit", f"SELECT AVG(income) FILTER (WHERE person_id = '{PID}') FROM citizens", "join_key"
    ),
    safe(
        "case_subset_sum",
        "SELECT district, COUNT(DISTINCT person_id) AS n, SUM(CASE WHEN sex = 'X' THEN income ELSE 0 END) "
        "AS s "
        "FROM citizens GROUP BY district",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
    safe(
        "if_subset_sum",
        "SELECT district, COUNT(DISTINCT person_id) AS n, SUM(IF(sex = 'X', income, NULL)) AS s "
        "FROM citizens GROUP BY district",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
    safe(
        "multiply_subset_sum",
        "SELECT district, COUNT(DISTINCT person_id) AS n, SUM(income * CAST(sex = 'X' AS INTEGER)) AS s "
        "FROM citizens GROUP BY district",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
    safe(
        "case_subset_avg",
        "SELECT district, COUNT(DISTINCT person_id) AS n, AVG(CASE WHEN sex = 'X' THEN income END) AS a "
        "FROM citizens GROUP BY district",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
    safe(
        "case_subset_cost",
        f"SELECT facility, COUNT(DISTINCT person_id) AS n, SUM(CASE WHEN diagnosis = '{RARE_DIAGNOSIS}' "
        "THEN cost END) AS c FROM visits GROUP BY facility",
        keys=("facility",),
        oracle=BY_FACILITY,
    ),
]

ORDERING: list[Attack] = [
    reject(
        "order_raw_income_limit_1",
        "SELECT income FROM citizens ORDER BY income DESC LIMIT 1",
        "aggregate_col",
        "raw_output",
    ),
    reject(
        "order_by_national_id",
        "SELECT district, COUNT(DISTINCT person_id) FROM citizens GROUP BY district "
        "ORDER BY ANY_VALUE(national_id)",
        "deny",
    ),
    reject(
        "order_by_max_income",
        "SELECT district, COUNT(DISTINCT person_id) FROM citizens GROUP BY district ORDER BY MAX(income) "
        "DESC "
        "LIMIT 1",
        "aggregate_fn",
    ),
    reject(
        "order_top1_then_sum",
        "SELECT SUM(income) FROM (SELECT income FROM citizens ORDER BY income DESC LIMIT 1) t",
        "aggregate_col",
        "subquery",
    ),
    reject(
        "order_top6_then_sum",
        "SELECT SUM(income) FROM (SELECT income FROM citizens ORDER BY income DESC LIMIT 6) t",
        "aggregate_col",
        "subquery",
    ),
    reject(
        "order_by_unit",
        "SELECT district, COUNT(*) FROM citizens GROUP BY district, person_id ORDER BY person_id",
        "join_key",
    ),
    reject(
        "limit_from_denied_subquery",
        "SELECT district, COUNT(DISTINCT person_id) FROM citizens GROUP BY district "
        "LIMIT (SELECT COUNT(*) FROM citizens WHERE national_id LIKE '1%')",
        "deny",
        "limit",
    ),
    safe(
        "order_sum_limit_1",
        "SELECT district, SUM(income) AS s FROM citizens GROUP BY district ORDER BY s DESC LIMIT 1",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
    safe(
        "order_masked_birth_limit_1_then_sum",
        "SELECT SUM(income) AS s FROM (SELECT income FROM citizens ORDER BY birth_date LIMIT 1) t",
        oracle=lambda fx: {(): 1},
    ),
    safe(
        "limit_3_then_count",
        "SELECT COUNT(DISTINCT person_id) AS n FROM (SELECT person_id FROM citizens LIMIT 3) t",
        oracle=lambda fx: {(): 3},
    ),
    safe(
        "order_ascending_smallest_group",
        "SELECT district, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY district ORDER BY n LIMIT 1",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
]

ERROR_ORACLES: list[Attack] = [
    reject(
        "err_cast_name_to_int", "SELECT district, SUM(CAST(name AS INTEGER)) FROM citizens GROUP BY 1", "deny"
    ),
    reject(
        "err_cast_diagnosis_to_int",
        "SELECT COUNT(DISTINCT person_id) FROM visits WHERE CAST(diagnosis AS INTEGER) > 0",
        "error_oracle",
    ),
    reject(
        "err_cast_diagnosis_to_uuid",
        "SELECT COUNT(DISTINCT person_id) FROM visits WHERE CAST(diagnosis AS UUID) IS NOT NULL",
        "error_oracle",
    ),
    reject(
        "err_double_colon_date",
        "SELECT COUNT(DISTINCT person_id) FROM visits WHERE diagnosis::DATE > DATE '2000-01-02'",
        "error_oracle",
    ),
    reject(
        "err_cast_diagnosis_to_interval",
        "SELECT COUNT(DISTINCT person_id) FROM visits WHERE CAST(diagnosis AS INTERVAL) IS NULL",
        "error_oracle",
    ),
    reject(
        "err_json_extract_diagnosis",
        "SELECT COUNT(DISTINCT person_id) FROM visits WHERE json_extract(diagnosis, '$.a') IS NULL",
        "error_oracle",
    ),
    reject(
        "err_regex_pattern_from_diagnosis",
        "SELECT COUNT(DISTINCT person_id) FROM visits WHERE regexp_matches('x', diagnosis)",
        "error_oracle",
    ),
    reject(
        "err_from_base64_diagnosis",
        "SELECT COUNT(DISTINCT person_id) FROM visits WHERE from_base64(diagnosis) IS NOT NULL",
        "error_oracle",
    ),
    reject(
        "err_strptime_diagnosis",
        "SELECT COUNT(DISTINCT person_id) FROM visits WHERE strptime(diagnosis, '%Y') IS NOT NULL",
        "error_oracle",
    ),
    reject(
        "err_error_function_conditional",
        f"SELECT COUNT(*) FROM visits WHERE CASE WHEN diagnosis = '{RARE_DIAGNOSIS}' THEN error('hit') "
        "ELSE TRUE END",
        "error_oracle",
    ),
    reject("err_error_function_on_name", "SELECT COUNT(*) FROM citizens WHERE error(name)", "deny"),
    reject(
        "err_integer_division_by_zero_conditional",
        f"SELECT COUNT(*) FROM visits WHERE CASE WHEN diagnosis = '{RARE_DIAGNOSIS}' THEN 1 // 0 ELSE 1 END "
        "= 1",
        "error_oracle",
    ),
    reject(
        "err_cast_income_to_small_decimal",
        "SELECT district, SUM(CAST(income AS DECIMAL(2,0))) FROM citizens GROUP BY district",
        "error_oracle",
        "aggregate_col",
    ),
    reject(
        "err_cast_income_to_tinyint",
        "SELECT district, SUM(income::TINYINT) FROM citizens GROUP BY 1",
        "error_oracle",
        "aggregate_col",
    ),
    reject(
        "err_cast_cost_overflow",
        "SELECT facility, SUM(CAST(cost * 1e15 AS INTEGER)) FROM visits GROUP BY 1",
        "error_oracle",
        "aggregate_col",
    ),
    reject(
        "err_cast_unit_to_uuid",
        "SELECT COUNT(*) FROM citizens WHERE CAST(person_id AS UUID) IS NULL",
        "join_key",
        "error_oracle",
    ),
    reject(
        "err_cast_diagnosis_to_date_in_filter",
        "SELECT facility, COUNT(*) FILTER (WHERE CAST(diagnosis AS DATE) IS NULL) FROM visits GROUP BY 1",
        "error_oracle",
    ),
]


def _margins_do_not_reveal_suppressed_cells(table: pd.DataFrame) -> None:
    """ROLLUP/GROUPING SETS: a released subtotal minus its released children must not isolate < k people."""
    seen = citizens_seen(FX)
    sizes = seen.groupby(["district", "sex"])["person_id"].nunique()
    released = {
        (normalise_key(d), normalise_key(x)) for d, x in zip(table["district"], table["sex"], strict=True)
    }
    for district in seen["district"].unique():
        if (district, None) not in released:
            continue
        hidden = [int(n) for (d, x), n in sizes.items() if d == district and (d, x) not in released]
        assert not (0 < sum(hidden) < MIN_UNITS), (
            f"subtotal of {district!r} minus its released rows gives the total of {sum(hidden)} people"
        )


DIFFERENCING: list[Attack] = [
    safe(
        "union_relabel_pads_units",
        "SELECT d, SUM(x) AS s FROM (SELECT district AS d, income AS x FROM citizens WHERE district = "
        f"'{TINY_DISTRICT}' "
        f"UNION ALL SELECT '{TINY_DISTRICT}', 0 FROM visits) t GROUP BY d",
        keys=("d",),
        oracle=BY_DISTRICT,
    ),
    safe(
        "union_relabel_single_person",
        "SELECT d, SUM(x) AS s FROM (SELECT sex AS d, income AS x FROM citizens WHERE sex = 'X' "
        "UNION ALL SELECT 'X', NULL FROM citizens) t GROUP BY d",
        keys=("d",),
        oracle=units_oracle(citizens_seen, ["sex"]),
    ),
    safe(
        "filter_complement_difference",
        "SELECT district, SUM(income) - SUM(income) FILTER (WHERE sex <> 'X') AS x FROM citizens GROUP BY "
        "district",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
    safe(
        "filter_complement_difference_avg",
        "SELECT district, COUNT(DISTINCT person_id) * AVG(income) - SUM(income) FILTER (WHERE sex <> 'X') "
        "AS x "
        "FROM citizens GROUP BY district",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
    safe(
        "rollup_margins",
        "SELECT district, sex, SUM(income) AS s FROM citizens GROUP BY ROLLUP (district, sex)",
        extra=_margins_do_not_reveal_suppressed_cells,
    ),
    safe(
        "grouping_sets_margins",
        "SELECT district, sex, SUM(income) AS s FROM citizens GROUP BY GROUPING SETS ((district, sex), "
        "(district))",
        extra=_margins_do_not_reveal_suppressed_cells,
    ),
    safe(
        "having_filter_membership_oracle",
        "SELECT facility, COUNT(DISTINCT person_id) AS n FROM visits GROUP BY facility "
        f"HAVING COUNT(DISTINCT person_id) FILTER (WHERE diagnosis = '{RARE_DIAGNOSIS}') > 0",
        extra=released_nothing,
    ),
    safe(
        "having_filter_value_oracle",
        "SELECT district, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY district "
        "HAVING SUM(income) FILTER (WHERE sex = 'X') > 73000",
        extra=released_nothing,
    ),
    safe(
        "having_filter_count_oracle",
        "SELECT district, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY district "
        "HAVING COUNT(*) FILTER (WHERE sex = 'X') > 0",
        extra=released_nothing,
    ),
    safe(
        "semi_join_having_oracle",
        "SELECT district, COUNT(DISTINCT person_id) AS n FROM citizens WHERE district IN (SELECT district "
        "FROM "
        "citizens GROUP BY district HAVING SUM(income) FILTER (WHERE sex = 'X') > 73000) GROUP BY district",
        extra=released_nothing,
    ),
    safe(
        "left_join_subset_of_other_alias",
        "SELECT c.district, SUM(d.income) AS s FROM citizens c LEFT JOIN citizens d "
        "ON c.person_id = d.person_id AND d.sex = 'X' GROUP BY c.district",
        keys=("district",),
        oracle=min_units_oracle(BY_DISTRICT, _X_IN),
    ),
    safe(
        "left_join_subset_from_visits",
        "SELECT v.facility, SUM(c.income) AS s FROM visits v LEFT JOIN citizens c "
        "ON c.person_id = v.person_id AND c.sex = 'X' GROUP BY v.facility",
        keys=("facility",),
        oracle=min_units_oracle(BY_FACILITY, lambda fx: {}),
    ),
    safe(
        "order_by_filter_cell_oracle",
        "SELECT district, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY district "
        "ORDER BY COUNT(*) FILTER (WHERE sex = 'X') DESC, district DESC LIMIT 1",
        extra=never_value("district", "Central"),
    ),
    reject(
        "string_agg_plain_column",
        "SELECT district, STRING_AGG(facility, ',') FROM citizens c JOIN visits v "
        "ON c.person_id = v.person_id GROUP BY district",
        "aggregate_fn",
    ),
]

ALL: list[Attack] = (
    FILTERING + UNIT_LITERALS + PADDING + FILTER_CLAUSES + ORDERING + ERROR_ORACLES + DIFFERENCING
)


def test_case_ids_are_unique() -> None:
    ids = [a.id for a in ALL]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("attack", ALL, ids=lambda a: a.id)
def test_attack(attack: Attack) -> None:
    assert_attack(attack)


# The output layer on its own: hand it result frames an attacker would like to see released.


def _released(frame: pd.DataFrame, **disclosure: object) -> pd.DataFrame:
    settings = build_scope().disclosure.model_copy(update=disclosure)
    return policies.check_output(frame, settings).table


def test_output_drops_rows_below_k_in_any_units_column() -> None:
    frame = pd.DataFrame(
        {
            "district": ["a", "b", "c", "d"],
            "s": [1.5, 2.5, 3.5, 4.5],
            "_sbx_units": [MIN_UNITS, MIN_UNITS - 1, 50, 50],
            "_sbx_units_1": [MIN_UNITS, 50, MIN_UNITS - 1, None],
        }
    )
    out = _released(frame)
    assert out["district"].tolist() == ["a"]
    assert [c for c in out.columns if str(c).startswith("_sbx")] == []


def test_output_refuses_a_frame_without_unit_counts() -> None:
    with pytest.raises(policies.PolicyError):
        policies.check_output(pd.DataFrame({"n": [1]}), build_scope().disclosure)


def test_output_report_says_why_rows_were_dropped() -> None:
    frame = pd.DataFrame({"district": ["a", "b"], "n": [40, 2], "_sbx_units": [40, 2]})
    result = policies.check_output(frame, build_scope().disclosure)
    assert result.report.rows_dropped == 1
    assert result.report.small_group_reasons  # auditors see how many and why
    assert result.report.to_dict()["reasons"]  # the operator sees the rule


def test_released_report_does_not_say_whether_a_small_group_existed() -> None:
    """A query that filters a tiny group on a rare attribute yields one suppressed row or none: the
    report released to the operator must read the same either way, or it answers the question."""
    with_one = pd.DataFrame({"district": ["a", "b"], "n": [40, 1], "_sbx_units": [40, 1]})
    without = pd.DataFrame({"district": ["a"], "n": [40], "_sbx_units": [40]})
    disclosure = build_scope().disclosure
    first = policies.check_output(with_one, disclosure)
    second = policies.check_output(without, disclosure)
    assert first.report.to_dict() == second.report.to_dict()
    assert first.report.audit_dict() != second.report.audit_dict()


def test_remainder_row_never_stands_for_a_single_small_group() -> None:
    """With suppression: remainder, one small group alone must not come back as the 'remainder'."""
    scope = policies.load_scope(SCOPE_YAML.replace("suppression: drop", "suppression: remainder"))
    sql = "SELECT sex, SUM(income) AS s, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY sex"
    prepared = policies.prepare(sql, scope, build_catalog())
    raw = execute_prepared(prepared)
    released = policies.check_output(
        raw,
        scope.disclosure,
        additive=prepared.additive_columns,
        # GROUP BY sex over one table: the groups really are disjoint, the most lenient honest setting.
        disjoint_groups=True,
    ).table
    assert_no_leak(released)
    assert len(released) <= 2, f"the single 'X' person came back as a remainder row:\n{released}"
