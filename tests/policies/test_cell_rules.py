"""The cell rules' contributions against a direct per-cell computation, and the readings that close
the offset and all-equal attacks (the attacks themselves: ``tests/executors/pyjobs/test_redteam_python.py``,
``tests/executors/test_dominance_sql.py``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from policies.cell_rules import TOP, CellRules, contributions, judge


def direct(groups: np.ndarray, units: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """The summary rows, one cell at a time with pandas (slow and obvious)."""
    frame = pd.DataFrame({"g": groups, "u": units, "v": values})
    frame = frame[(frame["u"] >= 0) & frame["v"].notna()]
    out = np.zeros((n_groups, 3 + 2 * TOP))
    for g, cell in frame.groupby("g"):
        median = cell["v"].median()
        deviation = (cell["v"] - median).abs()
        deviation[deviation <= 1e-9 * max(abs(median), 1.0)] = 0.0
        raw = cell["v"].abs().groupby(cell["u"]).sum().sort_values(ascending=False)
        dev = deviation.groupby(cell["u"]).sum().sort_values(ascending=False)
        top = np.zeros(TOP)
        top[: min(TOP, len(raw))] = raw.to_numpy()[:TOP]
        dev_top = np.zeros(TOP)
        dev_top[: min(TOP, len(dev))] = dev.to_numpy()[:TOP]
        out[int(g)] = [raw.sum(), float((dev > 0).sum()), dev.sum(), *top, *dev_top]
    return out


@pytest.mark.parametrize("seed", range(8))
def test_contributions_match_a_direct_computation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows, n_groups = 400, 7
    groups = rng.integers(0, n_groups, rows)
    units = rng.integers(-1, 60, rows)  # -1: a row without a unit
    values = np.round(rng.normal(0, 1000, rows), 2)
    values[rng.random(rows) < 0.1] = np.nan
    values[rng.random(rows) < 0.2] = 5.0  # ties, and cells where many are equal
    got = contributions(groups, units, values, n_groups=n_groups).to_rows()
    assert got == pytest.approx(direct(groups, units, values, n_groups))


def test_a_constant_offset_does_not_hide_one_persons_value() -> None:
    values = np.r_[1e7 + 9876.5, np.full(29, 1e7) + np.arange(29) * 1e-3]
    verdicts = judge(contributions(np.zeros(30, np.int64), np.arange(30), values, n_groups=1), CellRules())
    assert verdicts.dominated.tolist() == [True]
    assert verdicts.few_contributors.tolist() == [False]


def test_all_equal_and_one_exception_get_the_same_answer() -> None:
    same = contributions(np.zeros(30, np.int64), np.arange(30), np.zeros(30), n_groups=1)
    one = contributions(np.zeros(30, np.int64), np.arange(30), np.r_[5000.0, np.zeros(29)], n_groups=1)
    assert judge(same, CellRules()).any.tolist() == judge(one, CellRules()).any.tolist() == [True]
