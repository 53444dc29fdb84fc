"""The groups bound's pick (``_sample.picked_group_scan``) keeps exactly the rows of the window sample it
replaced, so the DP guarantee, the sensitivity and every sealed pre-noise result stay as they were.

The window sample kept, per unit, the rows of its first group in the order ``(hash(keys), keys…)``
(DENSE_RANK ≤ 1) and of those the first ``max_rows_per_unit`` by the row hash (ROW_NUMBER). Here the
same job is run both ways on generated data: units with one row and units far over the bound, a NULL
unit, NULL keys, several keys, the scope's row filter; the kept rows and the exact results must agree.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import sqlglot
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from policies.context import compile_context
from policies.dp.examples import dp_catalog, dp_scope
from policies.dp.passes._sample import PICK_CTE, sampled_scan
from tests.policies.dp.pipeline_dp import prepare_dp

KEY = {"sbx_dp_key": "a key sealed per scope lineage"}

VISITS = "SELECT ward, COUNT(*) AS n, SUM(cost) AS s FROM visits GROUP BY ward"
CITIZENS = "SELECT sex, district, COUNT(*) AS n, AVG(income) AS a FROM citizens GROUP BY sex, district"


def _as_window(tree: exp.Expr) -> str:
    """The same rewritten job with each pick put back as the window sample the pass wrote before:
    DENSE_RANK over the pick's own order (``ARG_MIN_NULL``'s second argument), ROW_NUMBER over that
    order followed by the ranked branch's row hash, at the ranked branch's bound."""
    tree = tree.copy()
    picks = [s for s in tree.find_all(exp.Subquery) if isinstance(s.this, exp.Union) and _pick_of(s.this)]
    assert picks, "the job has no pick"
    for sample in picks:
        union = sample.this
        pick = _pick_of(union)
        assert pick is not None
        scan = pick.args["from_"].this
        order = pick.expressions[1].unalias().expressions[1].expressions
        qualify = union.expression.args["qualify"].this
        row_hash = [o.this for o in qualify.this.args["order"].expressions]
        limit = int(qualify.expression.name)
        bounds: list[tuple[exp.Expr, list[exp.Expr], int]] = [
            (exp.DenseRank(), [o.copy() for o in order], 1),
            (exp.RowNumber(), [*(o.copy() for o in order), *(r.copy() for r in row_hash)], limit),
        ]
        window = sampled_scan(
            scan.copy(), alias=sample.alias, table="t", unit=pick.expressions[0].name, bounds=bounds
        )
        sample.replace(window)
    return tree.sql(dialect="duckdb", comments=False)


def _pick_of(union: exp.Union) -> exp.Select | None:
    with_ = union.args.get("with_")
    if with_ is None or with_.expressions[0].alias != PICK_CTE:
        return None
    pick = with_.expressions[0].this
    return pick if isinstance(pick, exp.Select) else None


def _sample_sql(sql: str) -> str:
    """``SELECT *`` of the job's one sampled scan: the rows it keeps."""
    sample = next(q for q in sqlglot.parse_one(sql, dialect="duckdb").find_all(exp.Subquery) if q.alias)
    return f"SELECT * FROM {sample.sql(dialect='duckdb')}"


def _run(sql: str, visits: pd.DataFrame, citizens: pd.DataFrame | None = None) -> pd.DataFrame:
    con = duckdb.connect()
    con.register("v_df", visits)
    con.execute(
        "CREATE TABLE visits AS SELECT person_id::BIGINT AS person_id, ward::VARCHAR AS ward, "
        "cost::DOUBLE AS cost FROM v_df"
    )
    if citizens is not None:
        con.register("c_df", citizens)
        con.execute(
            "CREATE TABLE citizens AS SELECT person_id::BIGINT AS person_id, 'N' AS national_id, "
            "'P' AS name, '0170000001' AS phone, DATE '1970-01-01' AS birth_date, sex::VARCHAR AS sex, "
            "district::VARCHAR AS district, income::BIGINT AS income, 'J10' AS diagnosis FROM c_df"
        )
    frame = con.execute(sql, KEY if "$sbx_dp_key" in sql else None).df()
    return frame.sort_values(list(frame.columns), na_position="last").reset_index(drop=True)


_unit = st.one_of(st.none(), st.integers(1, 6))
_visit = st.tuples(_unit, st.sampled_from([None, "A", "B", "C"]), st.integers(0, 900))
_citizen = st.tuples(
    _unit,
    st.sampled_from([None, "F", "M"]),
    st.sampled_from(["North", "South", "Military Zone", None]),
    st.integers(-1000, 200_000),
)
#: A unit far over the bound (3 visits) in several wards, a NULL unit, a NULL ward, light units, and a
#: unit with five visits in one ward.
_SPREAD = [(1, w, c) for w, c in [("A", 1), ("B", 2), ("A", 3), ("C", 4), ("A", 5), ("B", 6), (None, 7)]] + [
    (None, "A", 8),
    (None, None, 9),
    (2, None, 10),
    (3, "C", 11),
    *((4, "B", 20 + i) for i in range(5)),
]


def _visits(rows: list[tuple[int | None, str | None, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["person_id", "ward", "cost"]).astype({"person_id": "Int64"})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(rows=_SPREAD)
@given(rows=st.lists(_visit, max_size=40))
def test_the_pick_keeps_exactly_the_window_samples_rows_and_results(
    rows: list[tuple[int | None, str | None, int]],
) -> None:
    prepared = prepare_dp(VISITS, compile_context(dp_scope(), dp_catalog()))
    assert PICK_CTE in prepared.sql
    assert "DENSE_RANK" not in prepared.sql
    window = _as_window(prepared.tree)
    visits = _visits(rows)
    pd.testing.assert_frame_equal(_run(_sample_sql(prepared.sql), visits), _run(_sample_sql(window), visits))
    pd.testing.assert_frame_equal(_run(prepared.sql, visits), _run(window, visits))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(_citizen, max_size=30))
def test_several_keys_and_the_row_filter_keep_the_same_rows_too(
    rows: list[tuple[int | None, str | None, str | None, int]],
) -> None:
    prepared = prepare_dp(CITIZENS, compile_context(dp_scope(), dp_catalog()))
    window = _as_window(prepared.tree)
    citizens = pd.DataFrame(rows, columns=["person_id", "sex", "district", "income"]).astype(
        {"person_id": "Int64"}
    )
    visits = _visits([])
    pd.testing.assert_frame_equal(_run(prepared.sql, visits, citizens), _run(window, visits, citizens))


def test_each_unit_keeps_one_group_and_at_most_the_rows_bound() -> None:
    prepared = prepare_dp(VISITS, compile_context(dp_scope(), dp_catalog()))
    kept = _run(_sample_sql(prepared.sql), _visits(_SPREAD))
    per_unit = kept.groupby("person_id", dropna=False)
    assert per_unit["ward"].nunique(dropna=False).max() == 1
    assert per_unit.size().max() == prepared.plan.rows_per_unit == 3
    assert (kept.person_id == 4).sum() == 3  # five rows in its one group: the bound cuts them to three
    assert set(kept.person_id.astype(object).where(kept.person_id.notna(), None)) == {1, 2, 3, 4, None}
