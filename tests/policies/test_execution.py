"""Rewritten SQL runs on DuckDB; meaning-preserving passes keep the visible result; masks and row
filters hold at every reference."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest
from sqlglot import exp

from policies import Scope, check_output, prepare
from policies.examples import example_catalog, example_context, example_scope
from policies.passes.add_unit_counts import add_unit_counts
from policies.passes.cap_rows import cap_rows
from policies.passes.guard_arithmetic import guard_arithmetic
from policies.passes.neutralise_small_subsets import neutralise_small_subsets
from policies.passes.suppress_small_rows import suppress_small_rows


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    n = 300
    frame = pd.DataFrame(
        {
            "person_id": range(1, n + 1),
            "national_id": [f"NID{i:06d}" for i in range(n)],
            "name": [f"Person {i}" for i in range(n)],
            "phone": [f"0170{i:07d}" for i in range(n)],
            "birth_date": [dt.date(1950 + i % 50, 1 + i % 12, 2 + i % 27) for i in range(n)],
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
    connection = duckdb.connect()
    connection.register("citizens_df", frame)
    connection.execute("CREATE TABLE citizens AS SELECT * FROM citizens_df")
    return connection


MEANING = [
    "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district",
    "SELECT sex, SUM(income * 2) AS s FROM citizens GROUP BY sex",
    "WITH c AS (SELECT district, person_id FROM citizens) "
    "SELECT district, COUNT(*) AS n FROM c GROUP BY district",
    "SELECT district, COUNT(*) FILTER (WHERE sex = 'F') AS women FROM citizens "
    "WHERE district IN ('North', 'South') GROUP BY district",
    "SELECT sex AS k, COUNT(*) AS n FROM citizens GROUP BY sex "
    "UNION ALL SELECT district, COUNT(*) FROM citizens GROUP BY district",
    "SELECT district, AVG(CASE WHEN sex = 'F' THEN 1.0 ELSE 0.0 END) AS rate FROM citizens "
    "WHERE district IN ('North', 'South') GROUP BY district",
    "SELECT district, SUM(income) FILTER (WHERE diagnosis = 'J10') / SUM(income) AS share "
    "FROM citizens WHERE district IN ('North', 'South') GROUP BY district",
    "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district ORDER BY n DESC, district LIMIT 2",
]


@pytest.mark.parametrize("sql", MEANING)
def test_meaning_preserving_passes_keep_visible_result(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    ctx, tree, analysis = example_context(sql)
    before = con.execute(tree.sql(dialect="duckdb")).df()
    for rewrite in (guard_arithmetic, add_unit_counts, cap_rows):
        tree = rewrite(tree, analysis, ctx)
    after = con.execute(tree.sql(dialect="duckdb")).df()
    assert "_sbx_units" in after.columns
    visible = after[[c for c in after.columns if not c.startswith("_sbx_")]]
    pd.testing.assert_frame_equal(_sorted(before), _sorted(visible), check_dtype=False)


@pytest.mark.parametrize("sql", MEANING)
def test_suppression_in_the_query_equals_dropping_small_rows_after_it(
    con: duckdb.DuckDBPyConnection, sql: str
) -> None:
    """The k rule inside the query releases exactly the rows at or above k (ORDER BY and LIMIT then
    apply to those), and neutralising conditions changes no cell whose subsets are all empty or large
    (every subset of these queries is)."""
    ctx, tree, analysis = example_context(sql)
    _, unlimited, unlimited_analysis = example_context(sql)
    unlimited.set("limit", None)
    unlimited.set("order", None)
    before = con.execute(add_unit_counts(unlimited, unlimited_analysis, ctx).sql(dialect="duckdb")).df()
    kept = before[before["_sbx_units"] >= ctx.disclosure.min_units]
    kept = kept[[c for c in kept.columns if not c.startswith("_sbx_")]]
    order = tree.args.get("order")
    limit = tree.args.get("limit")
    for rewrite in (add_unit_counts, neutralise_small_subsets, suppress_small_rows, cap_rows):
        tree = rewrite(tree, analysis, ctx)
    after = con.execute(tree.sql(dialect="duckdb")).df()
    visible = after[[c for c in after.columns if not c.startswith("_sbx_")]]
    assert (after["_sbx_units"] >= ctx.disclosure.min_units).all()
    if order is None or limit is None:
        pd.testing.assert_frame_equal(_sorted(kept), _sorted(visible), check_dtype=False)
    else:
        assert len(visible) == min(len(kept), int(limit.expression.name))
        assert set(map(tuple, visible.itertuples(index=False))) <= set(
            map(tuple, kept.itertuples(index=False))
        )


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.columns = [str(i) for i in range(len(frame.columns))]
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_row_filter_holds_inside_ctes_and_masks_everywhere(con: duckdb.DuckDBPyConnection) -> None:
    sql = (
        "WITH c AS (SELECT district, birth_date, phone FROM citizens) "
        "SELECT district, birth_date, phone, COUNT(*) AS n FROM c GROUP BY ALL"
    )
    prepared = prepare(sql, _scope_with_k(1), example_catalog())
    raw = con.execute(prepared.sql).df()
    assert len(raw) > 0
    assert "Military Zone" not in set(raw["district"])
    assert all(str(v).startswith("***") for v in raw["phone"])
    assert {pd.Timestamp(v).month for v in raw["birth_date"]} == {1}
    assert {pd.Timestamp(v).day for v in raw["birth_date"]} == {1}


def test_k_threshold_end_to_end(con: duckdb.DuckDBPyConnection) -> None:
    prepared = prepare(
        "SELECT district, COUNT(*) AS n, AVG(income) AS a FROM citizens GROUP BY district",
        example_scope(),
        example_catalog(),
    )
    released = check_output(
        con.execute(prepared.sql).df(), example_scope().disclosure, additive=prepared.additive_columns
    )
    assert sorted(released.table["district"]) == ["North", "South"]
    # 'Tiny' has 3 people: the query itself withheld it, so the output check finds nothing to drop.
    assert released.report.rows_dropped == 0
    assert list(released.table.columns) == list(prepared.output_columns)


def test_where_on_masked_column_sees_only_the_mask(con: duckdb.DuckDBPyConnection) -> None:
    prepared = prepare(
        "SELECT COUNT(*) AS n FROM citizens WHERE phone LIKE '0170%'", _scope_with_k(1), example_catalog()
    )
    assert con.execute(prepared.sql).fetchall() == []  # nobody matches the masked phones: no row at all
    everyone = prepare(
        "SELECT COUNT(*) AS n FROM citizens WHERE phone LIKE '***%'", _scope_with_k(1), example_catalog()
    )
    assert con.execute(everyone.sql).fetchall()[0][0] == 283


def _scope_with_k(k: int) -> Scope:
    scope = example_scope()
    return scope.model_copy(update={"disclosure": scope.disclosure.model_copy(update={"min_units": k})})


def test_other_hidden_columns_are_hidden_but_do_not_count_for_k(con: duckdb.DuckDBPyConnection) -> None:
    """A later pass may add its own ``_sbx_`` column to the final SELECTs (a released-cohort digest):
    it is dropped from the output, and only the ``_sbx_units*`` columns decide k."""
    ctx, tree, analysis = example_context("SELECT district, COUNT(*) AS n FROM citizens GROUP BY district")
    tree = add_unit_counts(tree, analysis, ctx)
    tree.append("expressions", exp.alias_(exp.Literal.number(0), "_sbx_cohort", quoted=True))
    tree = suppress_small_rows(tree, analysis, ctx)
    having = tree.args["having"].sql()
    assert "_sbx_cohort" not in having
    assert "0 >=" not in having
    raw = con.execute(cap_rows(tree, analysis, ctx).sql(dialect="duckdb")).df()
    released = check_output(raw, example_scope().disclosure)
    assert sorted(released.table["district"]) == ["Military Zone", "North", "South"]
    assert list(released.table.columns) == ["district", "n"]
