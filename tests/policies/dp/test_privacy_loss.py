"""An empirical privacy-loss audit in the spirit of DP-Auditorium: the analyst wants to know whether
P0042 (two rows, each with the highest income the bounds allow) is in the data.

The real rewrite runs on DuckDB over the data with P0042 and without; then the North cell (the only one
P0042 can move: one group per person) is released 20,000 times through the real OpenDP samplers. For
threshold events on the statistic that best separates the two worlds, the estimated loss uses Hoeffding
confidence bounds (union bound over every event, failure probability 1e-9), so it is a lower confidence
bound of the true loss: it stays under epsilon for a correct mechanism except with probability 1e-9.
The same audit catches a mechanism that adds a quarter of the noise (its true loss is 4 × epsilon), so
the test can fail.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from executors.dp_sampler import draw
from policies.context import compile_context
from policies.dp.examples import DP_SCOPE, dp_catalog, dp_scope
from policies.dp.noise import release_dp
from tests.policies.dp.pipeline_dp import prepare_dp

RELEASES = 20_000
FAILURE = 1e-9
QUERY = "SELECT district, COUNT(*) AS n, SUM(income) AS s FROM citizens GROUP BY district"
ONE_ROW_EACH = DP_SCOPE.replace("max_rows_per_unit: {citizens: 2, visits: 3}", "max_rows_per_unit: 2")


def _citizens(with_p0042: bool) -> pd.DataFrame:
    rows = [
        {"person_id": pid, "district": ["North", "South", "East"][pid % 3], "income": 1000 * (pid % 50)}
        for pid in range(1, 200)
        if pid != 42
    ]
    if with_p0042:
        rows += [{"person_id": 42, "district": "North", "income": 100_000}] * 2
    frame = pd.DataFrame(rows)
    for column, value in (
        ("national_id", "N"),
        ("name", "P"),
        ("phone", "0"),
        ("sex", "F"),
        ("diagnosis", "J"),
    ):
        frame[column] = value
    frame["birth_date"] = pd.Timestamp("1970-01-01").date()
    return frame


def _north_releases(with_p0042: bool, sample: Any) -> np.ndarray:
    ctx = compile_context(dp_scope(ONE_ROW_EACH), dp_catalog())
    prepared = prepare_dp(QUERY, ctx)
    con = duckdb.connect()
    con.register("c_df", _citizens(with_p0042))
    con.execute("CREATE TABLE citizens AS SELECT * FROM c_df")
    con.execute("CREATE TABLE visits (person_id BIGINT, ward VARCHAR, cost DOUBLE)")
    exact = con.execute(prepared.sql, {"sbx_dp_key": "k"}).df()
    north = exact[exact["district"] == "North"]
    # 20,000 independent releases of the North cell: the same plan (so the same scales) over 20,000
    # public keys that all hold North's exact values.
    keys = tuple(f"North#{i}" for i in range(RELEASES))
    plan = replace(prepared.plan, public_keys=(keys,))
    repeated = pd.concat([north] * RELEASES, ignore_index=True).assign(district=list(keys))
    assert ctx.disclosure.dp is not None
    out = release_dp(repeated, plan, ctx.disclosure.dp, sample=sample)
    statistic = out.table["n"] / out.cost.of("n").scale + out.table["s"] / out.cost.of("s").scale
    return statistic.to_numpy(dtype=float)


def _loss_lower_bound(first: np.ndarray, second: np.ndarray) -> float:
    """max over events {T > t} (both directions) of ln(P_lo / Q_hi), with Hoeffding bounds."""
    pooled = np.concatenate([first, second])
    thresholds = np.quantile(pooled, np.linspace(0.02, 0.98, 49))
    events = 2 * len(thresholds)
    slack = math.sqrt(math.log(4 * events / FAILURE) / (2 * RELEASES))
    best = 0.0
    for t in thresholds:
        for a, b in ((first, second), (second, first)):
            p, q = float(np.mean(a > t)), float(np.mean(b > t))
            for p_event, q_event in ((p, q), (1 - p, 1 - q)):
                low, high = p_event - slack, min(1.0, q_event + slack)
                if low > 0:
                    best = max(best, math.log(low / high))
    return best


def test_releases_with_and_without_p0042_stay_within_epsilon() -> None:
    epsilon = dp_scope(ONE_ROW_EACH).disclosure.dp.epsilon_per_job  # type: ignore[union-attr]
    estimated = _loss_lower_bound(_north_releases(True, draw), _north_releases(False, draw))
    assert estimated <= epsilon


def test_the_audit_catches_a_mechanism_with_a_quarter_of_the_noise() -> None:
    """The attack succeeds against an under-noised release: whether P0042 is in the data shows."""

    def quarter_noise(measurement: Any, data: Any) -> Any:
        exact = np.asarray(data, dtype=float)
        return (exact + (np.asarray(draw(measurement, data), dtype=float) - exact) / 4).tolist()

    epsilon = dp_scope(ONE_ROW_EACH).disclosure.dp.epsilon_per_job  # type: ignore[union-attr]
    estimated = _loss_lower_bound(_north_releases(True, quarter_noise), _north_releases(False, quarter_noise))
    assert estimated > epsilon
