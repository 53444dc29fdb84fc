"""What a DP job costs and how noisy it will be, from its plan alone (the dry run's preview).

**How a job's budget is split.** A job spends its scope's ``epsilon_per_job`` (and ``delta`` when it
needs one), no more and no less. The epsilon is divided evenly over the job's *shares*: one per noised
column (an AVG is two: its sum and its count) and, when group keys come from the data, one for choosing
them. Each column's vector over all released groups is one measurement, so by basic sequential
composition (Dwork & Roth 2014, Theorem 3.16) the job is (ε, δ)-DP.

* ``laplace``: each column gets ε/shares; Laplace scale = L1 sensitivity / its ε (pure ε-DP).
* ``gaussian``: the columns' part of (ε, δ) is converted to a zCDP budget
  ρ = (√(ln(1/δ) + ε) − √ln(1/δ))², the inverse of ρ-zCDP ⇒ (ρ + 2√(ρ ln(1/δ)), δ)-DP (Bun & Steinke
  2016, Proposition 1.3); ρ is split evenly (zCDP composes by addition) and each column's standard
  deviation is L2 sensitivity / √(2ρ_i).
* Choosing keys from the data (``make_laplace_threshold``: Rogers 2023) gets one ε share and the whole δ
  under Laplace, half of δ under Gaussian (the other half pays for the conversion above).

Scales and intervals come from closed forms here (the preview must not draw or touch data); the noise
module checks every scale against OpenDP's own privacy map before it draws.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import opendp.prelude as odp
from opendp.accuracy import (
    discrete_laplacian_scale_to_accuracy,
    gaussian_scale_to_accuracy,
    laplacian_scale_to_accuracy,
)

from policies.dp.plan import Cell, DpColumn, DpPlan
from policies.model import DifferentialPrivacy

ALPHA = 0.05  # intervals hold the exact value with probability 1 - ALPHA


@dataclass(frozen=True)
class NoiseCost:
    """One noised quantity: a column, or the sum or count part of an AVG."""

    column: str
    part: str  # value | sum | count
    cell: str
    mechanism: str  # laplace | gaussian
    sensitivity: float  # L1 (laplace) or L2 (gaussian) over all released groups
    budget: float  # its epsilon (laplace) or rho (gaussian)
    scale: float  # Laplace scale b, or Gaussian standard deviation
    half_width_95: float  # the noise stays within ± this with probability 95 %
    integer: bool
    bounds: tuple[float, float] | None


@dataclass(frozen=True)
class KeySelection:
    """Choosing group keys from the data: a key is released when its noisy count of distinct units
    reaches ``threshold`` (OpenDP ``make_laplace_threshold``)."""

    epsilon: float
    delta: float
    scale: float
    threshold: int


@dataclass(frozen=True)
class DpCost:
    """The preview: what a job would spend, and per output column how noisy it would be."""

    epsilon: float
    delta: float
    mechanism: str
    quantities: tuple[NoiseCost, ...]
    selection: KeySelection | None
    public_keys: bool
    clamped: tuple[str, ...]  # "table.column to [low, high]" for every clamped input
    rows_per_unit: int
    groups_per_unit: int

    def of(self, column: str, part: str = "value") -> NoiseCost:
        return next(q for q in self.quantities if q.column == column and q.part == part)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, for the dry run and the result's report."""
        return {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "mechanism": self.mechanism,
            "columns": [asdict(q) for q in self.quantities],
            "key_selection": asdict(self.selection) if self.selection is not None else None,
            "public_keys": self.public_keys,
            "clamped": list(self.clamped),
            "rows_per_unit": self.rows_per_unit,
            "groups_per_unit": self.groups_per_unit,
        }


def cost_of(plan: DpPlan, dp: DifferentialPrivacy) -> DpCost:
    """The preview of a planned job: epsilon, delta, and per noised column its scale and 95 % interval.

    >>> from policies.dp.plan import DpColumn
    >>> plan = DpPlan((DpColumn("district", Cell.KEY, 0), DpColumn("n", Cell.COUNT_ROWS, 1)),
    ...               rows_per_unit=1, groups_per_unit=1, group_bound_table=None, public_keys=(("a",),))
    >>> cost = cost_of(plan, DifferentialPrivacy(epsilon_per_job=0.5, budget=5))
    >>> cost.epsilon, cost.delta, cost.of("n").scale, round(cost.of("n").half_width_95, 2)
    (0.5, 0.0, 2.0, 6.43)
    """
    parts = _parts(plan)
    shares = len(parts) + (1 if plan.selects_keys else 0)
    epsilon = dp.epsilon_per_job
    needs_delta = dp.mechanism == "gaussian" or plan.selects_keys
    delta = dp.delta if needs_delta else 0.0
    selection = None
    if plan.selects_keys:
        selection_delta = delta / 2 if dp.mechanism == "gaussian" and parts else delta
        selection = key_selection(plan, epsilon / shares, selection_delta)
    quantities: list[NoiseCost] = []
    if dp.mechanism == "laplace":
        for column, part, cell in parts:
            quantities.append(_laplace(plan, column, part, cell, epsilon / max(shares, 1)))
    elif parts:
        column_delta = delta / 2 if plan.selects_keys else delta
        rho = zcdp_budget(epsilon * len(parts) / shares, column_delta) / len(parts)
        for column, part, cell in parts:
            quantities.append(_gaussian(plan, column, part, cell, rho))
    clamped = tuple(
        f"{c.source} to [{_num(c.bounds[0])}, {_num(c.bounds[1])}]"
        for c in plan.noised
        if c.bounds is not None and c.source is not None
    )
    return DpCost(
        epsilon=epsilon,
        delta=delta,
        mechanism=dp.mechanism,
        quantities=tuple(quantities),
        selection=selection,
        public_keys=plan.public_keys is not None,
        clamped=tuple(dict.fromkeys(clamped)),
        rows_per_unit=plan.rows_per_unit,
        groups_per_unit=plan.groups_per_unit,
    )


