"""Disclosure rules on the cells of a released table, from the units' contributions (pure).

The standard rules of statistical disclosure control (Hundepool et al., *Statistical Disclosure
Control*, Wiley 2012, §4.2), written once for every kind of job: a cell of a sum or mean is
sensitive when a few units' contributions dominate it, since one contributor could then estimate
another's value. Each rule takes what a cell is made of, per cell (scalars or arrays of cells alike):

* ``total``: the sum of the absolute per-unit contributions to the cell;
* ``top_n``: the sum of the ``n`` largest of them; ``largest`` and ``second``: the two largest.

The threshold rule (``min_units``) is the output check's (``policies/output.py``). Python jobs'
``aggregate()`` computes the contributions in the sandbox (``executors/pyjobs/helpers.py``); a SQL
result would need them as hidden columns from a rewrite pass (the way ``_sbx_units`` is added).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Cells = npt.NDArray[np.float64]


def violates_dominance(top_n_sum: float, total: float, *, k: float) -> bool:
    """(n, k) dominance: the n largest contributors hold more than a share ``k`` of the cell total.

    >>> violates_dominance(90.0, 100.0, k=0.85), violates_dominance(50.0, 100.0, k=0.85)
    (True, False)
    """
    return total > 0 and top_n_sum > k * total


def violates_p_rule(largest: float, second: float, total: float, *, p_percent: float) -> bool:
    """p% rule: the second-largest contributor could estimate the largest within p% of its value,
    i.e. what the others contribute (total - x1 - x2) is less than p% of x1.

    >>> violates_p_rule(80.0, 15.0, 100.0, p_percent=10.0), violates_p_rule(40.0, 30.0, 100.0, p_percent=10.0)
    (True, False)
    """
    return largest > 0 and (total - largest - second) < p_percent / 100.0 * largest


def dominated_cells(top_n: Cells, totals: Cells, *, k: float) -> npt.NDArray[np.bool_]:
    """:func:`violates_dominance` for every cell at once.

    >>> dominated_cells(np.array([90.0, 50.0, 0.0]), np.array([100.0, 100.0, 0.0]), k=0.85).tolist()
    [True, False, False]
    """
    return (totals > 0) & (top_n > k * totals)


def p_rule_cells(largest: Cells, second: Cells, totals: Cells, *, p_percent: float) -> npt.NDArray[np.bool_]:
    """:func:`violates_p_rule` for every cell at once.

    >>> p_rule_cells(np.array([80.0, 40.0]), np.array([15.0, 30.0]), np.array([100.0, 100.0]),
    ...              p_percent=10.0).tolist()
    [True, False]
    """
    return (largest > 0) & ((totals - largest - second) < p_percent / 100.0 * largest)
