"""The audit count of groups the k rule removes (``policies.small_groups``): derived from the rewritten
query alone, run on DuckDB beside it, it counts exactly the groups below ``min_units`` that the query's
own conditions let through, whatever ORDER BY, LIMIT, UNION or WITH surround them."""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pandas as pd
import pytest

from policies import prepare
from policies.examples import example_catalog, example_scope
from policies.small_groups import COUNT_COLUMN, small_groups_statement

K = example_scope().disclosure.min_units


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    n = 300
    return pd.DataFrame(
        {
            "person_id": range(1, n + 1),
            "national_id": [f"NID{i:06d}" for i in range(n)],
            "name": [f"Person {i}" for i in range(n)],
            "phone": [f"0170{i:07d}" for i in range(n)],
            "birth_date": [pd.Timestamp(1950 + i % 50, 1 + i % 12, 2 + i % 27).date() for i in range(n)],
            "sex": ["F" if i % 2 else "M" for i in range(n)],
            "district": [
                ["North", "South", "Military Zone", "Tiny"][
                    0 if i < 140 else 1 if i < 280 else 2 if i < 297 else 3
                ]
                for i in range(n)
            ],
            "income": [1000 * (i % 40) + 17 for i in range(n)],
            "diagnosis": [["J10", "I10", "E11"][i % 3] for i in range(n)],
        }
    )


@pytest.fixture(scope="module")
def con(frame: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.register("citizens_df", frame)
    connection.execute("CREATE TABLE citizens AS SELECT * FROM citizens_df")
    return connection


def below_k(frame: pd.DataFrame, *keys: str, where: Callable[[pd.DataFrame], pd.Series] | None = None) -> int:
    """The truth: groups of the scope's rows (its row filter applied) with 1..k-1 distinct people."""
    rows = frame[frame["district"] != "Military Zone"]
    if where is not None:
        rows = rows[where(rows)]
    if not keys:
        return int(0 < rows["person_id"].nunique() < K)
    sizes = rows.groupby(list(keys))["person_id"].nunique()
    return int((sizes < K).sum())


def counted(con: duckdb.DuckDBPyConnection, sql: str, suppression: str = "drop") -> int:
    scope = example_scope()
    if suppression != "drop":
        scope = scope.model_copy(
            update={"disclosure": scope.disclosure.model_copy(update={"suppression": suppression})}
        )
    statement = small_groups_statement(prepare(sql, scope, example_catalog()).sql)
    assert statement is not None
    rows = con.sql(statement).fetchall()
    assert len(rows) == 1
    return int(rows[0][0])


def test_a_breakdown_counts_the_groups_below_k_that_ordering_and_limit_never_saw(
    con: duckdb.DuckDBPyConnection, frame: pd.DataFrame
) -> None:
    sql = "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district ORDER BY n LIMIT 1"
    assert below_k(frame, "district") >= 1  # the fixture has a district below k
    assert counted(con, sql) == below_k(frame, "district")


def test_two_keys_count_every_small_cell(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> None:
    sql = "SELECT district, sex, AVG(income) AS a FROM citizens GROUP BY district, sex"
    assert below_k(frame, "district", "sex") >= 2
    assert counted(con, sql) == below_k(frame, "district", "sex")


def test_every_branch_of_a_union_and_a_cte_is_counted(
    con: duckdb.DuckDBPyConnection, frame: pd.DataFrame
) -> None:
    union = (
        "SELECT sex AS k, COUNT(*) AS n FROM citizens GROUP BY sex "
        "UNION ALL SELECT district, COUNT(*) FROM citizens GROUP BY district"
    )
    assert counted(con, union) == below_k(frame, "sex") + below_k(frame, "district")
    cte = (
        "WITH c AS (SELECT district, person_id FROM citizens) "
        "SELECT district, COUNT(*) AS n FROM c GROUP BY district"
    )
    assert counted(con, cte) == below_k(frame, "district")


def test_groups_the_query_itself_removes_are_not_counted(
    con: duckdb.DuckDBPyConnection, frame: pd.DataFrame
) -> None:
    having = "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district HAVING COUNT(*) > 5"
    assert counted(con, having) == 0 < below_k(frame, "district")
    where = "SELECT district, COUNT(*) AS n FROM citizens WHERE district = 'North' GROUP BY district"
    assert counted(con, where) == below_k(frame, "district", where=lambda r: r["district"] == "North") == 0


def test_a_total_below_k_counts_as_one_group(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> None:
    sql = "SELECT COUNT(*) AS n FROM citizens WHERE district = 'Tiny'"
    assert counted(con, sql) == below_k(frame, where=lambda r: r["district"] == "Tiny") == 1


def test_a_remainder_counts_the_merged_groups_not_itself(
    con: duckdb.DuckDBPyConnection, frame: pd.DataFrame
) -> None:
    sql = "SELECT district, sex, COUNT(*) AS n FROM citizens GROUP BY district, sex"
    assert counted(con, sql, suppression="remainder") == below_k(frame, "district", "sex")


def test_the_statement_returns_one_count_and_reads_no_group_key(con: duckdb.DuckDBPyConnection) -> None:
    prepared = prepare(
        "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district", example_scope(), example_catalog()
    )
    statement = small_groups_statement(prepared.sql)
    assert statement is not None
    result = con.sql(statement)
    assert result.columns == [COUNT_COLUMN]
    assert len(result.fetchall()) == 1


def test_nothing_to_count_without_a_k_condition() -> None:
    assert small_groups_statement("SELECT COUNT(*) AS n FROM citizens") is None
    assert small_groups_statement("this is not sql (") is None
