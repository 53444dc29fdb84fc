"""Shared data and a runner for the Python-job tests."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from executors.pyjobs import DisclosureThresholds, PyJobOutcome, PyLimits, run_python_job

MODULES = ("pandas", "numpy", "math", "statistics")
UNIT = "person_id"


def people(n: int = 600, n_units: int = 120, seed: int = 7) -> pd.DataFrame:
    """Synthetic people-visits: pseudonymised units with several rows each, districts, incomes, dates."""
    rng = np.random.default_rng(seed)
    units = rng.integers(0, n_units, size=n)
    return pd.DataFrame(
        {
            UNIT: [f"{u:032x}" for u in (units * 2654435761 + 12345)],
            "district": np.array(["north", "south", "east", "west"])[units % 4],
            "sex": np.array(["f", "m"])[rng.integers(0, 2, size=n)],
            "age": rng.integers(18, 90, size=n),
            "income": np.round(rng.uniform(1000, 9000, size=n), 2),
            "visit": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, size=n), unit="D"),
            "name": [f"Secret-Name-{i}" for i in range(n)],
        }
    )


def run(
    code: str,
    inputs: Mapping[str, pd.DataFrame] | None = None,
    *,
    modules: tuple[str, ...] = MODULES,
    limits: PyLimits | None = None,
    thresholds: DisclosureThresholds | None = None,
) -> PyJobOutcome:
    return run_python_job(
        code,
        {"people": people()} if inputs is None else inputs,
        unit_column=UNIT,
        modules=modules,
        limits=PyLimits(cpu_s=5.0) if limits is None else limits,
        thresholds=DisclosureThresholds() if thresholds is None else thresholds,
    )
