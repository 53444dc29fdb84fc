"""Static checks, one module each; each is ``(analysis, ctx) -> Iterator[Finding]``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from policies.analysis.levels import Analysis
from policies.checks.allowed_syntax import allowed_syntax
from policies.checks.column_uses import column_uses
from policies.checks.error_containment import error_containment
from policies.checks.join_conditions import join_conditions
from policies.checks.known_columns import known_columns
from policies.checks.only_known_tables import only_known_tables
from policies.checks.query_shape import query_shape
from policies.checks.type_safety import type_safety
from policies.context import PolicyContext
from policies.dp.plan import dp_query_shape
from policies.findings import Finding

Check = Callable[[Analysis, PolicyContext], Iterator[Finding]]

#: Every check, in the order their findings are reported.
CHECKS: tuple[Check, ...] = (
    allowed_syntax,
    only_known_tables,
    known_columns,
    query_shape,
    column_uses,
    join_conditions,
    type_safety,
    error_containment,
    dp_query_shape,
)

__all__ = ["CHECKS", "Check"]
