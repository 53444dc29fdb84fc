"""A context compiled once and reused (``compile_context`` + ``prepare_with``/``check_with``) must decide
exactly as ``prepare``/``check`` do, must not be changed by the queries checked against it, and a
query must not be able to set the engine's own node marks through comments.
"""

from __future__ import annotations

import pytest

import policies
from policies import compile_context
from tests.policies import test_adversarial, test_adversarial_leaks, test_adversarial_surface, test_legit
from tests.policies.adversarial_fixture import build_catalog, build_scope

LEGIT_SQL = [case.sql for case in test_legit.CASES]
ATTACK_SQL = [
    a.sql for a in (*test_adversarial.ALL, *test_adversarial_leaks.ALL, *test_adversarial_surface.ALL)
]


@pytest.fixture(scope="module")
def ctx() -> policies.PolicyContext:
    return compile_context(build_scope(), build_catalog())


def test_prepare_with_equals_prepare_for_every_legit_query(ctx: policies.PolicyContext) -> None:
    for sql in LEGIT_SQL:
        assert policies.prepare_with(sql, ctx) == policies.prepare(sql, build_scope(), build_catalog()), sql


def test_check_with_equals_check_for_every_attack(ctx: policies.PolicyContext) -> None:
    refused = 0
    for sql in ATTACK_SQL:
        reused = policies.check_with(sql, ctx)
        assert reused == policies.check(sql, build_scope(), build_catalog()), sql
        refused += not reused.allowed
    assert refused > len(ATTACK_SQL) // 2  # the suites are mostly rejections: the comparison saw findings


def test_reusing_a_context_is_deterministic_and_leaves_it_unchanged(ctx: policies.PolicyContext) -> None:
    filters = {name: str(t.row_filter_condition) for name, t in ctx.tables.items()}
    first = [policies.check_with(sql, ctx) for sql in LEGIT_SQL[:10]]
    again = [policies.check_with(sql, ctx) for sql in reversed(LEGIT_SQL[:10])]
    assert first == list(reversed(again))
    assert {name: str(t.row_filter_condition) for name, t in ctx.tables.items()} == filters
    assert any(t.row_filter_condition is not None for t in ctx.tables.values())


# A comment ``/* sqlglot.meta key=value */`` makes the parser set ``key`` in a node's meta, where the
# engine keeps its own marks (generated nodes, masks, filtered scans, …).
ENGINE_MARKS = [
    "sbx_generated",
    "sbx_mask",
    "sbx_transparent",
    "sbx_family=num",
    "sbx_filtered_scan=citizens",
    "sbx_star",
    "case_sensitive",
]

REFUSED = [
    # an error-message oracle: the cast would print a diagnosis
    (
        "SELECT facility, COUNT(*) AS n FROM visits WHERE CAST(diagnosis{c} AS INT){c} = 1 GROUP BY facility",
        "cast_on_protected",
    ),
    # a denied column released as a group key
    ("SELECT name{c}, COUNT(*) AS n FROM citizens GROUP BY name{c}", "column_denied"),
    # arithmetic on a protected text value
    ("SELECT district, SUM((income + phone{c}){c}) AS s FROM citizens GROUP BY district", "implicit_cast"),
]


@pytest.mark.parametrize("mark", ENGINE_MARKS)
@pytest.mark.parametrize(("template", "rule"), REFUSED, ids=[rule for _, rule in REFUSED])
def test_comments_cannot_set_engine_marks(
    ctx: policies.PolicyContext, template: str, rule: str, mark: str
) -> None:
    plain = policies.check_with(template.format(c=""), ctx)
    assert rule in {f.rule for f in plain.findings}
    marked = policies.check_with(template.format(c=f" /* sqlglot.meta {mark} */"), ctx)
    assert not marked.allowed, marked.rewritten_sql
    assert {f.rule for f in marked.findings} == {f.rule for f in plain.findings}


def test_a_row_filter_that_does_not_parse_refuses_every_query() -> None:
    scope = build_scope()
    grants = dict(scope.datasets)
    key = next(iter(grants))
    broken = scope.model_copy(
        update={"datasets": {**grants, key: grants[key].model_copy(update={"row_filter": "district <>"})}}
    )
    ctx = compile_context(broken, build_catalog())
    assert [f.rule for f in ctx.scope_findings] == ["scope_row_filter"]
    report = policies.check_with("SELECT district, COUNT(*) AS n FROM citizens GROUP BY district", ctx)
    assert not report.allowed
    assert "scope_row_filter" in {f.rule for f in report.findings}


def test_recursive_cte_is_refused_wherever_it_is() -> None:
    # The outer WITH is not recursive; the nested one is.
    sql = (
        "WITH p AS (SELECT person_id FROM citizens) SELECT COUNT(*) AS n FROM p WHERE p.person_id IN "
        "(WITH RECURSIVE r AS (SELECT person_id FROM citizens) SELECT person_id FROM r)"
    )
    report = policies.check(sql, build_scope(), build_catalog())
    assert "recursive_cte" in {f.rule for f in report.findings}
