"""Rewrite passes, one module each; each is ``(tree, analysis, ctx) -> tree`` and edits the tree in place."""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.context import PolicyContext
from policies.passes.add_unit_counts import add_unit_counts
from policies.passes.apply_masks import apply_masks
from policies.passes.apply_row_filters import apply_row_filters
from policies.passes.cap_rows import cap_rows
from policies.passes.contain_errors import contain_errors
from policies.passes.guard_arithmetic import guard_arithmetic

Rewrite = Callable[[exp.Expr, Analysis, PolicyContext], exp.Expr]

#: The passes, in the order they run. Row filters come after the unit counts because they replace
#: table scans by subqueries; the unit columns pass through those unchanged. Error containment
#: comes after every pass that adds expressions, so that it contains theirs too.
REWRITES: tuple[Rewrite, ...] = (
    apply_masks,
    guard_arithmetic,
    add_unit_counts,
    apply_row_filters,
    contain_errors,
    cap_rows,
)

__all__ = ["REWRITES", "Rewrite"]
