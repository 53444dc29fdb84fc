"""A DP scope over the documentation's citizens table and a visits table (for doctests and tests)."""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.catalog import Catalog, ColumnSchema, DatasetSchema, TableSchema
from policies.context import PolicyContext, compile_context
from policies.examples import example_catalog
from policies.model import Scope, load_scope

DP_SCOPE = """
scope: flu-study-dp
purpose: "Seasonal influenza burden by district, differentially private"
grantees: [operator:alice]
valid: {from: 2026-01-01, until: 2026-12-31}
datasets:
  health-bureau/citizens:
    row_filter: "district <> 'Military Zone'"
    columns:
      person_id:   {use: join_key}
      phone:       {mask: {partial: {keep_last: 2}}, use: group}
      sex:         {use: group}
      district:    {use: group}
      income:      {use: aggregate, functions: [sum, avg, count], bounds: [0, 100000]}
      diagnosis:   {use: filter}
  health-bureau/visits:
    columns:
      person_id:   {use: join_key}
      ward:        {use: group}
      cost:        {use: aggregate, bounds: [0, 500]}
disclosure:
  min_units: 10
  max_rows: 100
  dp:
    epsilon_per_job: 1.0
    budget: 10.0
    delta: 1.0e-8
    max_rows_per_unit: {citizens: 2, visits: 3}
    max_groups_per_unit: 1
    public_groups:
      district: [North, South, East, West]
"""


def dp_catalog() -> Catalog:
    """The example catalog plus a visits table whose unit is also ``person_id``."""
    visits = TableSchema(
        name="visits",
        unit="person_id",
        columns=(
            ColumnSchema(name="person_id", type="BIGINT", cls="identifying"),
            ColumnSchema(name="ward", type="VARCHAR", cls="internal"),
            ColumnSchema(name="cost", type="DOUBLE", cls="sensitive"),
        ),
        row_count=3000,
    )
    base = example_catalog()
    return Catalog(
        datasets=(*base.datasets, DatasetSchema(domain="health-bureau", name="visits", tables=(visits,)))
    )


def dp_scope(text: str = DP_SCOPE) -> Scope:
    return load_scope(text)


def dp_context(sql: str, scope: Scope | None = None) -> tuple[PolicyContext, exp.Expr, Analysis]:
    """Context, qualified tree and analysis of ``sql`` under the DP scope (for doctests)."""
    from policies.pipeline import parse_and_qualify

    ctx = compile_context(scope or dp_scope(), dp_catalog())
    if ctx.scope_findings:
        raise AssertionError(ctx.scope_findings)
    tree, findings = parse_and_qualify(sql, ctx)
    if tree is None:
        raise AssertionError(findings)
    return ctx, tree, Analysis(tree, ctx)
