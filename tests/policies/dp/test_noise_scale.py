"""The noise has the scale the report states.

Each test draws 40,000 noise values through the real OpenDP samplers (one release over 40,000 public
keys whose exact values are known) and checks two facts the report makes: the mean absolute noise (or
standard deviation) matches the stated scale, and the stated 95 % interval holds the exact value in
95 % of the cells. With 40,000 draws the estimates' own standard errors are under 0.7 % (scale) and
0.11 percentage points (coverage); the tolerances (5 % and 1 point) are over six standard errors wide,
so a correct sampler fails them with probability below 1e-9, while a scale off by 10 % fails them.
OpenDP's samplers cannot be seeded (see ``policies.dp.noise``), so no seed is fixed: the bounds are
what makes the tests stable.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from executors.dp_sampler import draw
from policies.dp.noise import release_dp
from policies.dp.plan import Cell, DpColumn, DpPlan
from policies.model import DifferentialPrivacy

DRAWS = 40_000


def _release(cell: Cell, dp: DifferentialPrivacy, *, exact: float) -> tuple[np.ndarray, float, float]:
    keys = tuple(f"k{i}" for i in range(DRAWS))
    bounds = (0.0, 100.0) if cell is Cell.SUM else None
    plan = DpPlan(
        (DpColumn("k", Cell.KEY, 0), DpColumn("v", cell, 1, source="t.x", bounds=bounds)),
        rows_per_unit=2,
        groups_per_unit=1,
        group_bound_table=None,
        public_keys=(keys,),
    )
    table = pd.DataFrame({"k": list(keys), "v": [exact] * DRAWS})
    out = release_dp(table, plan, dp, sample=draw)
    noise = out.noise["v"].to_numpy(dtype=float)
    quantity = out.cost.of("v")
    return noise, quantity.scale, quantity.half_width_95


@pytest.mark.parametrize(
    ("cell", "exact"),
    [(Cell.COUNT_ROWS, 1000.0), (Cell.SUM, 12345.5)],
    ids=["discrete-laplace-count", "laplace-sum"],
)
def test_laplace_noise_has_the_stated_scale_and_interval(cell: Cell, exact: float) -> None:
    dp = DifferentialPrivacy(epsilon_per_job=0.05, budget=1.0)
    noise, scale, half = _release(cell, dp, exact=exact)
    assert scale == pytest.approx((2 if cell is Cell.COUNT_ROWS else 200) / 0.05)
    assert abs(float(np.mean(noise))) < 0.05 * scale  # centred
    assert float(np.mean(np.abs(noise))) == pytest.approx(scale, rel=0.05)  # E|Laplace(b)| = b
    coverage = float(np.mean(np.abs(noise) <= half))
    assert 0.94 <= coverage <= 0.96


@pytest.mark.parametrize(
    ("cell", "exact"),
    [(Cell.COUNT_ROWS, 1000.0), (Cell.SUM, 12345.5)],
    ids=["discrete-gaussian-count", "gaussian-sum"],
)
def test_gaussian_noise_has_the_stated_scale_and_interval(cell: Cell, exact: float) -> None:
    dp = DifferentialPrivacy(epsilon_per_job=0.1, budget=1.0, mechanism="gaussian", delta=1e-8)
    noise, sigma, half = _release(cell, dp, exact=exact)
    rho = (math.sqrt(math.log(1e8) + 0.1) - math.sqrt(math.log(1e8))) ** 2
    assert sigma == pytest.approx((2 if cell is Cell.COUNT_ROWS else 200) / math.sqrt(2 * rho))
    assert abs(float(np.mean(noise))) < 0.05 * sigma
    assert float(np.std(noise)) == pytest.approx(sigma, rel=0.05)
    coverage = float(np.mean(np.abs(noise) <= half))
    assert 0.94 <= coverage <= 0.96


def test_counts_get_integer_noise_and_sums_are_not_rounded() -> None:
    """Counts use OpenDP's integer samplers (no float to attack); sums its lattice float samplers."""
    dp = DifferentialPrivacy(epsilon_per_job=1.0, budget=2.0)
    counts, _, _ = _release(Cell.COUNT_ROWS, dp, exact=7)
    sums, _, _ = _release(Cell.SUM, dp, exact=7.25)
    assert np.all(counts == np.round(counts))
    assert not np.all(sums == np.round(sums))
