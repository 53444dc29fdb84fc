"""Disclosure rules on the cells of a released table, from the units' contributions (pure).

The standard rules of statistical disclosure control (Hundepool et al., *Statistical Disclosure
Control*, Wiley 2012, §4.2), written once for every kind of job: a cell of a sum or mean is
sensitive when a few units' contributions dominate it, since one contributor could then estimate
another's value. Each rule takes what a cell is made of, per cell (scalars or arrays of cells alike):

* ``total``: the sum of the absolute per-unit contributions to the cell;
* ``top_n``: the sum of the ``n`` largest of them; ``largest`` and ``second``: the two largest.

Every rule is judged twice per cell (:func:`contributions`, :func:`judge`): on the per-unit sums of
the values as they are, and on the per-unit sums of their *deviations from the cell's median value*.
A constant added to every row (``income * <indicator of one person> + 1e7``) changes the first and
not the second: the analyst subtracts ``1e7 * n`` again, so the rules must see what is left. And a
cell in which fewer than ``min_units`` units deviate from that median at all is withheld as well,
*including none*: a cell that is 0 for everyone but one person and a cell that is 0 for everyone
must get the same answer, or the answer tells whether that person exists (released for a = 95,
withheld for a = 94 in ``income * max(0, age - a)``).

The threshold rule on the cell's units (``min_units``) is the output check's (``policies/output.py``).
Python jobs' ``aggregate()`` computes the contributions in the sandbox (``executors/pyjobs/helpers.py``);
SQL jobs under a scope with ``disclosure.cell_rules`` carry them as hidden per-cell summaries
(``policies/passes/collect_contributions.py``, ``policies/contribution_check.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

Cells = npt.NDArray[np.float64]
#: Largest contributions kept per cell: the dominance rule's ``n`` is at most this.
TOP = 5
#: Deviations this small relative to the cell's median (or to 1) are rounding, not a contribution.
_RELATIVE_TOLERANCE = 1e-9


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


@dataclass(frozen=True)
class CellRules:
    """The thresholds of the rules: ``min_units`` from the scope, the others the SDC defaults
    (ACRO's are k = 0.90 and p = 10 %)."""

    min_units: int = 10
    dominance_n: int = 2
    dominance_k: float = 0.85
    p_percent: float = 10.0


@dataclass(frozen=True, eq=False)
class Contributions:
    """Per cell: the absolute per-unit contributions summed (``totals``) and the ``TOP`` largest,
    descending (``top``, shape ``(cells, TOP)``, 0 where a cell has fewer units); the same for the
    deviations from the cell's median value (``dev_totals``, ``dev_top``); and how many units
    deviate at all (``spread``)."""

    totals: Cells
    top: Cells
    dev_totals: Cells
    dev_top: Cells
    spread: Cells

    def to_rows(self) -> Cells:
        """One row of ``3 + 2 * TOP`` numbers per cell (how a SQL job's sandbox hands them on)."""
        return np.column_stack([self.totals, self.spread, self.dev_totals, self.top, self.dev_top])

    @classmethod
    def from_rows(cls, rows: Cells) -> Contributions:
        """The inverse of :meth:`to_rows`.

        >>> c = contributions(np.array([0, 0]), np.array([0, 1]), np.array([3.0, 5.0]), n_groups=1)
        >>> Contributions.from_rows(c.to_rows()).to_rows().tolist() == c.to_rows().tolist()
        True
        """
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 3 + 2 * TOP)
        return cls(
            totals=rows[:, 0],
            spread=rows[:, 1],
            dev_totals=rows[:, 2],
            top=rows[:, 3 : 3 + TOP],
            dev_top=rows[:, 3 + TOP :],
        )


