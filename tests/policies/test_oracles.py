"""Oracles that answer through a job's state rather than its rows: runtime errors that fire only for
some rows, uncorrelated subqueries that gate the whole result, and queries that crash the analysis.

Each case asks "does the one resident of a tiny district have diagnosis D?" twice, with a D the
resident has and one they do not, and asserts that the two answers are indistinguishable (both run,
or both are refused), or that the construct is refused outright.
"""

from __future__ import annotations

import time

import pandas as pd
import pytest

import policies
from policies import pipeline
from tests.policies.adversarial_fixture import (
    TINY_DISTRICT,
    build_fixture,
    check,
    execute_prepared,
    prepare,
    run_rewritten,
)


def _diagnoses() -> tuple[str, str]:
    """A diagnosis exactly one tiny-district resident has, and one no tiny-district resident has."""
    fx = build_fixture()
    joined = fx.visits.merge(fx.citizens, on="person_id")
    tiny = joined[joined["district"] == TINY_DISTRICT].groupby("diagnosis")["person_id"].nunique()
    present = sorted(str(d) for d, n in tiny.items() if n == 1)
    absent = sorted(set(map(str, joined["diagnosis"])) - set(map(str, tiny.index)))
    assert present
    assert absent
    return present[0], absent[0]


def _both(template: str) -> tuple[str, str]:
    present, absent = _diagnoses()
    return template.format(tiny=TINY_DISTRICT, d=present), template.format(tiny=TINY_DISTRICT, d=absent)


def _runs(sql: str) -> pd.DataFrame:
    """The raw result of the rewritten query: it must run, whatever the data."""
    return execute_prepared(prepare(sql))


# -- 1. runtime errors --------------------------------------------------------------------------

RAISERS = [
    "CAST('x' AS INTEGER)",
    "CAST(9223372036854775807 AS BIGINT) + 1",
    "CAST(1e400 AS DOUBLE)::INTEGER",
    "1 // (length(v.facility) - length(v.facility))",
    "abs(CAST(-9223372036854775808 AS BIGINT))",
]


@pytest.mark.parametrize("raiser", RAISERS)
def test_a_raising_where_condition_runs_either_way(raiser: str) -> None:
    yes, no = _both(
        "SELECT c.sex, COUNT(*) AS n FROM visits v JOIN citizens c ON v.person_id = c.person_id "
        "WHERE CASE WHEN c.district = '{tiny}' AND v.diagnosis = '{d}' THEN " + raiser + " ELSE 1 END = 1 "
        "GROUP BY c.sex"
    )
    assert "TRY(" in prepare(yes).sql
    assert len(_runs(yes)) == len(_runs(no)) >= 2


@pytest.mark.parametrize("raiser", RAISERS[:3])
def test_raising_join_filter_and_aggregate_arguments_run_either_way(raiser: str) -> None:
    for template in (
        "SELECT c.sex, COUNT(*) AS n FROM visits v JOIN citizens c ON v.person_id = c.person_id "
        "AND CASE WHEN c.district = '{tiny}' AND v.diagnosis = '{d}' THEN " + raiser + " ELSE 1 END = 1 "
        "GROUP BY c.sex",
        "SELECT c.sex, COUNT(*) FILTER (WHERE CASE WHEN c.district = '{tiny}' AND v.diagnosis = '{d}' "
        "THEN " + raiser + " ELSE 1 END = 1) AS n FROM visits v JOIN citizens c ON v.person_id = c.person_id "
        "GROUP BY c.sex",
    ):
        yes, no = _both(template)
        assert len(_runs(yes)) == len(_runs(no)) >= 2


@pytest.mark.parametrize("raiser", RAISERS[:3])
def test_raising_group_keys_and_plain_aggregate_arguments_run(raiser: str) -> None:
    for sql in (
        f"SELECT CASE WHEN district = '{TINY_DISTRICT}' THEN {raiser} ELSE 1 END AS k, COUNT(*) AS n "
        "FROM citizens GROUP BY CASE WHEN district = "
        f"'{TINY_DISTRICT}' THEN {raiser} ELSE 1 END",
        f"SELECT sex, SUM(CASE WHEN facility = 'Isle Clinic' THEN {raiser} ELSE 1 END) AS s "
        "FROM visits v JOIN citizens c ON v.person_id = c.person_id GROUP BY sex",
        f"WITH t AS (SELECT person_id, CASE WHEN district = '{TINY_DISTRICT}' THEN {raiser} ELSE 1 END AS k "
        "FROM citizens) SELECT k, COUNT(DISTINCT person_id) AS n FROM t GROUP BY k",
    ):
        assert len(_runs(sql)) >= 1


