"""The analysis and the checks decide some questions from the one walk of the tree instead of walking
again (the scope of each column, nested aggregates, whether a check can find anything at all). Each
shortcut must give exactly the answer of the longer way, on every query of the suites, before and
after the rewrite; and the re-check after rewriting must see every change a pass makes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlglot import exp

from policies import compile_context
from policies.analysis.levels import Analysis
from policies.analysis.scopes import walk_same_query
from policies.analysis.syntax import AGGREGATES
from policies.checks.error_containment import any_suspect, error_containment
from policies.checks.error_containment import findings_in_order as uncontained_in_order
from policies.checks.known_columns import findings_in_order as unknown_in_order
from policies.checks.known_columns import known_columns
from policies.context import PolicyContext
from policies.examples import example_catalog, example_scope
from policies.passes import REWRITES
from policies.pipeline import parse_and_qualify, postcondition_findings, run_checks
from tests.policies import test_adversarial, test_adversarial_leaks, test_adversarial_surface, test_legit
from tests.policies.adversarial_fixture import build_catalog, build_scope
from tests.policies.golden import GOLDEN_DIR, load_cases

FIXTURE_SQL = [case.sql for case in test_legit.CASES] + [
    a.sql for a in (*test_adversarial.ALL, *test_adversarial_leaks.ALL, *test_adversarial_surface.ALL)
]
#: Queries nested in expressions, where the scopes need the search of every SELECT's expressions.
NESTED_SQL = [
    "SELECT district, COUNT(*) AS n FROM citizens c WHERE c.person_id IN (SELECT v.person_id FROM visits v) "
    "GROUP BY district",
    "SELECT district, COUNT(*) AS n FROM citizens c WHERE EXISTS (SELECT 1 FROM visits v "
    "WHERE v.person_id = c.person_id) GROUP BY district",
    "SELECT district, (SELECT COUNT(*) FROM visits) AS n FROM citizens GROUP BY district",
    "SELECT district, SUM(income) / (SELECT COUNT(*) FROM visits) AS x FROM citizens GROUP BY district",
    "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district "
    "HAVING COUNT(*) > (SELECT COUNT(*) FROM visits)",
    "WITH a AS (SELECT person_id, district FROM citizens WHERE person_id IN (SELECT person_id FROM visits)) "
    "SELECT district, COUNT(*) AS n FROM a GROUP BY district",
    "SELECT district, SUM(SUM(income)) AS s FROM citizens GROUP BY district",
    "SELECT district, CAST(SUM(income) AS INT) AS s, COUNT(*) % 2 AS m FROM citizens GROUP BY district "
    "ORDER BY CAST(COUNT(*) AS INT)",
    "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district ORDER BY CAST(COUNT(*) AS INT)",
    "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district HAVING CAST(COUNT(*) AS INT) > 3",
    "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district ORDER BY n, x.y",
    "SELECT d, COUNT(*) AS n FROM (SELECT district AS d FROM citizens UNION ALL "
    "SELECT facility AS d FROM visits ORDER BY d) AS u GROUP BY d",
    "SELECT district AS d, COUNT(*) AS n FROM citizens GROUP BY district HAVING n > 3 ORDER BY d",
]
KINDS = (exp.Filter, exp.Limit, exp.Offset, exp.SetOperation, exp.With, exp.Query, exp.Func, exp.Cast)


def _fixture_ctx() -> PolicyContext:
    return compile_context(build_scope(), build_catalog())


def _example_ctx() -> PolicyContext:
    return compile_context(example_scope(), example_catalog())


def _corpus() -> Iterator[tuple[str, PolicyContext]]:
    fixture, example = _fixture_ctx(), _example_ctx()
    for sql in FIXTURE_SQL + NESTED_SQL:
        yield sql, fixture
    for path in sorted(GOLDEN_DIR.glob("*.sql")):
        for case in load_cases(path):
            yield case.sql, example


def _analyses(sql: str, ctx: PolicyContext) -> Iterator[Analysis]:
    """The analysis of the query and, when it passes the checks, of its rewritten tree."""
    tree, _ = parse_and_qualify(sql, ctx)
    if tree is None:
        return
    analysis = Analysis(tree, ctx)
    yield analysis
    if run_checks(analysis, ctx):
        return
    for rewrite in REWRITES:
        tree = rewrite(tree, analysis, ctx)
    yield Analysis(tree, ctx, generated=True, facts_of=analysis)


def _scopes_by_search(analysis: Analysis) -> list[tuple[int, str, int | None]]:
    """The scopes as found with the search of every SELECT's expressions (the longer way)."""
    searched = Analysis(analysis.tree, analysis.ctx)
    searched.scopes.clear()
    searched._by_select.clear()
    searched._search_expressions = True
    searched._walk(analysis.tree, {}, None, "top")
    return _describe(searched)


