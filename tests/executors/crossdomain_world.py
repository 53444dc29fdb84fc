"""Seeded test data for cross-domain jobs: civil-affairs citizens and health-bureau visits.

``P0042`` is the only citizen of district ``Tiny`` and has visits; some visitors are not citizens, and
some citizens never visit. Nothing here depends on the protocol: the plain join is the oracle.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from executors.crossdomain import Aggregate, CrossDomainPlan, Function, Side, SidePlan

TARGET = "P0042"
K = 10
DEMO_PLAN = CrossDomainPlan(
    # Citizens: one row per person, as their table declares (the plan says so before any row is read).
    left=SidePlan("person_id", group_by=("district",), one_row=True),
    right=SidePlan("person_id", sums=("cost",)),
    aggregates=(
        Aggregate("patients", Function.COUNT_UNITS),
        Aggregate("visits", Function.COUNT),
        Aggregate("avg_cost", Function.AVG, Side.RIGHT, "cost"),
        Aggregate("total_cost", Function.SUM, Side.RIGHT, "cost"),
    ),
)
COUNT_ONLY = CrossDomainPlan(
    left=SidePlan("person_id", group_by=("district",)),
    right=SidePlan("person_id"),
    aggregates=(Aggregate("patients", Function.COUNT_UNITS),),
)


def citizens(n: int = 200, *, seed: int = 7, tiny: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = [f"P{i:04d}" for i in range(n)]
    district = rng.choice(["North", "South", "East"], size=n).astype(object)
    frame = pd.DataFrame({"person_id": ids, "district": district})
    tiny_ids = [TARGET, *(f"P{i:04d}" for i in range(43, 43 + tiny - 1))]
    frame.loc[frame["person_id"].isin(tiny_ids), "district"] = "Tiny"
    return frame


def visits(n: int = 400, *, seed: int = 8, people: int = 260) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = [f"P{i:04d}" for i in rng.integers(0, people, size=n)]
    ids[0] = TARGET
    return pd.DataFrame({"person_id": ids, "cost": np.round(rng.uniform(5, 900, size=n), 2)})


def plain_join(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
    """The oracle: what one process holding both domains' rows would compute."""
    joined = right.merge(left, on="person_id")
    return (
        joined.groupby("district")
        .agg(
            patients=("person_id", "nunique"),
            visits=("cost", "size"),
            avg_cost=("cost", "mean"),
            total_cost=("cost", "sum"),
        )
        .reset_index()
    )
