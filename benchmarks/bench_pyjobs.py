"""Restricted Python vs plain pandas: a groupby with three aggregates on 1 million rows, one run
(each side timed five times, median reported).

Usage: python benchmarks/bench_pyjobs.py [--rows N]

Prints the time of the same pandas code run plainly and under ``run_python_job`` (compile, guards,
result classification included), their ratio (goal ≤ 1.2×), and the same for ``aggregate()``, which
also counts distinct units and evaluates dominance rules.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from executors.pyjobs import WithheldOutput, run_python_job

CODE = (
    "result = people.groupby('district')"
    ".agg(n=('age', 'count'), mean_income=('income', 'mean'), max_age=('age', 'max'))"
)
HELPER = (
    "result = aggregate(people, by='district', aggs={'n': ('age', 'count'), "
    "'mean_income': ('income', 'mean'),"
    " 'max_age': ('age', 'max')})"
)


def frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    units = rng.integers(0, rows // 10, size=rows)
    return pd.DataFrame(
        {
            "person_id": pd.Series([f"{u:032x}" for u in units], dtype="str"),
            "district": rng.choice([f"district-{i}" for i in range(50)], size=rows),
            "age": rng.integers(0, 100, size=rows),
            "income": rng.uniform(0, 1e5, size=rows),
        }
    )


def _median(action: Callable[[], object], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    rows = parser.parse_args().rows
    people = frame(rows)
    modules = ["pandas", "numpy"]

    run_python_job(
        CODE, {"people": people.head(1000)}, unit_column="person_id", modules=modules
    )  # warm imports

    plain = people.groupby("district").agg(
        n=("age", "count"), mean_income=("income", "mean"), max_age=("age", "max")
    )
    out = run_python_job(CODE, {"people": people}, unit_column="person_id", modules=modules)
    assert isinstance(out, WithheldOutput)  # a plain groupby result waits for a checker
    assert out.summary is not None
    out_rows = out.summary["rows"]
    assert isinstance(out_rows, list)
    assert len(out_rows) == len(plain)

    # Time each side five times and keep the median: the machine is shared, single timings are noisy.
    t_plain = _median(
        lambda: people.groupby("district").agg(
            n=("age", "count"), mean_income=("income", "mean"), max_age=("age", "max")
        )
    )
    t_restricted = _median(
        lambda: run_python_job(CODE, {"people": people}, unit_column="person_id", modules=modules)
    )
    t_plain_units = _median(
        lambda: people.groupby("district").agg(
            n=("age", "count"),
            mean_income=("income", "mean"),
            max_age=("age", "max"),
            units=("person_id", "nunique"),
        )
    )
    known = frozenset(people["person_id"].unique().tolist())  # what the pseudonymising caller holds
    t_known = _median(
        lambda: run_python_job(
            CODE, {"people": people}, unit_column="person_id", modules=modules, pseudonyms=known
        )
    )
    t_helper = _median(
        lambda: run_python_job(HELPER, {"people": people}, unit_column="person_id", modules=modules)
    )

    print(f"rows: {rows:,}")
    print(f"plain pandas groupby, 3 aggregates:      {t_plain * 1000:8.1f} ms")
    print(
        f"restricted run_python_job, same code:     {t_restricted * 1000:8.1f} ms  "
        f"ratio {t_restricted / t_plain:.2f}x"
    )
    print(
        f"restricted, caller passes pseudonyms:     {t_known * 1000:8.1f} ms  ratio {t_known / t_plain:.2f}x"
    )
    print(f"plain pandas + nunique(unit):            {t_plain_units * 1000:8.1f} ms")
    print(
        f"restricted aggregate() helper:            {t_helper * 1000:8.1f} ms  "
        f"ratio {t_helper / t_plain_units:.2f}x"
    )


if __name__ == "__main__":
    main()
