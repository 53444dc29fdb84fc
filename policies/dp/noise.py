"""Noise from OpenDP over a pre-noise aggregate table: the released table, the exact values and the
noise that was added (for sealing), and the cost it spent.

**Samplers.** Every draw goes through an OpenDP measurement, never through our own arithmetic:

* counts (integers): ``make_laplace`` / ``make_gaussian`` on ``vector_domain(atom_domain(T=int))``,
  which sample the discrete Laplace and discrete Gaussian exactly with integer arithmetic (Canonne,
  Kamath & Steinke 2020);
* sums (floats): the same constructors on ``vector_domain(atom_domain(T=float, nan=False))``; OpenDP
  rounds the input to a lattice of width 2^k and samples discrete noise on it, so the released float
  carries no trace of the textbook floating-point attack (Mironov 2012) nor of precision tricks;
* data-driven group keys: ``make_laplace_threshold`` (Rogers 2023) on the distinct-unit counts.

Each scale is checked with the measurement's own privacy map before anything is drawn.

**Replay.** OpenDP 0.16 draws from the operating system's CSPRNG and offers no way to seed its
samplers, so a replay cannot draw the same noise again. The service seals the ``exact`` table and the
``released`` one (``DpRelease``) in the job's record under the domain's key; the auditor's replay
re-runs the query, checks that it reproduces ``exact`` bit for bit, and that the sealed ``released``
table is what the receipt signed (``noise`` = released − exact, per cell, is kept for the auditor).
The noise never leaves the sealed record, so the operator cannot subtract it.

The draws themselves happen in the ``sample`` callable the caller passes in (``policies`` stays free of
randomness): it receives an OpenDP measurement and its input and returns the measurement's output.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import opendp.prelude as odp
import pandas as pd

from policies.dp.cost import DpCost, NoiseCost, cost_of, threshold_measurement
from policies.dp.errors import DpResultInvalid
from policies.dp.plan import Cell, DpColumn, DpPlan
from policies.model import DifferentialPrivacy

#: Invokes an OpenDP measurement on its input (the only place a draw happens).
Sampler = Callable[[odp.Measurement, Any], Any]

UNITS = "_sbx_units"
#: A pre-noise table whose keys were already chosen by this same partition selection (the cross-domain
#: gateway draws it before any cell is summed, ``executors.crossdomain.placed``): not chosen again, so
#: the selection is spent once. Hidden names are refused in operators' SQL, so only the gateway sets it.
SELECTED = "_sbx_dp_selected"
_MAP_SLACK = 1 + 1e-9  # float rounding in a privacy map: never more than this above the share


@dataclass(frozen=True)
class DpRelease:
    """The noised release and what the service must seal for replay."""

    table: pd.DataFrame  # released: keys and noised values, keys in canonical order
    exact: pd.DataFrame  # the pre-noise values of every noised quantity, same rows
    noise: pd.DataFrame  # released quantity - exact quantity, per cell (sums and counts of AVG too)
    cost: DpCost

    def reasons(self) -> tuple[str, ...]:
        """One line per column for the result's report: what was noised, how, and what was clamped."""
        lines = [
            f"differential privacy: this job spent epsilon {self.cost.epsilon:g}"
            + (f" and delta {self.cost.delta:g}" if self.cost.delta else "")
        ]
        for q in self.cost.quantities:
            what = q.column if q.part == "value" else f"{q.column} ({q.part} part)"
            lines.append(
                f"{what}: {q.mechanism} noise of scale {q.scale:.6g} (OpenDP); 95 % of releases lie within "
                f"±{q.half_width_95:.6g} of the exact value"
            )
        lines.extend(f"clamped: the values of {c} before aggregating" for c in self.cost.clamped)
        if self.cost.selection is not None:
            lines.append(
                f"group keys from the data are released only when a noisy count of distinct units reaches "
                f"{self.cost.selection.threshold} (OpenDP make_laplace_threshold)"
            )
        elif self.cost.public_keys:
            lines.append("every key of the public domain is released, with noise, whether or not it occurs")
        return tuple(lines)


def release_dp(table: pd.DataFrame, plan: DpPlan, dp: DifferentialPrivacy, *, sample: Sampler) -> DpRelease:
    """Noise a pre-noise result (hidden ``_sbx_`` columns included) under the scope's DP settings.

    >>> from policies.dp.plan import DpColumn
    >>> plan = DpPlan((DpColumn("district", Cell.KEY, 0), DpColumn("n", Cell.COUNT_ROWS, 1)),
    ...               rows_per_unit=1, groups_per_unit=1, group_bound_table=None,
    ...               public_keys=(("North", "South", "East"),))
    >>> exact = pd.DataFrame({"district": ["North", "South", "Elsewhere"], "n": [40, 12, 7],
    ...                       "_sbx_units": [40, 12, 7]})
    >>> exact_only = lambda measurement, data: data   # stands in for a draw: adds nothing
    >>> out = release_dp(exact, plan, DifferentialPrivacy(epsilon_per_job=1, budget=2), sample=exact_only)
    >>> out.table.to_dict("list")
    {'district': ['East', 'North', 'South'], 'n': [0, 40, 12]}
    """
    cost = cost_of(plan, dp)
    _require(table, plan)
    rows = _released_rows(table, plan, cost, sample)
    released = rows[[c.name for c in plan.keys]].copy()
    exact_cols: dict[str, Any] = {}
    noise_cols: dict[str, Any] = {}
    noisy: dict[tuple[str, str], np.ndarray] = {}
    for q in cost.quantities:
        column = next(c for c in plan.noised if c.name == q.column)
        values = exact_values(rows, column, q.part, integer=q.integer)
        drawn = np.asarray(sample(_measurement(q, len(values)), values.tolist()))
        key = q.column if q.part == "value" else f"{q.column}.{q.part}"
        exact_cols[key] = values
        noise_cols[key] = drawn - values
        noisy[(q.column, q.part)] = drawn
    for column in plan.noised:
        released[column.name] = post_process(column, noisy)
    order = [c.name for c in plan.columns]
    released = released[order]
    return DpRelease(
        table=released.reset_index(drop=True),
        exact=pd.DataFrame(exact_cols, index=released.index).reset_index(drop=True),
        noise=pd.DataFrame(noise_cols, index=released.index).reset_index(drop=True),
        cost=cost,
    )


