"""Refuse every node outside the allow-lists (functions, windows, positional refs, reserved names)."""

from __future__ import annotations

from collections.abc import Iterator

from policies.analysis.levels import Analysis
from policies.analysis.syntax import syntax_findings
from policies.context import PolicyContext
from policies.findings import Finding


def allowed_syntax(analysis: Analysis, ctx: PolicyContext) -> Iterator[Finding]:
    """Findings for syntax and functions that are not on the allow-lists."""
    yield from syntax_findings(analysis.tree, generated=analysis.generated, nodes=analysis.nodes)
