"""Rewrite passes, one module each; each is ``(tree, analysis, ctx) -> tree`` and edits the tree in place."""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.context import PolicyContext
from policies.dp.passes import (
    bound_groups_per_unit,
    bound_rows_per_unit,
    clamp_unit_contributions,
    clamp_values,
    expose_mean_parts,
)
from policies.passes.add_unit_counts import add_unit_counts
from policies.passes.apply_masks import apply_masks
from policies.passes.apply_row_filters import apply_row_filters
from policies.passes.cap_rows import cap_rows
from policies.passes.contain_errors import contain_errors
from policies.passes.guard_arithmetic import guard_arithmetic
from policies.passes.merge_small_rows import merge_small_rows
from policies.passes.neutralise_small_subsets import neutralise_small_subsets
from policies.passes.suppress_small_rows import suppress_small_rows

Rewrite = Callable[[exp.Expr, Analysis, PolicyContext], exp.Expr]

#: The passes, in the order they run. The k rule (``suppress_small_rows``) comes right after the unit
#: counts it reads, and before ``cap_rows``: the threshold is a HAVING of every final SELECT, so ORDER
#: BY, LIMIT, OFFSET, window functions and the cap only ever see rows that may be released (a pass that
#: adds another hidden column to the final SELECTs may run on either side of it: only ``_sbx_units*``
#: columns count for k). ``neutralise_small_subsets`` reads the unit slots from the unit counts, so
#: it runs after them; it withholds nothing, it only rewrites cells. Row filters come after the unit
#: counts because they replace table scans by subqueries; the unit columns and the HAVING pass through
#: those unchanged. Error containment comes after every pass that adds expressions, so that it
#: contains theirs too. ``merge_small_rows`` (remainder scopes only) copies each grouped SELECT's
#: sources, keys and unit counts into a remainder branch, so it runs after row filters and error
#: containment (the copies carry both, exactly as the original) and before ``cap_rows``, whose LIMIT
#: must apply to the whole union.
#:
#: The differential-privacy passes (``policies.dp.passes``, no-ops without ``disclosure.dp``) clamp and
#: split the aggregates once masks and guards are in place, and bound each unit's rows and groups around
#: the filtered scans. Under DP the k passes (``neutralise_small_subsets``, ``suppress_small_rows``,
#: ``merge_small_rows``) and ``cap_rows`` are no-ops instead: which keys are released is DP partition
#: selection's decision (or the public domain's) and the cap applies after the noise, so no exact count
#: decides which rows leave.
REWRITES: tuple[Rewrite, ...] = (
    apply_masks,
    guard_arithmetic,
    clamp_values,
    expose_mean_parts,
    add_unit_counts,
    neutralise_small_subsets,
    suppress_small_rows,
    apply_row_filters,
    clamp_unit_contributions,
    bound_groups_per_unit,
    bound_rows_per_unit,
    contain_errors,
    merge_small_rows,
    cap_rows,
)

__all__ = ["REWRITES", "Rewrite"]
