"""The documentation's example: a citizens table and the scope of docs/design.md §4 (used by the doctests)."""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.catalog import Catalog, ColumnSchema, DatasetSchema, TableSchema
from policies.context import PolicyContext, build_context
from policies.model import Scope, load_scope

EXAMPLE_SCOPE = """
scope: flu-study-2026
purpose: "Seasonal influenza burden by district"
grantees: [operator:alice, group:cdc-analysts]
valid: {from: 2026-01-01, until: 2026-12-31}
datasets:
  health-bureau/citizens:
    unit: person_id
    row_filter: "district <> 'Military Zone'"
    columns:
      person_id:   {use: join_key}
      national_id: {use: deny}
      name:        {use: deny}
      phone:       {mask: {partial: {keep_last: 2}}, use: group}
      birth_date:  {mask: {generalize: year}, use: group}
      sex:         {use: group}
      district:    {use: group}
      income:      {use: aggregate, functions: [sum, avg, count], bounds: [0, 1000000]}
      diagnosis:   {use: filter}
disclosure:
  min_units: 10
  suppression: drop
  rounding: none
  max_rows: 100
python: {allowed: true, modules: [pandas, numpy, math, statistics]}
approvals: {required: 2}
"""


def example_catalog() -> Catalog:
    """The catalog the example scope refers to."""
    columns = (
        ColumnSchema(name="person_id", type="BIGINT", cls="identifying"),
        ColumnSchema(name="national_id", type="VARCHAR", cls="identifying"),
        ColumnSchema(name="name", type="VARCHAR", cls="identifying"),
        ColumnSchema(name="phone", type="VARCHAR", cls="identifying"),
        ColumnSchema(name="birth_date", type="DATE", cls="sensitive"),
        ColumnSchema(name="sex", type="VARCHAR", cls="internal"),
        ColumnSchema(name="district", type="VARCHAR", cls="internal"),
        ColumnSchema(name="income", type="BIGINT", cls="sensitive"),
        ColumnSchema(name="diagnosis", type="VARCHAR", cls="sensitive"),
    )
    table = TableSchema(name="citizens", unit="person_id", columns=columns, row_count=1000)
    return Catalog(datasets=(DatasetSchema(domain="health-bureau", name="citizens", tables=(table,)),))


def example_scope() -> Scope:
    return load_scope(EXAMPLE_SCOPE)


def example_context(sql: str) -> tuple[PolicyContext, exp.Expr, Analysis]:
    """Context, qualified tree and analysis of ``sql`` under the example scope (for pass doctests)."""
    from policies.pipeline import parse_and_qualify

    ctx, _ = build_context(example_scope(), example_catalog())
    tree, findings = parse_and_qualify(sql, ctx)
    if tree is None:
        raise AssertionError(findings)
    return ctx, tree, Analysis(tree, ctx)
