"""Contribution-bounding passes for differential privacy, one module each, ``(tree, analysis, ctx) ->
tree`` like ``policies.passes``; every one is a no-op unless the scope has ``disclosure.dp``.

Order (after the existing passes they depend on): ``clamp_values`` and ``expose_mean_parts`` after
``apply_masks`` and ``guard_arithmetic`` (they clamp the argument as the query computes it);
``clamp_unit_contributions``, ``bound_groups_per_unit`` then ``bound_rows_per_unit`` after
``apply_row_filters`` (they wrap the filtered scans, so a unit's allowance is spent only on rows the
scope lets the query see); ``clamp_unit_contributions`` first, as the others leave its scan alone.
"""

from __future__ import annotations

from policies.dp.passes.bound_groups_per_unit import bound_groups_per_unit
from policies.dp.passes.bound_rows_per_unit import bound_rows_per_unit
from policies.dp.passes.clamp_unit_contributions import clamp_unit_contributions
from policies.dp.passes.clamp_values import clamp_values
from policies.dp.passes.expose_mean_parts import expose_mean_parts

__all__ = [
    "bound_groups_per_unit",
    "bound_rows_per_unit",
    "clamp_unit_contributions",
    "clamp_values",
    "expose_mean_parts",
]
