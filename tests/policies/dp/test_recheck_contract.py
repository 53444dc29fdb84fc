"""The contract with the re-check after rewriting (``postcondition_findings``): a DP-rewritten query
breaks no use-level rule; the only findings are the sampling syntax the DP passes generate (window,
QUALIFY, ``hash``, the ``$sbx_dp_key`` parameter), and every such node carries the generated mark.
Registering the DP passes means letting ``syntax_findings(generated=True)`` accept exactly those marked
nodes; after that, this test's expected set becomes empty."""

from __future__ import annotations

import pytest
from sqlglot import exp

from policies.analysis.levels import Analysis
from policies.analysis.markers import GENERATED_META
from policies.context import compile_context
from policies.dp.examples import dp_catalog, dp_scope
from policies.dp.passes._sample import GENERATED_FUNCTIONS, GENERATED_SYNTAX
from policies.pipeline import postcondition_findings
from tests.policies.dp.pipeline_dp import prepare_dp

SAMPLING_SYNTAX = {
    "after rewriting: QUALIFY is not allowed; use HAVING on aggregates",
    "after rewriting: window functions are not allowed; use GROUP BY with aggregates",
    "after rewriting: window functions are allowed only over the released rows: SUM, COUNT, AVG, MIN or "
    "MAX of an aggregate (e.g. SUM(COUNT(*)) OVER () for a share of the total); use GROUP BY with "
    "aggregates",
    "after rewriting: query parameters are not supported; write literals",
}

QUERIES = [
    "SELECT district, COUNT(*) AS n, AVG(income) AS a FROM citizens GROUP BY district",
    "SELECT c.district, COUNT(*) AS n, SUM(v.cost) AS s FROM citizens c JOIN visits v "
    "ON c.person_id = v.person_id WHERE c.sex = 'F' GROUP BY c.district",
    "WITH t AS (SELECT person_id, ward, cost * 2 AS y FROM visits) "
    "SELECT ward, SUM(y) AS s FROM t GROUP BY ward",
]


@pytest.mark.parametrize("sql", QUERIES)
def test_only_generated_sampling_syntax_is_reported_after_the_dp_rewrite(sql: str) -> None:
    ctx = compile_context(dp_scope(), dp_catalog())
    tree = prepare_dp(sql, ctx).tree
    messages = {f.message for f in postcondition_findings(tree, Analysis(tree, ctx), ctx)}
    functions = {m for m in messages if "is not on the allow-list" in m}
    assert messages - functions <= SAMPLING_SYNTAX
    assert {m.split("function ")[1].split("()")[0] for m in functions} <= {
        "row_number",
        "dense_rank",
        *GENERATED_FUNCTIONS,
    }
    for node in tree.walk():
        sampling = type(node) in GENERATED_SYNTAX or (
            isinstance(node, exp.Anonymous) and node.name.lower() in GENERATED_FUNCTIONS
        )
        if sampling:
            assert node.meta_get(GENERATED_META), node.sql(dialect="duckdb")
