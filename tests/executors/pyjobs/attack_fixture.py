"""A small cohort with one distinctive person, and the judge of the Python-job taint attacks.

``people``: one row per person (200), pseudonymised units, with one target: the only person aged 95,
living in 'north', with a distinctive income (``TARGET_INCOME``) and the only 'rare-x' diagnosis.
``visits``: several rows per person (costs), for merges on the unit. ``regions``: a lookup table
without a unit column (a public dimension).

What an operator receives automatically from a Python job is the ``aggregate()`` table after the
output check (``policies.check_output`` with ``MIN_UNITS``); a withheld output goes to a person.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

import policies
from executors.pyjobs import AggregateOutput, DisclosureThresholds, PyJobOutcome, PyLimits, run_python_job

UNIT = "person_id"
MIN_UNITS = 10
TARGET_INCOME = 9876543.21
TARGET_DIAGNOSIS = "rare-x"
MODULES = ("pandas", "numpy", "math", "statistics")
N_PEOPLE = 200


def cohort() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(20260101)
    tokens = [f"{(i * 2654435761 + 977) % 2**61:032x}" for i in range(N_PEOPLE)]
    people = pd.DataFrame(
        {
            UNIT: tokens,
            "sex": rng.choice(["f", "m"], size=N_PEOPLE),
            "district": rng.choice(["north", "south", "east", "west"], size=N_PEOPLE),
            "age": rng.integers(20, 80, size=N_PEOPLE),
            "income": np.round(rng.uniform(1000, 9000, size=N_PEOPLE), 2),
            "diagnosis": rng.choice(["none", "flu", "asthma"], size=N_PEOPLE),
            "birth": pd.to_datetime("1950-01-01")
            + pd.to_timedelta(rng.integers(0, 20000, size=N_PEOPLE), unit="D"),
        }
    )
    people.loc[0, ["age", "district", "income", "diagnosis"]] = [95, "north", TARGET_INCOME, TARGET_DIAGNOSIS]
    owners = rng.integers(0, N_PEOPLE, size=600)
    visits = pd.DataFrame(
        {UNIT: [tokens[i] for i in owners], "cost": np.round(rng.uniform(10, 500, size=600), 2)}
    )
    regions = pd.DataFrame({"district": ["north", "south", "east", "west"], "region": ["N", "S", "E", "W"]})
    return {"people": people, "visits": visits, "regions": regions}


def run(code: str) -> PyJobOutcome:
    return run_python_job(
        code,
        cohort(),
        unit_column=UNIT,
        modules=MODULES,
        limits=PyLimits(cpu_s=10.0),
        thresholds=DisclosureThresholds(min_units=MIN_UNITS),
    )


def received(out: PyJobOutcome) -> pd.DataFrame | None:
    """What the operator gets without a person looking: the checked aggregate table, or nothing."""
    if not isinstance(out, AggregateOutput):
        return None
    return policies.check_output(out.table, policies.Disclosure(min_units=MIN_UNITS)).table


def shows_target_income(table: pd.DataFrame) -> bool:
    """Whether any released number equals the target's income (to the cent)."""
    numbers = table.select_dtypes("number").to_numpy(dtype=float).ravel()
    return bool(np.any(np.abs(numbers - TARGET_INCOME) < 0.005))


@dataclass(frozen=True)
class Attack:
    """A job that tries to launder a value depending on other rows into ``aggregate()``.

    ``taint`` is what the report must name (an operation, as the report writes it)."""

    id: str
    code: str
    taint: str
