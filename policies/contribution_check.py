"""The dominance and p% rules on a SQL result's rows (pure), under a scope with ``disclosure.dominance``.

The sandbox hands, per row and per sum or mean, the contribution summary of
``policies.cell_rules.Contributions`` (``_sbx_contrib_<i>``, from ``collect_contributions``); this
check applies ``policies.cell_rules.judge`` with the scope's thresholds to the rows the output check
would release and says which to withhold, with the rule that decided. Like the ledger's, a reason never
says a value nor how many units: only which rule and what to change.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from policies.cell_rules import TOP, CellRules, Contributions, judge
from policies.cohorts.cells import releasable_positions
from policies.model import Disclosure

CONTRIBUTIONS = "_sbx_contrib_"

DOMINATED = (
    "withheld: a sum or mean of this row is dominated by its {n} largest contributors (more than "
    "{k:.0%} of it, or of its spread around the row's typical value: the dominance rule), so it would "
    "reveal their values; widen the group or aggregate a value that no few people dominate"
)
P_RULE = (
    "withheld: a sum or mean of this row fails the p% rule (p={p:g}): its second-largest contributor "
    "could estimate the largest within {p:g}%; widen the group or aggregate another value"
)
FEW = (
    "withheld: in a sum or mean of this row fewer than {k} units' values differ from the row's typical "
    "value (none included), so it would describe those few, or whether any exists; aggregate a value "
    "that varies across at least {k} units (for a constant, count rows instead)"
)


def contribution_withheld(table: pd.DataFrame, disclosure: Disclosure) -> dict[int, str]:
    """The rows (positions in ``table``) that fail a rule, with the reason; none without the setting.

    >>> from policies.model import Dominance
    >>> from policies.cell_rules import contributions
    >>> groups, units = np.zeros(12, np.int64), np.arange(12)
    >>> dominated = contributions(groups, units, np.r_[1e6, np.arange(11.0)], n_groups=1).to_rows()[0]
    >>> even = contributions(groups, units, np.arange(12.0) + 100, n_groups=1).to_rows()[0]
    >>> rows = pd.DataFrame({"_sbx_units": [12, 12], "_sbx_contrib_0": [list(dominated), list(even)]})
    >>> out = contribution_withheld(rows, Disclosure(dominance=Dominance()))
    >>> list(out), out[0].split(":")[0]
    ([0], 'withheld')
    """
    rule = disclosure.dominance
    names = [str(c) for c in table.columns if str(c).startswith(CONTRIBUTIONS)]
    if rule is None or not names:
        return {}
    rules = CellRules(
        min_units=disclosure.min_units, dominance_n=rule.n, dominance_k=rule.k, p_percent=rule.p_percent
    )
    out: dict[int, str] = {}
    positions = releasable_positions(table, disclosure)
    for name in names:
        present = [p for p in positions if _is_summary(table[name].iloc[p])]
        if not present:
            continue
        summaries = np.array([list(table[name].iloc[p]) for p in present], dtype=np.float64)
        verdicts = judge(Contributions.from_rows(summaries), rules)
        for i, position in enumerate(present):
            if position in out:
                continue
            if verdicts.dominated[i]:
                out[position] = DOMINATED.format(n=rule.n, k=rule.k)
            elif verdicts.p_rule[i]:
                out[position] = P_RULE.format(p=rule.p_percent)
            elif verdicts.few_contributors[i]:
                out[position] = FEW.format(k=disclosure.min_units)
    return out


def _is_summary(value: object) -> bool:
    """A row's summary: a list of ``3 + 2 * TOP`` numbers (NULL where the row's branch released none)."""
    return value is not None and not isinstance(value, float) and len(value) == 3 + 2 * TOP  # type: ignore[arg-type]