def contributions(
    groups: npt.NDArray[np.int64],
    units: npt.NDArray[np.int64],
    values: Cells,
    *,
    n_groups: int,
) -> Contributions:
    """The contributions of each cell, from one entry per input row: its cell (``groups``, 0 ..
    n_groups - 1), its unit (an integer code; negative: no unit) and its value (NaN: none).

    >>> c = contributions(np.array([0, 0, 0, 1, 1]), np.array([0, 0, 1, 2, 3]),
    ...                   np.array([1e7, 1e7 + 42.0, 1e7, 5.0, 7.0]), n_groups=2)
    >>> c.totals.tolist(), c.top[:, 0].tolist(), c.dev_totals.tolist(), c.spread.tolist()
    ([30000042.0, 12.0], [20000042.0, 7.0], [42.0, 2.0], [1.0, 2.0])
    """
    groups = np.asarray(groups, dtype=np.int64)
    units = np.asarray(units, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    keep = (units >= 0) & ~np.isnan(values)
    groups, units, values = groups[keep], units[keep], values[keep]
    # The median row value of each cell: what a constant added to every row shifts it to.
    median = pd.Series(values).groupby(groups).transform("median").to_numpy(dtype=np.float64)
    deviations = np.abs(values - median)
    deviations[deviations <= _RELATIVE_TOLERANCE * np.maximum(np.abs(median), 1.0)] = 0.0
    # One code per (cell, unit) pair, shared by both readings.
    n_units = int(units.max(initial=0)) + 1
    pair_codes, pairs = pd.factorize(groups * n_units + units)
    pair_group = np.asarray(pairs, dtype=np.int64) // n_units
    totals, top, _ = _per_unit(pair_codes, pair_group, np.abs(values), n_groups)
    dev_totals, dev_top, spread = _per_unit(pair_codes, pair_group, deviations, n_groups)
    return Contributions(totals=totals, top=top, dev_totals=dev_totals, dev_top=dev_top, spread=spread)


def _per_unit(
    pair_codes: npt.NDArray[np.int64], pair_group: npt.NDArray[np.int64], weights: Cells, n_groups: int
) -> tuple[Cells, Cells, Cells]:
    """Per cell: the sum of ``weights``, its ``TOP`` largest per-unit sums, and how many are > 0.

    Vectorised over cells, without sorting: ``TOP`` rounds each take every cell's largest remaining
    contribution (a sort of all pairs dominated the time on a million rows)."""
    sums = np.bincount(pair_codes, weights=weights, minlength=len(pair_group))
    totals = np.bincount(pair_group, weights=sums, minlength=n_groups).astype(np.float64)
    positive = np.bincount(pair_group, weights=(sums > 0).astype(np.float64), minlength=n_groups)
    top = np.zeros((n_groups, TOP), dtype=np.float64)
    alive = np.ones(len(sums), dtype=bool)
    for rank in range(TOP):
        best = np.full(n_groups, -1.0)
        np.maximum.at(best, pair_group[alive], sums[alive])
        hits = np.flatnonzero(alive & (sums == best[pair_group]))
        cells, first = np.unique(pair_group[hits], return_index=True)
        if not len(cells):
            break
        top[cells, rank] = best[cells]
        alive[hits[first]] = False  # exactly one per cell, even when several tie
    return totals, top, positive.astype(np.float64)


@dataclass(frozen=True)
class Verdicts:
    """Per cell, which rule it fails (each a bool array)."""

    dominated: npt.NDArray[np.bool_]
    p_rule: npt.NDArray[np.bool_]
    few_contributors: npt.NDArray[np.bool_]

    @property
    def any(self) -> npt.NDArray[np.bool_]:
        return self.dominated | self.p_rule | self.few_contributors


def judge(c: Contributions, rules: CellRules) -> Verdicts:
    """Dominance and p% on the contributions and on their deviations from the cell's median, and
    whether fewer than ``min_units`` units deviate from it (none included).

    >>> offset = contributions(np.zeros(12, np.int64), np.arange(12), np.r_[1e7 + 9876.5, [1e7] * 11],
    ...                        n_groups=1)
    >>> v = judge(offset, CellRules(min_units=10))
    >>> v.dominated.tolist(), v.few_contributors.tolist()
    ([True], [True])
    >>> even = contributions(np.zeros(12, np.int64), np.arange(12), np.arange(12.0) + 100, n_groups=1)
    >>> judge(even, CellRules(min_units=10)).any.tolist()
    [False]
    """
    n = max(1, min(rules.dominance_n, TOP))
    dominated = dominated_cells(c.top[:, :n].sum(axis=1), c.totals, k=rules.dominance_k) | dominated_cells(
        c.dev_top[:, :n].sum(axis=1), c.dev_totals, k=rules.dominance_k
    )
    p_rule = p_rule_cells(c.top[:, 0], c.top[:, 1], c.totals, p_percent=rules.p_percent) | p_rule_cells(
        c.dev_top[:, 0], c.dev_top[:, 1], c.dev_totals, p_percent=rules.p_percent
    )
    return Verdicts(dominated=dominated, p_rule=p_rule, few_contributors=c.spread < rules.min_units)
