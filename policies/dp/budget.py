"""Budget arithmetic of differential privacy, pure: what a job is charged, against which ledger entry,
and whether it fits.

**Lineage.** Every version of a scope over the same datasets shares one budget: the ledger is keyed by
the scope's *name* and its sorted dataset keys, never by its version id. A new version, a revocation
and a re-grant therefore never give budget back; a scope renamed or re-pointed at other datasets is a
new lineage, which is an approval decision the officers see. Budgets are kept per grantee (the
operator who runs the job), so one operator cannot spend another's.

**Units.** Amounts are stored as integers (epsilon in nano-units, delta in 1e-18 units) so that sums and
refunds are exact, and two gateways adding and subtracting never drift. A charge is rounded up and a
limit rounded down: rounding can only refuse, never overspend.

**Refresh.** With ``refresh: none`` there is one period for ever. With ``every_days: d`` the period is
``days since 1970-01-01 // d``: each period's ledger entry starts at zero. Changing ``every_days`` in a
new version moves the period boundaries; the approving officers decide that (docs/writing-a-scope.md).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from policies.dp.cost import DpCost
from policies.dp.errors import DpError
from policies.model import DifferentialPrivacy, PeriodicRefresh, Scope

EPSILON_UNIT = 1e-9
DELTA_UNIT = 1e-18
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class LedgerKey:
    """One ledger entry: a scope lineage, a grantee, a refresh period."""

    lineage: str  # sha256 of the scope name and its sorted dataset keys
    scope_name: str
    datasets: tuple[str, ...]
    grantee: str
    period: int


@dataclass(frozen=True)
class Amount:
    """Epsilon and delta in integer units."""

    epsilon: int
    delta: int

    def fits(self, spent: Amount, limit: Amount) -> bool:
        """Whether charging ``self`` on top of ``spent`` stays within ``limit``.

        >>> limit = Amount(10, 0)
        >>> Amount(5, 0).fits(Amount(5, 0), limit), Amount(6, 0).fits(Amount(5, 0), limit)
        (True, False)
        """
        return spent.epsilon + self.epsilon <= limit.epsilon and spent.delta + self.delta <= limit.delta

    def as_floats(self) -> dict[str, float]:
        return {"epsilon": self.epsilon * EPSILON_UNIT, "delta": self.delta * DELTA_UNIT}


def lineage_of(scope: Scope) -> str:
    """The budget lineage of a scope: the same for every version over the same datasets.

    >>> from policies.dp.examples import dp_scope, DP_SCOPE
    >>> lineage_of(dp_scope()) == lineage_of(dp_scope(DP_SCOPE.replace("Seasonal", "Yearly")))
    True
    """
    return hashlib.sha256(_lineage_json(scope).encode("utf-8")).hexdigest()


def ledger_key(scope: Scope, grantee: str, today: date) -> LedgerKey:
    """The ledger entry a job of ``grantee`` under ``scope`` spends from on ``today``.

    >>> from policies.dp.examples import dp_scope
    >>> key = ledger_key(dp_scope(), "alice", date(2026, 3, 1))
    >>> key.scope_name, key.datasets, key.grantee, key.period
    ('flu-study-dp', ('health-bureau/citizens', 'health-bureau/visits'), 'alice', 0)
    """
    dp = _settings(scope)
    period = 0
    if isinstance(dp.refresh, PeriodicRefresh):
        period = (today - _EPOCH).days // dp.refresh.every_days
    return LedgerKey(lineage_of(scope), scope.name, tuple(sorted(scope.datasets)), grantee, period)


def refreshes(dp: DifferentialPrivacy, today: date) -> str:
    """When the budget of the period holding ``today`` starts again, in words.

    >>> from policies.model import PeriodicRefresh
    >>> refreshes(DifferentialPrivacy(epsilon_per_job=1, budget=2), date(2026, 3, 1))
    'it never refreshes'
    >>> monthly = PeriodicRefresh(every_days=30, risk_accepted="the register is replaced every month")
    >>> dp = DifferentialPrivacy(epsilon_per_job=1, budget=2, refresh=monthly)
    >>> refreshes(dp, date(2026, 3, 1))
    'it refreshes on 2026-03-08'
    """
    if not isinstance(dp.refresh, PeriodicRefresh):
        return "it never refreshes"
    every = dp.refresh.every_days
    period = (today - _EPOCH).days // every
    return f"it refreshes on {(_EPOCH + timedelta(days=(period + 1) * every)).isoformat()}"


def limit_of(dp: DifferentialPrivacy) -> Amount:
    """The lineage's budget per grantee and period, rounded down to whole units.

    >>> limit_of(DifferentialPrivacy(epsilon_per_job=0.5, budget=5, delta=1e-8))  # 10 jobs' delta
    Amount(epsilon=5000000000, delta=100000000000)
    """
    return Amount(_units(dp.budget, EPSILON_UNIT, math.floor), _units(dp.total_delta, DELTA_UNIT, math.floor))


def charge_of(cost: DpCost) -> Amount:
    """What one job is charged: the epsilon and delta of its cost preview, rounded up.

    >>> from policies.dp.cost import DpCost
    >>> cost = DpCost(0.5, 1e-8, "laplace", (), None, True, (), 1, 1)
    >>> charge_of(cost)
    Amount(epsilon=500000000, delta=10000000000)
    """
    return Amount(_units(cost.epsilon, EPSILON_UNIT, math.ceil), _units(cost.delta, DELTA_UNIT, math.ceil))


def remaining(spent: Amount, limit: Amount) -> Amount:
    """What is left, never below zero.

    >>> remaining(Amount(7, 0), Amount(5, 3))
    Amount(epsilon=0, delta=3)
    """
    return Amount(max(0, limit.epsilon - spent.epsilon), max(0, limit.delta - spent.delta))


def _units(value: float, unit: float, direction: Callable[[float], int]) -> int:
    """``value`` in whole ``unit``s: a quotient within float noise of an integer is that integer
    (1e-7 / 1e-18 is 99999999999.99998), anything else is rounded in ``direction``."""
    exact = value / unit
    nearest = round(exact)
    if abs(exact - nearest) <= 1e-9 * max(1.0, abs(exact)):
        return nearest
    return direction(exact)


def _settings(scope: Scope) -> DifferentialPrivacy:
    dp = scope.disclosure.dp
    if dp is None:
        raise DpError(f"scope {scope.name!r} has no differential privacy settings: nothing to charge")
    return dp


def _lineage_json(scope: Scope) -> str:
    return json.dumps([scope.name, sorted(scope.datasets)], separators=(",", ":"))