def test_division_by_a_zero_count_above_aggregates_is_null_not_an_error() -> None:
    sql = (
        "SELECT c.sex, COUNT(*) // (COUNT(*) - COUNT(*)) AS r, COUNT(*) % (COUNT(*) - COUNT(*)) AS m, "
        "SUM(v.cost) / (COUNT(*) - COUNT(*)) AS q FROM visits v JOIN citizens c ON v.person_id = c.person_id "
        "GROUP BY c.sex"
    )
    out = _runs(sql)
    assert len(out) >= 2
    for column in ("r", "m", "q"):
        assert out[column].isna().all(), column
    # Dividing by a filtered count is a ratio of aggregates: a zero (an empty or neutralised subset)
    # gives NULL in that cell, never an error.
    ratio = _runs(
        "SELECT sex, COUNT(*) // COUNT(*) FILTER (WHERE district = 'No Such Place') AS r, "
        "SUM(income) / SUM(income) FILTER (WHERE district = 'No Such Place') AS q FROM citizens GROUP BY sex"
    )
    assert len(ratio) >= 2
    assert ratio["r"].isna().all()
    assert ratio["q"].isna().all()


def test_overflow_above_aggregates_saturates_instead_of_raising() -> None:
    sql = (
        "SELECT sex, COUNT(*) * 9223372036854775807 AS big FROM citizens GROUP BY sex "
        "HAVING COUNT(*) * 9223372036854775807 > 0"
    )
    out = _runs(sql)
    assert len(out) >= 2
    assert (out["big"] > 9.2e18).all()


def test_wrapping_keeps_legitimate_results() -> None:
    sql = "SELECT year(birth_date) + 0 AS y, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY y"
    released = run_rewritten(prepare(sql))
    fx = build_fixture()
    seen = fx.citizens[fx.citizens["district"] != "Military Zone"]
    counts = seen.groupby(pd.to_datetime(seen["birth_date"]).dt.year)["person_id"].nunique()
    expected = {int(y): int(n) for y, n in counts.items() if n >= 5}
    assert {int(y): int(n) for y, n in zip(released["y"], released["n"], strict=True)} == expected


@pytest.mark.parametrize(
    "expression",
    [
        "CAST(COUNT(*) AS INTEGER)",
        "CAST(SUM(income) AS BIGINT)",
        "UPPER(CAST(COUNT(*) AS VARCHAR))",
    ],
)
def test_what_could_still_raise_above_aggregates_is_refused(expression: str) -> None:
    report = check(f"SELECT sex, {expression} AS x FROM citizens GROUP BY sex")
    assert not report.allowed
    assert "uncontained_error" in {f.rule for f in report.findings}


def test_safe_casts_above_aggregates_are_allowed() -> None:
    assert check("SELECT sex, CAST(COUNT(*) AS DOUBLE) AS x FROM citizens GROUP BY sex").allowed


def test_a_user_written_try_is_allowed_and_hides_nothing_from_the_checks() -> None:
    assert check("SELECT TRY(sex) AS s, COUNT(*) AS n FROM citizens GROUP BY TRY(sex)").allowed
    inside = check(
        "SELECT sex, COUNT(*) AS n FROM citizens WHERE TRY(CAST(income AS VARCHAR) = '5') GROUP BY sex"
    )
    assert "cast_on_protected" in {f.rule for f in inside.findings}
    raw = check("SELECT TRY(name) AS s, COUNT(*) AS n FROM citizens GROUP BY TRY(name)")
    assert "column_denied" in {f.rule for f in raw.findings}


# -- 2. uncorrelated subquery gates ---------------------------------------------------------------

GATES = {
    "exists": "EXISTS (SELECT 1 FROM visits v JOIN citizens c2 ON v.person_id = c2.person_id "
    "WHERE c2.district = '{tiny}' AND v.diagnosis = '{d}')",
    "not_exists": "NOT EXISTS (SELECT 1 FROM visits v JOIN citizens c2 ON v.person_id = c2.person_id "
    "WHERE c2.district = '{tiny}' AND v.diagnosis = '{d}')",
    "constant_in": "'x' IN (SELECT 'x' FROM visits v JOIN citizens c2 ON v.person_id = c2.person_id "
    "WHERE c2.district = '{tiny}' AND v.diagnosis = '{d}')",
    "group_column_in": "c.district IN (SELECT c2.district FROM visits v JOIN citizens c2 "
    "ON v.person_id = c2.person_id WHERE c2.district = '{tiny}' AND v.diagnosis = '{d}')",
    "expression_on_unit_in": "c.person_id + 0 IN "
    "(SELECT v.person_id FROM visits v WHERE v.diagnosis = '{d}')",
    "unit_in_two_columns": "c.person_id IN (SELECT v.person_id, v.person_id FROM visits v)",
}
EXPECTED_RULE = {
    "exists": "exists_subquery",
    "not_exists": "exists_subquery",
    "constant_in": "in_subquery",
    "group_column_in": "in_subquery",
    "expression_on_unit_in": "in_subquery",
}


