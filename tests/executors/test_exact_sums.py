"""The thread plan: which queries may run on several threads, and what is rewritten so they give the
same bytes on any number."""

from __future__ import annotations

import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from executors.exact_sums import OneThread, Parallel, plan_threads

SCHEMAS = {
    "t": pa.schema([("g", pa.string()), ("x", pa.float64()), ("n", pa.int64()), ("d", pa.decimal128(10, 2))])
}


def _plan(sql: str) -> Parallel | OneThread:
    return plan_threads(sql, SCHEMAS)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT g, COUNT(*), COUNT(DISTINCT n), MIN(x), MAX(x), SUM(n), AVG(n), SUM(d) FROM t GROUP BY g",
        "SELECT g, n FROM t WHERE x > 1",
        "SELECT SUM(n * 0.5) FROM t",  # an integer times a decimal literal is a DECIMAL in DuckDB
    ],
)
def test_a_query_without_float_sums_runs_on_threads_as_written(sql: str) -> None:
    plan = _plan(sql)
    assert isinstance(plan, Parallel)
    assert "INT128" not in plan.sql


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT g, SUM(x) FROM t GROUP BY g",
        "SELECT AVG(TRY(x)) FILTER (WHERE n > 0) FROM t",
        "SELECT SUM(n / 3) FROM t",
        "SELECT SUM(CAST(n AS DOUBLE) * 2) FROM t",
        "SELECT SUM(CASE WHEN n > 0 THEN x ELSE 0 END) FROM t",
        "SELECT SUM(CAST(n AS UHUGEINT)) FROM t",  # DuckDB sums UHUGEINT as DOUBLEs
        "SELECT SUM(x * CAST(n AS UINTEGER)) FROM t",
    ],
)
def test_a_float_sum_becomes_an_integer_sum_of_limbs(sql: str) -> None:
    plan = _plan(sql)
    assert isinstance(plan, Parallel)
    assert "SUM(CAST(ROUND(" in plan.sql
    assert "AS INT128))" in plan.sql  # sqlglot writes DuckDB's HUGEINT as INT128


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT STDDEV_SAMP(x) FROM t", "STDDEV_SAMP"),
        ("SELECT g, STRING_AGG(g, ',') FROM t GROUP BY g", "GROUP_CONCAT"),
        ("SELECT SUM(x) OVER (PARTITION BY g) FROM t", "window"),
        ("SELECT SUM(DISTINCT x) FROM t", "DISTINCT"),
        ("SELECT SUM(x) FROM t USING SAMPLE 10%", "sampling"),
        ("SELECT g, SUM(n) FROM t GROUP BY g ORDER BY 2 LIMIT 3", "LIMIT under ORDER BY"),
        ("SELECT COUNT(*) FROM (SELECT * FROM t LIMIT 5) AS s", "below the top level"),
        ("SELECT SUM(x) FROM (SELECT CAST(x AS BIGINT) AS x FROM t) AS s", "not known"),
        ("SELECT SUM(fancy(x)) FROM t", "fancy"),
    ],
)
def test_an_order_dependent_query_runs_as_written_on_one_thread(sql: str, reason: str) -> None:
    plan = _plan(sql)
    assert isinstance(plan, OneThread)
    assert reason in plan.reason


def test_a_capped_result_without_order_is_ordered_by_every_column() -> None:
    plan = _plan("SELECT g, COUNT(*) AS n FROM t GROUP BY g LIMIT 101")
    assert isinstance(plan, Parallel)
    assert plan.sql.endswith("ORDER BY ALL LIMIT 101")


def test_a_summed_column_whose_range_allows_it_is_summed_in_one_limb_with_two_as_the_fallback() -> None:
    sql = "SELECT g, SUM(x), AVG(x) FROM t GROUP BY g"
    plan = plan_threads(sql, SCHEMAS, scale_of=lambda column: 80)
    assert isinstance(plan, Parallel)
    assert plan.one_limb
    assert "SUM(CAST(ROUND(" not in plan.sql  # no whole limb: the value times 2**80, checked whole
    assert _distinct_sums(plan.sql) == 1  # AVG(x) shares SUM(x)'s one limb
    fallback = plan_threads(sql, SCHEMAS)  # what the engine runs where one limb overflows
    assert isinstance(fallback, Parallel)
    assert not fallback.one_limb
    assert _distinct_sums(fallback.sql) == 2


def _distinct_sums(sql: str) -> int:
    return len({node.sql() for node in sqlglot.parse_one(sql, dialect="duckdb").find_all(exp.Sum)})


def test_an_expression_or_a_column_without_a_scale_keeps_two_limbs() -> None:
    asked: list[str] = []

    def scale_of(column: str) -> int | None:
        asked.append(column)
        return None

    plan = plan_threads("SELECT SUM(x * 2), SUM(x), SUM(n) FROM t", SCHEMAS, scale_of=scale_of)
    assert isinstance(plan, Parallel)
    assert not plan.one_limb
    assert asked == ["x"]  # asked only for a float column summed as it is
