"""The contract with the re-check after rewriting (``postcondition_findings``): a DP-rewritten query
breaks no rule; the sampling syntax the DP passes generate (window, QUALIFY, ``hash``, the
``$sbx_dp_key`` parameter) carries the generated mark.
With the DP passes registered, ``syntax_findings(generated=True)`` accepts exactly those marked nodes,
so the re-check finds nothing; an unmarked one would still be refused (last test)."""

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
    assert postcondition_findings(tree, Analysis(tree, ctx), ctx) == []
    for node in tree.walk():
        sampling = type(node) in GENERATED_SYNTAX or (
            isinstance(node, exp.Anonymous) and node.name.lower() in GENERATED_FUNCTIONS
        )
        if sampling:
            assert node.meta_get(GENERATED_META), node.sql(dialect="duckdb")


def test_the_same_sampling_syntax_unmarked_is_refused_after_rewriting() -> None:
    """An operator's own keyed sample (ROW_NUMBER, QUALIFY, a parameter) gains nothing from the re-check."""
    ctx = compile_context(dp_scope(), dp_catalog())
    tree = prepare_dp(QUERIES[0], ctx).tree
    for node in tree.walk():
        if node.meta:
            node.meta.pop(GENERATED_META, None)
    rules = {f.message for f in postcondition_findings(tree, Analysis(tree, ctx), ctx)}
    assert "after rewriting: query parameters are not supported; write literals" in rules


UNGROUPED = "SELECT COUNT(*) AS n, SUM(cost) AS s, AVG(cost) AS a FROM visits WHERE ward = 'A'"


def test_the_clamped_per_person_contributions_pass_the_recheck() -> None:
    """``clamp_unit_contributions``' per-person GROUP BY on the unit and its aggregates over it."""
    ctx = compile_context(dp_scope(), dp_catalog())
    tree = prepare_dp(UNGROUPED, ctx).tree
    assert "_sbx_dp_c0" in tree.sql(dialect="duckdb")
    assert postcondition_findings(tree, Analysis(tree, ctx), ctx) == []


def test_the_same_per_person_aggregate_unmarked_is_refused_after_rewriting() -> None:
    """Without the engine's mark, grouping by the unit and aggregating below the top are refused."""
    ctx = compile_context(dp_scope(), dp_catalog())
    tree = prepare_dp(UNGROUPED, ctx).tree
    for node in tree.walk():
        if node.meta:
            node.meta.pop(GENERATED_META, None)
    rules = {f.message for f in postcondition_findings(tree, Analysis(tree, ctx), ctx)}
    assert any("is a join key and can never be grouped on" in r for r in rules), rules
    assert any("aggregate only in the outermost query" in r for r in rules), rules


def test_an_operators_own_per_person_aggregate_is_refused() -> None:
    """The operator cannot write the engine's form: it is refused before any rewrite."""
    from policies.errors import PolicyViolation

    ctx = compile_context(dp_scope(), dp_catalog())
    with pytest.raises(PolicyViolation):
        prepare_dp(
            "SELECT SUM(c) AS n FROM (SELECT person_id, CASE WHEN COUNT(*) > 3 THEN 3 ELSE COUNT(*) END AS c "
            "FROM visits GROUP BY person_id) AS t",
            ctx,
        )


def test_the_first_row_flag_resolves_only_where_the_engine_marked_it() -> None:
    """The groups sample's flag (``_sbx_dp_first``) is a column of the sampled scan for the re-check only
    as the engine wrote it; unmarked, it is an unknown column of the table."""
    ctx = compile_context(dp_scope(), dp_catalog())
    tree = prepare_dp("SELECT ward, COUNT(*) AS n FROM visits GROUP BY ward", ctx).tree
    assert 'COUNT("visits"."_sbx_dp_first")' in tree.sql(dialect="duckdb")
    assert postcondition_findings(tree, Analysis(tree, ctx), ctx) == []
    for node in tree.walk():
        if node.meta:
            node.meta.pop(GENERATED_META, None)
    rules = {f.message for f in postcondition_findings(tree, Analysis(tree, ctx), ctx)}
    assert any("'_sbx_dp_first' does not exist" in r for r in rules), rules
