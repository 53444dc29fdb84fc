"""What the cheaper DP rewrite leaves out, and why the result does not change.

* A table with one row per unit (``one_row_per_unit`` in the catalog) is not sampled, and counts one
  row per unit in the plan: one person still moves every quantity by at most its sensitivity.
* The row hash covers only the columns the query reads: the result is the same whatever the physical
  order of the rows, even when a unit's rows differ only in columns the query does not read.
* Without keys from the data there is no ``COUNT(DISTINCT unit)`` to compute.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
import sqlglot
from sqlglot import exp

from policies.catalog import Catalog
from policies.context import compile_context
from policies.dp.examples import DP_SCOPE, dp_catalog, dp_scope
from tests.policies.dp.pipeline_dp import prepare_dp

KEY = {"sbx_dp_key": "a key sealed per scope lineage"}


def _one_row_catalog(**facts: bool) -> Catalog:
    """The DP example catalog with ``citizens`` a register: one row per person (declared, unless
    ``facts`` say otherwise)."""
    catalog = dp_catalog()
    update = facts or {"one_row_per_unit": True, "unique_units": True}
    datasets = tuple(
        d.model_copy(
            update={
                "tables": tuple(t.model_copy(update=update) if t.name == "citizens" else t for t in d.tables)
            }
        )
        for d in catalog.datasets
    )
    return Catalog(datasets=datasets)


def _citizens(n: int, *, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "person_id": np.arange(1, n + 1, dtype="int64"),
            "national_id": [f"N{i}" for i in range(n)],
            "name": [f"P{i}" for i in range(n)],
            "phone": ["0170000001"] * n,
            "birth_date": [pd.Timestamp("1970-01-01").date()] * n,
            "sex": rng.choice(["F", "M"], n),
            "district": rng.choice(["North", "South", "East", "West"], n),
            "income": rng.integers(-1000, 200_000, n),
            "diagnosis": ["J10"] * n,
        }
    )


def _run(sql: str, citizens: pd.DataFrame, visits: pd.DataFrame | None = None) -> pd.DataFrame:
    con = duckdb.connect()
    con.register("c_df", citizens)
    con.execute("CREATE TABLE citizens AS SELECT * FROM c_df")
    con.register(
        "v_df", visits if visits is not None else pd.DataFrame({"person_id": [], "ward": [], "cost": []})
    )
    con.execute(
        "CREATE TABLE visits AS SELECT person_id::BIGINT AS person_id, ward::VARCHAR AS ward, "
        "cost::DOUBLE AS cost FROM v_df"
    )
    params = KEY if "$sbx_dp_key" in sql else None
    return con.execute(sql, params).df()


def test_a_table_with_one_row_per_unit_is_not_sampled_and_counts_one_row() -> None:
    sql = "SELECT district, COUNT(*) AS n, SUM(income) AS s FROM citizens GROUP BY district"
    sampled = prepare_dp(sql, compile_context(dp_scope(), dp_catalog()))
    register = prepare_dp(sql, compile_context(dp_scope(), _one_row_catalog()))
    assert "QUALIFY" in sampled.sql
    assert "QUALIFY" not in register.sql
    assert (sampled.plan.rows_per_unit, register.plan.rows_per_unit) == (2, 1)
    # Without the sample, one person (one row) still moves each quantity by at most the plan's bound.
    people = _citizens(200, seed=1)
    with_them = _run(register.sql, people).set_index("district")
    without = _run(register.sql, people[people.person_id != 7]).set_index("district")
    diff = with_them.sub(without, fill_value=0)
    assert diff["n"].abs().sum() <= register.plan.sensitivity(register.plan.columns[1].cell).l1
    assert (
        diff["s"].abs().sum() <= register.plan.sensitivity(register.plan.columns[2].cell, (0.0, 100000.0)).l1
    )


def test_a_measured_register_is_not_sampled_but_its_noise_does_not_shrink() -> None:
    # Measured at upload, not declared: the sample would keep every row, so it is left out, but the
    # plan (and so the noise) must not depend on a fact measured on the data.
    sql = "SELECT district, COUNT(*) AS n, SUM(income) AS s FROM citizens GROUP BY district"
    declared = prepare_dp(sql, compile_context(dp_scope(), _one_row_catalog()))
    measured = prepare_dp(sql, compile_context(dp_scope(), _one_row_catalog(unique_units=True)))
    assert "QUALIFY" not in measured.sql
    assert measured.sql == declared.sql
    assert (measured.plan.rows_per_unit, declared.plan.rows_per_unit) == (2, 1)


def test_a_join_with_a_register_samples_only_the_other_table() -> None:
    sql = (
        "SELECT c.district, COUNT(*) AS n FROM citizens c JOIN visits v ON c.person_id = v.person_id "
        "GROUP BY c.district"
    )
    prepared = prepare_dp(sql, compile_context(dp_scope(), _one_row_catalog()))
    assert prepared.sql.count("QUALIFY") == 1
    assert '"visits" AS "v" WHERE EXISTS' in prepared.sql  # only visits' units above the bound are ranked
    assert prepared.plan.rows_per_unit == 3  # 1 citizen row × 3 visits


def _visits_with_heavy_and_light_units(seed: int) -> pd.DataFrame:
    """Units with 1 to 7 visits (the bound is 3), and 5 visits with no unit at all (one NULL unit)."""
    rng = np.random.default_rng(seed)
    units = np.repeat(np.arange(1, 121), rng.integers(1, 8, 120))
    people = pd.array([*units, *[None] * 5], dtype="Int64")
    return pd.DataFrame(
        {
            "person_id": people,
            "ward": rng.choice([f"W{i}" for i in range(6)], len(people)),
            "cost": rng.integers(0, 900, len(people)).astype(float),
        }
    )


def test_only_units_above_the_bound_are_ranked_and_exactly_the_sorted_samples_rows_are_kept() -> None:
    sql = (
        "SELECT c.district, COUNT(*) AS n, SUM(v.cost) AS s FROM citizens c JOIN visits v "
        "ON c.person_id = v.person_id GROUP BY c.district"
    )
    prepared = prepare_dp(sql, compile_context(dp_scope(), _one_row_catalog()))
    sample = next(
        q for q in sqlglot.parse_one(prepared.sql, dialect="duckdb").find_all(exp.Subquery) if q.alias == "v"
    )
    body = sample.this
    assert isinstance(body, exp.Union)
    ranked = body.expression
    light_first = body.sql(dialect="duckdb")
    # The sample as it was: every unit's rows sorted, whatever their number, and the first three kept
    # (``<= 3``, which DuckDB runs as a per-unit top-n aggregate; the pass writes ``BETWEEN 1 AND 3``).
    bound = ranked.args["qualify"].this
    assert isinstance(bound, exp.Between)
    row_number = bound.this.sql(dialect="duckdb")
    everyone = f'SELECT * FROM "visits" AS "v" QUALIFY {row_number} <= 3'
    for seed in range(3):
        visits = _visits_with_heavy_and_light_units(seed)
        kept, sorted_kept = (
            _run(q, _citizens(10, seed=seed), visits).sort_values(["person_id", "ward", "cost"])
            for q in (light_first, everyone)
        )
        pd.testing.assert_frame_equal(kept.reset_index(drop=True), sorted_kept.reset_index(drop=True))
        counts = visits.groupby("person_id", dropna=False).size()
        assert len(kept) == int(counts.clip(upper=3).sum())  # heavy units cut to 3, light ones whole


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT district, COUNT(*) AS n, SUM(income) AS s FROM citizens GROUP BY district",
        "SELECT sex, AVG(income) AS a FROM citizens GROUP BY sex",
        "SELECT COUNT(*) AS n, SUM(income) AS s FROM citizens",
    ],
)
def test_the_sample_keeps_the_same_result_whatever_the_row_order(sql: str) -> None:
    # Every person has five rows that differ in columns the query never reads (name, national_id) and
    # repeat the ones it does: hashing only the read columns leaves ties among rows the result cannot
    # tell apart, never among rows that would change it.
    base = _citizens(300, seed=2)
    rows = pd.concat([base.assign(name=f"copy{i}", national_id=f"X{i}") for i in range(5)])
    rows = pd.concat([rows, base.assign(income=base.income + 1)])  # and a sixth, different, row each
    prepared = prepare_dp(sql, compile_context(dp_scope(), dp_catalog()))
    results = [
        _run(prepared.sql, rows.sample(frac=1, random_state=seed).reset_index(drop=True)) for seed in range(4)
    ]
    keys = [c for c in results[0].columns if not pd.api.types.is_numeric_dtype(results[0][c])]
    first = results[0].sort_values(keys).reset_index(drop=True) if keys else results[0]
    for again in results[1:]:
        again = again.sort_values(keys).reset_index(drop=True) if keys else again
        pd.testing.assert_frame_equal(first, again)


def test_public_keys_need_no_distinct_unit_count_and_data_keys_do() -> None:
    ctx = compile_context(dp_scope(), dp_catalog())
    public = prepare_dp("SELECT district, COUNT(*) AS n FROM citizens GROUP BY district", ctx)
    from_data = prepare_dp("SELECT ward, COUNT(*) AS n FROM visits GROUP BY ward", ctx)
    assert "COUNT(DISTINCT" not in public.sql
    assert "_sbx_units" not in public.sql
    assert not public.plan.selects_keys
    assert '"_sbx_units"' in from_data.sql
    assert from_data.plan.selects_keys


def _distinct_units(sql: str) -> str:
    """``sql`` with each first-row count put back as the ``COUNT(DISTINCT unit)`` it stands for."""
    return sql.replace('COUNT("visits"."_sbx_dp_first")', 'COUNT(DISTINCT "visits"."person_id")')


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT ward, COUNT(*) AS n, SUM(cost) AS s FROM visits GROUP BY ward",
        "SELECT ward, COUNT(DISTINCT person_id) AS u, AVG(cost) AS a FROM visits GROUP BY ward",
    ],
)
def test_with_one_group_per_unit_the_units_are_counted_by_their_first_kept_row(sql: str) -> None:
    # The distinct-unit count (partition selection's, or the query's own) is the count of each unit's
    # first kept row: the same numbers, NULL units uncounted, light and heavy units alike.
    prepared = prepare_dp(sql, compile_context(dp_scope(), dp_catalog()))
    assert 'COUNT("visits"."_sbx_dp_first")' in prepared.sql
    assert "COUNT(DISTINCT" not in prepared.sql
    for seed in range(4):
        visits = _visits_with_heavy_and_light_units(seed)
        visits.loc[visits.index % 7 == 3, "ward"] = None  # a NULL key is a group like any other
        first_rows, distinct = (
            _run(q, _citizens(10, seed=seed), visits).sort_values("ward", na_position="first")
            for q in (prepared.sql, _distinct_units(prepared.sql))
        )
        pd.testing.assert_frame_equal(first_rows.reset_index(drop=True), distinct.reset_index(drop=True))


def test_after_a_where_the_units_are_still_counted_distinct() -> None:
    # The query's filter runs after the sample and could drop a unit's first row but keep another.
    sql = "SELECT ward, COUNT(*) AS n FROM visits WHERE ward <> 'W1' GROUP BY ward"
    prepared = prepare_dp(sql, compile_context(dp_scope(), dp_catalog()))
    assert 'COUNT(DISTINCT "visits"."person_id") AS "_sbx_units"' in prepared.sql
    assert "_sbx_dp_first" not in prepared.sql


def test_with_more_groups_per_unit_the_units_are_still_counted_distinct() -> None:
    scope = dp_scope(DP_SCOPE.replace("max_groups_per_unit: 1", "max_groups_per_unit: 2"))
    prepared = prepare_dp(
        "SELECT ward, COUNT(*) AS n FROM visits GROUP BY ward", compile_context(scope, dp_catalog())
    )
    assert "DENSE_RANK() OVER" in prepared.sql
    assert "COUNT(DISTINCT" in prepared.sql
    assert "_sbx_dp_first" not in prepared.sql