@pytest.mark.parametrize("gate", sorted(GATES))
def test_a_subquery_gate_is_refused_either_way(gate: str) -> None:
    yes, no = _both("SELECT c.sex, COUNT(*) AS n FROM citizens c WHERE " + GATES[gate] + " GROUP BY c.sex")
    for sql in (yes, no):
        report = check(sql)
        assert not report.allowed
        if gate in EXPECTED_RULE:
            assert EXPECTED_RULE[gate] in {f.rule for f in report.findings}, report.findings
        with pytest.raises(policies.PolicyViolation):
            prepare(sql)


def test_exists_findings_say_what_to_write_instead() -> None:
    report = check(
        "SELECT sex, COUNT(*) AS n FROM citizens c WHERE EXISTS (SELECT 1 FROM visits v "
        "WHERE v.person_id = c.person_id) GROUP BY sex"
    )
    messages = [f.message for f in report.findings if f.rule == "exists_subquery"]
    assert messages
    assert "IN (SELECT" in messages[0]
    assert "join" in messages[0].lower()


def test_a_semi_join_on_the_unit_is_allowed_and_counted() -> None:
    present, _ = _diagnoses()
    sql = (
        "SELECT c.sex, COUNT(DISTINCT c.person_id) AS n FROM citizens c WHERE c.person_id IN "
        f"(SELECT v.person_id FROM visits v WHERE v.diagnosis = '{present}') GROUP BY c.sex"
    )
    assert check(sql).allowed
    raw = _runs(sql)
    # Every row is backed by the people the subquery selected, not by the whole table.
    assert (raw["_sbx_units"] == raw["n"]).all()


# -- 3. deep and huge queries ---------------------------------------------------------------------

DEEP = {
    "sum_chain": "SELECT sex, COUNT(*) AS n FROM citizens WHERE "
    + " + ".join(["1"] * 700)
    + " > 0 GROUP BY sex",
    "nested_functions": "SELECT " + "abs(" * 700 + "1" + ")" * 700 + " AS x, COUNT(*) AS n FROM citizens",
    "nested_subqueries": "SELECT sex, COUNT(*) AS n FROM "
    + "(SELECT * FROM " * 700
    + "citizens"
    + ") t" * 700
    + " GROUP BY sex",
    "nested_case": "SELECT sex, COUNT(*) AS n FROM citizens WHERE "
    + "CASE WHEN sex = 'F' THEN " * 700
    + "1"
    + " END" * 700
    + " = 1 GROUP BY sex",
    "and_chain": "SELECT sex, COUNT(*) AS n FROM citizens WHERE "
    + " AND ".join(["sex = 'F'"] * 5_000)
    + " GROUP BY sex",
}


@pytest.mark.parametrize("shape", sorted(DEEP))
def test_deep_or_huge_queries_are_refused_quickly_not_crashes(shape: str) -> None:
    started = time.perf_counter()
    report = check(DEEP[shape])
    assert time.perf_counter() - started < 1.0
    assert not report.allowed
    assert {f.rule for f in report.findings} <= {"query_too_complex", "parse_error"}
    with pytest.raises(policies.PolicyViolation):
        prepare(DEEP[shape])


def test_the_limits_leave_room_for_wide_legitimate_queries() -> None:
    columns = ", ".join(f"SUM(income) FILTER (WHERE district = 'd{i}') AS s{i}" for i in range(30))
    ors = " OR ".join(f"district = 'd{i}'" for i in range(40))
    sql = f"SELECT sex, {columns} FROM citizens WHERE {ors} GROUP BY sex"
    assert "query_too_complex" not in {f.rule for f in check(sql).findings}
    values = ", ".join(f"'d{i}'" for i in range(3_000))
    listed = f"SELECT sex, COUNT(*) AS n FROM citizens WHERE district IN ({values}) GROUP BY sex"
    assert check(listed).allowed


@pytest.mark.parametrize("error", [RecursionError("deep"), AttributeError("sqlglot bug")])
def test_unexpected_engine_errors_are_refusals(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(pipeline, "Analysis", explode)
    sql = "SELECT sex, COUNT(*) AS n FROM citizens GROUP BY sex"
    report = check(sql)
    assert not report.allowed
    assert [f.rule for f in report.findings] == ["query_too_complex"]
    with pytest.raises(policies.PolicyViolation):
        prepare(sql)