def zcdp_budget(epsilon: float, delta: float) -> float:
    """The largest ρ whose ρ-zCDP guarantee implies (ε, δ)-DP (Bun & Steinke 2016, Prop. 1.3).

    >>> rho = zcdp_budget(1.0, 1e-8)
    >>> round(rho + 2 * math.sqrt(rho * math.log(1 / 1e-8)), 12)
    1.0
    """
    log_term = math.log(1 / delta)
    return (math.sqrt(log_term + epsilon) - math.sqrt(log_term)) ** 2


def key_selection(plan: DpPlan, epsilon: float, delta: float) -> KeySelection:
    """Scale and threshold of the noisy distinct-unit count that decides which data keys are released.

    One unit changes at most G keys' counts (l0 = l1 = G), each by at most 1 (l∞ = 1). The threshold is
    the closed-form Laplace tail bound (which overstates delta a little), raised until OpenDP's own
    privacy map agrees that its delta stays within ``delta`` (usually one map: the preview stays fast).

    >>> plan = DpPlan((), rows_per_unit=1, groups_per_unit=1, group_bound_table=None, public_keys=None)
    >>> selection = key_selection(plan, 0.5, 1e-8)
    >>> selection.scale, selection.threshold
    (2.0, 37)
    """
    g = plan.groups_per_unit
    scale = g / epsilon
    # Closed form start (Laplace tail: delta ≈ g/2 · exp(-(T - 1)/scale)), then OpenDP decides.
    threshold = max(2, math.ceil(1 + scale * math.log(g / (2 * delta))))
    while _threshold_delta(scale, threshold, g) > delta:
        threshold += 1
    return KeySelection(epsilon, delta, scale, threshold)


def threshold_measurement(scale: float, threshold: int) -> odp.Measurement:
    """OpenDP's noisy threshold over a map of key → distinct-unit count (integer discrete Laplace)."""
    odp.enable_features("contrib")
    domain = odp.map_domain(odp.atom_domain(T=str), odp.atom_domain(T=int))
    metric = odp.l01inf_distance(odp.absolute_distance(T=int))
    return odp.m.make_laplace_threshold(domain, metric, scale=scale, threshold=threshold)


def _threshold_delta(scale: float, threshold: int, g: int) -> float:
    _, delta = threshold_measurement(scale, threshold).map((g, g, 1))  # type: ignore[no-untyped-call]  # opendp's map is untyped
    return float(delta)


def _parts(plan: DpPlan) -> list[tuple[DpColumn, str, Cell]]:
    out: list[tuple[DpColumn, str, Cell]] = []
    for column in plan.noised:
        if column.cell is Cell.MEAN:
            out.append((column, "sum", Cell.SUM))
            out.append((column, "count", Cell.COUNT_ROWS))
        else:
            out.append((column, "value", column.cell))
    return out


def _laplace(plan: DpPlan, column: DpColumn, part: str, cell: Cell, epsilon: float) -> NoiseCost:
    sensitivity = plan.sensitivity(cell, column.bounds)
    scale = sensitivity.l1 / epsilon
    if sensitivity.integer:
        half = float(discrete_laplacian_scale_to_accuracy(scale, ALPHA))
    else:
        half = float(laplacian_scale_to_accuracy(scale, ALPHA))
    return NoiseCost(
        column.name,
        part,
        cell.value,
        "laplace",
        sensitivity.l1,
        epsilon,
        scale,
        half,
        sensitivity.integer,
        column.bounds,
    )


def _gaussian(plan: DpPlan, column: DpColumn, part: str, cell: Cell, rho: float) -> NoiseCost:
    sensitivity = plan.sensitivity(cell, column.bounds)
    scale = sensitivity.l2 / math.sqrt(2 * rho)
    # The continuous form: for the discrete Gaussian it differs by less than one unit of the count.
    half = float(gaussian_scale_to_accuracy(scale, ALPHA))
    return NoiseCost(
        column.name,
        part,
        cell.value,
        "gaussian",
        sensitivity.l2,
        rho,
        scale,
        half,
        sensitivity.integer,
        column.bounds,
    )


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
