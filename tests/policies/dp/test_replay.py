"""Replay of a DP release: the auditor re-runs the query and checks it against the sealed record
(exact values and noise); the operator, who never sees the record, cannot subtract the noise."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest

from executors.dp_sampler import draw
from policies.context import compile_context
from policies.dp.examples import DP_SCOPE, dp_catalog, dp_scope
from policies.dp.noise import release_dp
from policies.dp.replay import replay_problems, sealed_record
from tests.policies.dp.pipeline_dp import prepare_dp

GAUSSIAN_SELECTED = DP_SCOPE.replace("budget: 10.0", "budget: 10.0\n    mechanism: gaussian")


def _run(sql: str) -> pd.DataFrame:
    citizens = pd.DataFrame(
        {
            "person_id": range(1, 401),
            "national_id": "N",
            "name": "P",
            "phone": "0",
            "birth_date": pd.Timestamp("1970-01-01").date(),
            "sex": ["F", "M"] * 200,
            "district": ["North", "South", "Tiny", "Military Zone"] * 100,
            "income": [(i * 7919) % 120_000 for i in range(400)],
            "diagnosis": "J",
        }
    )
    visits = pd.DataFrame(
        {"person_id": [1 + i % 400 for i in range(1200)], "ward": ["A", "B", "C"] * 400, "cost": 17.25}
    )
    con = duckdb.connect()
    con.register("c_df", citizens)
    con.register("v_df", visits)
    con.execute("CREATE TABLE citizens AS SELECT * FROM c_df")
    con.execute("CREATE TABLE visits AS SELECT * FROM v_df")
    return con.execute(sql, {"sbx_dp_key": "sealed lineage key"}).df()


@pytest.mark.parametrize(
    ("scope_text", "sql"),
    [
        (DP_SCOPE, "SELECT district, COUNT(*) AS n, AVG(income) AS a FROM citizens GROUP BY district"),
        (GAUSSIAN_SELECTED, "SELECT ward, COUNT(*) AS n, SUM(cost) AS s FROM visits GROUP BY ward"),
    ],
    ids=["laplace-public-keys", "gaussian-selected-keys"],
)
def test_replay_reproduces_the_release_from_the_sealed_record(scope_text: str, sql: str) -> None:
    ctx = compile_context(dp_scope(scope_text), dp_catalog())
    assert ctx.disclosure.dp is not None
    prepared = prepare_dp(sql, ctx)
    release = release_dp(_run(prepared.sql), prepared.plan, ctx.disclosure.dp, sample=draw)
    record = json.loads(json.dumps(sealed_record(release)))  # as sealed and unsealed
    assert replay_problems(_run(prepared.sql), prepared.plan, record) == []

    # Noise changed in the sealed record (every cell of one column, so that clipping at zero cannot
    # hide it): exact + noise no longer gives what was released.
    tampered = json.loads(json.dumps(record))
    first = next(iter(tampered["noise"]))
    tampered["noise"][first] = [v + 1 for v in tampered["noise"][first]]
    assert replay_problems(_run(prepared.sql), prepared.plan, tampered)


def test_a_rerun_on_changed_data_fails_the_replay() -> None:
    ctx = compile_context(dp_scope(), dp_catalog())
    assert ctx.disclosure.dp is not None
    prepared = prepare_dp("SELECT district, COUNT(*) AS n FROM citizens GROUP BY district", ctx)
    release = release_dp(_run(prepared.sql), prepared.plan, ctx.disclosure.dp, sample=draw)
    changed = _run(prepared.sql).assign(n=lambda f: f["n"] + 1)
    assert replay_problems(changed, prepared.plan, sealed_record(release)) == [
        "n: the re-run's exact values differ from the sealed ones"
    ]
