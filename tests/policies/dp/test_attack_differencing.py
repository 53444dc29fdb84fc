"""Attack: the analyst wants P0042's income. Two jobs that differ only by P0042 (a WHERE on the masked
phone, whose last two digits are P0042's alone) subtracted give it.

Without DP (the same scope with ``dp`` removed) both jobs pass the k-threshold and the difference is
P0042's income to the cent: the attack succeeds (checked below).
Under DP the released sums carry noise whose 95 % interval, stated in the report before anything runs,
is wider than the whole range incomes may take: whatever the operator computes from the two releases,
every income from 0 to 100,000 stays plausible.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from executors.dp_sampler import draw
from policies import check_output, prepare
from policies.context import compile_context
from policies.dp.cost import cost_of
from policies.dp.examples import dp_catalog, dp_scope
from policies.dp.noise import release_dp
from tests.policies.dp.pipeline_dp import prepare_dp

P0042_INCOME = 73_251
ALL = "SELECT district, SUM(income) AS s FROM citizens GROUP BY district"
ALL_BUT_P0042 = "SELECT district, SUM(income) AS s FROM citizens WHERE phone <> '***42' GROUP BY district"


def _con() -> duckdb.DuckDBPyConnection:
    people = range(1, 100)
    citizens = pd.DataFrame(
        {
            "person_id": list(people),
            "national_id": "N",
            "name": "P",
            "phone": [f"01700000{p:02d}" for p in people],
            "birth_date": pd.Timestamp("1970-01-01").date(),
            "sex": "F",
            "district": "North",
            "income": [P0042_INCOME if p == 42 else 20_000 + 300 * p for p in people],
            "diagnosis": "J",
        }
    )
    con = duckdb.connect()
    con.register("c_df", citizens)
    con.execute("CREATE TABLE citizens AS SELECT * FROM c_df")
    con.execute("CREATE TABLE visits (person_id BIGINT, ward VARCHAR, cost DOUBLE)")
    return con


def test_without_dp_two_jobs_subtracted_give_p0042s_income() -> None:
    with_dp, catalog, con = dp_scope(), dp_catalog(), _con()
    scope = with_dp.model_copy(update={"disclosure": with_dp.disclosure.model_copy(update={"dp": None})})
    released = []
    for sql in (ALL, ALL_BUT_P0042):
        prepared = prepare(sql, scope, catalog)
        released.append(check_output(con.execute(prepared.sql).df(), scope.disclosure).table)
    assert released[0]["s"][0] - released[1]["s"][0] == P0042_INCOME


def test_under_dp_the_difference_says_nothing_about_p0042s_income() -> None:
    ctx, con = compile_context(dp_scope(), dp_catalog()), _con()
    assert ctx.disclosure.dp is not None
    for sql in (ALL, ALL_BUT_P0042):
        prepared = prepare_dp(sql, ctx)
        cost = cost_of(prepared.plan, ctx.disclosure.dp)
        # Stated before running: the noise alone makes every income in the bounds plausible.
        assert cost.of("s").half_width_95 > 100_000
        release = release_dp(
            con.execute(prepared.sql, {"sbx_dp_key": "k"}).df(), prepared.plan, ctx.disclosure.dp, sample=draw
        )
        # What the operator receives: keys and noisy values; the exact ones and the noise stay sealed.
        assert list(release.table.columns) == ["district", "s"]