def _require(table: pd.DataFrame, plan: DpPlan) -> None:
    needed = [c.name for c in plan.columns if c.cell is not Cell.MEAN]
    for column in plan.noised:
        if column.cell is Cell.MEAN:
            needed.extend(column.mean_parts)
    if plan.selects_keys:
        needed.append(UNITS)
    missing = [name for name in needed if name not in table.columns]
    if missing:
        raise DpResultInvalid(
            f"the pre-noise result lacks {', '.join(missing)}: it was not produced by the DP rewrite"
        )


def _released_rows(table: pd.DataFrame, plan: DpPlan, cost: DpCost, sample: Sampler) -> pd.DataFrame:
    keys = [c.name for c in plan.keys]
    if not keys:
        return table.head(1).reset_index(drop=True)  # a global aggregate: one row, always released
    if plan.public_keys is not None:
        domain = pd.DataFrame(list(itertools.product(*plan.public_keys)), columns=keys)
        # Rows whose keys are outside the domain are left out; domain keys absent from the data get
        # zeros (then noise): whether a key occurs in the data changes nothing about which rows appear.
        try:
            merged = domain.merge(table, on=keys, how="left", validate="one_to_one")
        except ValueError as exc:  # e.g. a domain of text values for a numeric key
            raise DpResultInvalid(
                f"the public group domain of {', '.join(keys)} does not match the released keys' type; "
                "write the values in dp.public_groups as the query releases them"
            ) from exc
        return merged.sort_values(keys, kind="stable").reset_index(drop=True)
    assert cost.selection is not None
    if SELECTED in table.columns:
        return table.sort_values(keys, kind="stable").reset_index(drop=True)
    units_columns = [c for c in table.columns if c == UNITS or str(c).startswith(UNITS + "_")]
    units = table[units_columns].apply(pd.to_numeric, errors="coerce").fillna(0).min(axis=1)
    counts = {str(i): int(u) for i, u in enumerate(units)}
    kept = sample(threshold_measurement(cost.selection.scale, cost.selection.threshold), counts)
    chosen = sorted(int(i) for i in kept)
    rows = table.iloc[chosen]
    return rows.sort_values(keys, kind="stable").reset_index(drop=True)


def exact_values(rows: pd.DataFrame, column: DpColumn, part: str, *, integer: bool) -> np.ndarray:
    """The pre-noise values of one quantity (``value``, or an AVG's ``sum`` or ``count``); a group with
    no rows (NULL) counts as 0."""
    if column.cell is Cell.MEAN:
        sum_name, count_name = column.mean_parts
        source = rows[sum_name] if part == "sum" else rows[count_name]
    else:
        source = rows[column.name]
    numbers = pd.to_numeric(source, errors="coerce").fillna(0)
    if integer:
        return numbers.round().astype("int64").to_numpy()
    return numbers.astype("float64").to_numpy()


def _measurement(q: NoiseCost, size: int) -> odp.Measurement:
    """The OpenDP measurement of one quantity, its scale checked against its own privacy map."""
    odp.enable_features("contrib")
    atom = odp.atom_domain(T=int) if q.integer else odp.atom_domain(T=float, nan=False)
    domain = odp.vector_domain(atom, size=size)
    d_in: float | int = int(q.sensitivity) if q.integer and q.mechanism == "laplace" else q.sensitivity
    if q.mechanism == "laplace":
        metric = odp.l1_distance(T=int if q.integer else float)
        measurement = odp.m.make_laplace(domain, metric, scale=q.scale)
    else:
        measurement = odp.m.make_gaussian(domain, odp.l2_distance(T=float), scale=q.scale)
    spent = float(measurement.map(d_in))  # type: ignore[no-untyped-call]  # untyped in opendp
    if spent > q.budget * _MAP_SLACK:
        raise DpResultInvalid(
            f"{q.column}: OpenDP's privacy map gives {spent} for a share of {q.budget}; refusing to draw"
        )
    return measurement


def post_process(column: DpColumn, noisy: dict[tuple[str, str], np.ndarray]) -> Any:
    """Clip what cannot be (post-processing never costs privacy): counts at 0, means to their bounds."""
    if column.cell is Cell.MEAN:
        assert column.bounds is not None
        total, count = noisy[(column.name, "sum")], noisy[(column.name, "count")]
        mean = total / np.maximum(count, 1)
        return np.clip(mean, column.bounds[0], column.bounds[1])
    values = noisy[(column.name, "value")]
    if column.cell in (Cell.COUNT_ROWS, Cell.COUNT_UNITS):
        return np.maximum(values, 0)
    return values