def _describe(analysis: Analysis) -> list[tuple[int, str, int | None]]:
    return [(id(s.select), s.role, id(s.parent.select) if s.parent else None) for s in analysis.scopes]


CASES = list(_corpus())


def test_the_corpus_holds_nested_queries_rewritten_trees_and_findings() -> None:
    analyses = [a for sql, ctx in CASES for a in _analyses(sql, ctx)]
    assert sum(a.generated for a in analyses) > 50
    assert sum(len(a.scopes) > 1 for a in analyses) > 50
    assert sum(bool(list(unknown_in_order(a))) for a in analyses) > 10
    assert sum(bool(list(uncontained_in_order(a))) for a in analyses) > 5


@pytest.mark.parametrize(("sql", "ctx"), CASES, ids=[f"q{i}" for i in range(len(CASES))])
def test_shortcuts_agree_with_the_longer_way(sql: str, ctx: PolicyContext) -> None:
    for analysis in _analyses(sql, ctx):
        assert _describe(analysis) == _scopes_by_search(analysis), sql

        expected = {
            (id(node), id(scope))
            for scope in analysis.scopes
            for node in scope.nodes
            if isinstance(node, exp.Column)
        }
        found = [(id(node), id(scope)) for node, scope in analysis.scope_columns()]
        assert len(found) == len(expected), sql
        assert set(found) == expected, sql

        for func in analysis.aggregates():
            nested = any(
                type(n) in AGGREGATES for arg in func.iter_expressions() for n in walk_same_query(arg)
            )
            assert analysis.holds_aggregate(func) == nested, (sql, func.sql())

        for kind in KINDS:
            assert analysis.has_any(kind) == any(isinstance(n, kind) for n in analysis.nodes), (sql, kind)

        in_order = list(unknown_in_order(analysis))
        assert list(known_columns(analysis, ctx)) == in_order, sql
        above = list(uncontained_in_order(analysis))
        assert any_suspect(analysis) == bool(above), sql
        assert list(error_containment(analysis, ctx)) == above, sql


def _rewritten(sql: str, ctx: PolicyContext) -> tuple[exp.Expr, Analysis]:
    tree, _ = parse_and_qualify(sql, ctx)
    assert tree is not None
    analysis = Analysis(tree, ctx)
    assert run_checks(analysis, ctx) == []
    for rewrite in REWRITES:
        tree = rewrite(tree, analysis, ctx)
    return tree, analysis


TYPICAL = (
    "SELECT district, sex, birth_date, COUNT(*) AS n, SUM(income) AS total FROM citizens "
    "WHERE diagnosis = 'J10' GROUP BY district, sex, birth_date"
)


def test_the_recheck_passes_the_engines_own_rewrite() -> None:
    ctx = _example_ctx()
    tree, analysis = _rewritten(TYPICAL, ctx)
    assert postcondition_findings(tree, analysis, ctx) == []


def test_the_recheck_sees_a_column_a_pass_renamed_in_place() -> None:
    # The node existed before rewriting and was analysed then: the re-check must judge it afresh.
    ctx = _example_ctx()
    tree, analysis = _rewritten(TYPICAL, ctx)
    sex = next(c for c in tree.find_all(exp.Column) if c.name == "sex" and c.find_ancestor(exp.Group))
    sex.set("this", exp.to_identifier("national_id", quoted=True))
    rules = {f.rule for f in postcondition_findings(tree, analysis, ctx)}
    assert rules == {"rewrite_postcondition"}
    assert any("national_id" in f.message for f in postcondition_findings(tree, analysis, ctx))


def test_the_recheck_sees_an_unmasked_aggregate_column_released() -> None:
    ctx = _example_ctx()
    tree, analysis = _rewritten(TYPICAL, ctx)
    assert isinstance(tree, exp.Select)
    tree.append("expressions", exp.column("income", "citizens", quoted=True))
    findings = postcondition_findings(tree, analysis, ctx)
    assert {f.rule for f in findings} == {"rewrite_postcondition"}
    assert any("income" in f.message for f in findings)


def test_the_recheck_sees_a_scan_replaced_by_a_table_function() -> None:
    ctx = _example_ctx()
    tree, analysis = _rewritten(TYPICAL, ctx)
    scan = next(s for s in tree.find_all(exp.Subquery) if s.find(exp.Table) is not None)
    table = scan.find(exp.Table)
    assert table is not None
    table.replace(exp.Table(this=exp.Anonymous(this="read_csv", expressions=[exp.Literal.string("/etc/x")])))
    messages = [f.message for f in postcondition_findings(tree, analysis, ctx)]
    assert any("read_csv" in m for m in messages), messages
