"""Entry points: ``check`` (a dry run that never raises for a bad query) and ``prepare`` (for the
executor: raises ``PolicyViolation`` with every finding).

One parse, one qualify against a prebuilt schema, every check (all findings collected), the rewrite
passes in order, and every check again on the rewritten tree (rewrites must never widen access).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.qualify import qualify

from policies.analysis.levels import Analysis
from policies.analysis.markers import STAR_META
from policies.analysis.mask_notes import mask_notes
from policies.analysis.scopes import Base, source_nodes
from policies.analysis.syntax import syntax_findings
from policies.catalog import Catalog
from policies.checks import CHECKS
from policies.context import PolicyContext, TableRef, compile_context
from policies.dp.plan import DpPlan, plan_dp
from policies.errors import PolicyViolation
from policies.findings import Finding
from policies.model import Scope
from policies.passes import REWRITES
from policies.passes.collect_cohorts import collect_cohorts
from policies.passes.collect_contributions import collect_contributions

MAX_SQL_CHARS = 100_000
#: Complexity limits, checked right after parsing and before any analysis (whose cost grows with
#: the tree): every legitimate query of the test suites stays far below them (the widest, a 30-column
#: 3-join query with CTEs, has well under 1,000 nodes and a nesting depth below 30).
MAX_QUERY_NODES = 10_000
MAX_QUERY_DEPTH = 120

_TOO_COMPLEX = (
    "the query is too complex (at most {nodes} syntax nodes and {depth} levels of nesting); "
    "split it into simpler queries or use IN (…) lists instead of long OR chains"
)


@dataclass(frozen=True)
class CheckReport:
    """What a dry run says: allowed or not, every finding, and the SQL that would run."""

    allowed: bool
    findings: tuple[Finding, ...]
    rewritten_sql: str | None
    applied: tuple[str, ...]
    #: Explanations that refuse nothing (severity "note"), e.g. what a masked comparison compares.
    notes: tuple[Finding, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "allowed": self.allowed,
            "findings": [f.to_dict() for f in self.findings],
            "rewritten_sql": self.rewritten_sql,
            "applied": list(self.applied),
            "notes": [{**n.to_dict(), "severity": "note"} for n in self.notes],
        }


@dataclass(frozen=True)
class PreparedQuery:
    """A query that passed every check, rewritten for execution."""

    original_sql: str
    sql: str
    tables: tuple[TableRef, ...]
    output_columns: tuple[str, ...]
    uses_keyed_hash: bool
    applied: tuple[str, ...]
    scope_version: str
    additive_columns: tuple[str, ...] = ()  # plain COUNT/SUM outputs: exact to add in a remainder row
    #: Explanations that refuse nothing (see ``CheckReport.notes``); to be shown with the result.
    notes: tuple[Finding, ...] = ()
    #: Under a scope with ``disclosure.dp``: what the release must noise and how (``None`` without dp).
    dp_plan: DpPlan | None = None


def check(sql: str, scope: Scope, catalog: Catalog) -> CheckReport:
    """Dry run: findings and the rewritten SQL; nothing is executed, nothing raises for bad SQL.

    >>> from policies.examples import example_catalog, example_scope
    >>> report = check("SELECT district, name FROM citizens", example_scope(), example_catalog())
    >>> report.allowed, sorted({f.rule for f in report.findings})
    (False, ['aggregate_only', 'column_denied'])
    >>> ok = check("SELECT district, COUNT(*) AS n FROM citizens GROUP BY district",
    ...            example_scope(), example_catalog())
    >>> ok.allowed, ok.applied[0]
    (True, 'apply_masks')
    """
    return check_with(sql, compile_context(scope, catalog))


def check_with(sql: str, ctx: PolicyContext) -> CheckReport:
    """``check`` against a context from ``compile_context`` (build it once per scope version and
    catalog, reuse it for every query).

    >>> from policies.context import compile_context
    >>> from policies.examples import example_catalog, example_scope
    >>> ctx = compile_context(example_scope(), example_catalog())
    >>> check_with("SELECT sex, COUNT(*) AS n FROM citizens GROUP BY sex", ctx).allowed
    True
    """
    try:
        prepared = prepare_with(sql, ctx)
    except PolicyViolation as exc:
        return CheckReport(False, exc.findings, None, ())
    return CheckReport(True, (), prepared.sql, prepared.applied, prepared.notes)


def prepare(sql: str, scope: Scope, catalog: Catalog) -> PreparedQuery:
    """Check and rewrite ``sql``; ``PolicyViolation`` carries every finding.

    >>> from policies.examples import example_catalog, example_scope
    >>> q = prepare("SELECT sex, AVG(income) AS avg_income FROM citizens GROUP BY sex",
    ...             example_scope(), example_catalog())
    >>> q.output_columns, [t.sql_name for t in q.tables]
    (('sex', 'avg_income'), ['citizens'])
    >>> "_sbx_units" in q.sql, q.sql.endswith("LIMIT 101")
    (True, True)
    """
    return prepare_with(sql, compile_context(scope, catalog))


def prepare_with(sql: str, ctx: PolicyContext) -> PreparedQuery:
    """``prepare`` against a context from ``compile_context`` (the same checks, the same result).

    >>> from policies.context import compile_context
    >>> from policies.examples import example_catalog, example_scope
    >>> ctx = compile_context(example_scope(), example_catalog())
    >>> prepare_with("SELECT sex, COUNT(*) AS n FROM citizens GROUP BY sex", ctx).output_columns
    ('sex', 'n')
    """
    try:
        return _prepare(sql, ctx)
    except PolicyViolation:
        raise
    except RecursionError:
        # Deep nesting that slipped under the limits still must not escape as a crash.
        raise PolicyViolation(_summary([_too_complex()]), findings=[_too_complex()]) from None
    except Exception as exc:  # the boundary: a library error is a refusal, never a crash
        finding = Finding("query_too_complex", f"the query could not be analysed: {_first_line(exc)}")
        raise PolicyViolation(_summary([finding]), findings=[finding]) from None


def _prepare(sql: str, ctx: PolicyContext) -> PreparedQuery:
    tree, findings = parse_and_qualify(sql, ctx)
    findings = [*ctx.scope_findings, *findings]
    if tree is None:
        raise PolicyViolation(_summary(findings), findings=findings)
    analysis = Analysis(tree, ctx)
    findings.extend(run_checks(analysis, ctx))
    if findings:
        raise PolicyViolation(_summary(findings), findings=findings)
    output_columns = tuple(p.alias_or_name for p in _first_select(tree).expressions)
    additive = tuple(
        p.alias_or_name
        for p in _first_select(tree).expressions
        if isinstance(p.unalias(), exp.Count | exp.Sum)
    )
    tables = _tables(analysis)
    keyed = _uses_keyed_hash(analysis)
    notes = tuple(mask_notes(analysis, ctx))
    # From the operator's query, before any pass: the plan bounds what the query asks for.
    dp_plan = plan_dp(analysis, ctx) if ctx.disclosure.dp is not None else None
    for rewrite in REWRITES:
        tree = rewrite(tree, analysis, ctx)
    recheck = postcondition_findings(tree, analysis, ctx)
    if recheck:
        # A rewrite that widens access is an engine bug; refuse rather than run it.
        raise PolicyViolation("the rewritten query failed the checks", findings=recheck)
    applied = tuple(r.__name__ for r in REWRITES)
    if ctx.disclosure.dp is None:
        # After the re-check, by design (see the pass): the released-cohort ledger's unit lists, which
        # the sandbox turns into sketches before anything leaves it. Scopes with differential privacy
        # need no ledger.
        tree = collect_cohorts(tree, analysis, ctx)
        applied += ("collect_cohorts",)
        if ctx.disclosure.dominance is not None:
            # Likewise after the re-check: each unit's contributions to the sums and means, for the
            # dominance and p% rules of the output check (the sandbox keeps only numbers of them).
            tree = collect_contributions(tree, analysis, ctx)
            applied += ("collect_contributions",)
    return PreparedQuery(
        original_sql=sql,
        # The tree is not used after this: let the generator transform it in place instead of copying.
        sql=tree.sql(dialect=ctx.sql_dialect, comments=False, copy=False),
        tables=tables,
        output_columns=output_columns,
        uses_keyed_hash=keyed,
        applied=applied,
        scope_version=ctx.scope_version,
        additive_columns=additive,
        notes=notes,
        dp_plan=dp_plan,
    )


def postcondition_findings(tree: exp.Expr, analysis: Analysis, ctx: PolicyContext) -> list[Finding]:
    """The postcondition of the rewrite: every check again, on a fresh analysis of the whole rewritten
    ``tree`` (rewrites must never widen access). ``analysis`` is the one of the original query; only its
    context-only facts are reused (the lineage of each catalog column), never a fact about a node.

    >>> from policies.examples import example_context
    >>> ctx, tree, analysis = example_context("SELECT sex, COUNT(*) AS n FROM citizens GROUP BY sex")
    >>> postcondition_findings(tree, analysis, ctx)
    []
    >>> widened = tree.select('"citizens"."name"', copy=False)  # as if a pass released a denied column
    >>> sorted({f.rule for f in postcondition_findings(widened, analysis, ctx)})
    ['rewrite_postcondition']
    """
    recheck = run_checks(Analysis(tree, ctx, generated=True, facts_of=analysis), ctx)
    return [Finding("rewrite_postcondition", f"after rewriting: {f.message}", f.fragment) for f in recheck]


def run_checks(analysis: Analysis, ctx: PolicyContext) -> list[Finding]:
    """Every finding of every check (duplicates removed, order kept)."""
    out: list[Finding] = []
    seen: set[Finding] = set()
    for rule in CHECKS:
        for finding in rule(analysis, ctx):
            if finding not in seen:
                seen.add(finding)
                out.append(finding)
    return out


def parse_and_qualify(sql: str, ctx: PolicyContext) -> tuple[exp.Expr | None, list[Finding]]:
    """The only parse: exactly one read-only statement, qualified against the scope's tables."""
    if len(sql) > MAX_SQL_CHARS:
        return None, [Finding("query_too_long", f"queries are limited to {MAX_SQL_CHARS} characters")]
    try:
        statements = [s for s in sqlglot.parse(sql, dialect=ctx.sql_dialect) if s is not None]
    except RecursionError:
        return None, [_too_complex()]
    except Exception as exc:
        return None, [Finding("parse_error", f"the query could not be parsed: {_first_line(exc)}")]
    if len(statements) != 1:
        return None, [Finding("single_statement", f"submit exactly one statement (found {len(statements)})")]
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        if not _within_limits(tree):
            return None, [_too_complex()]
        kind = type(tree).__name__.upper()
        return None, [Finding("read_only", f"only SELECT queries are allowed (found {kind})", _short(tree))]
    if not _within_limits(tree, clear_meta=True):
        return None, [_too_complex()]
    try:
        tree = qualify(
            tree,
            schema=ctx.schema,
            dialect=ctx.sql_dialect,
            validate_qualify_columns=False,
            quote_identifiers=True,
            identify=True,
        )
    except Exception as exc:
        refused = list(syntax_findings(tree))
        if refused:
            return None, refused
        return None, [Finding("unresolvable", f"the query's names could not be resolved: {_first_line(exc)}")]
    return tree, []


def _within_limits(tree: exp.Expr, *, clear_meta: bool = False) -> bool:
    """At most ``MAX_QUERY_NODES`` nodes and ``MAX_QUERY_DEPTH`` levels (a level-by-level walk that
    stops as soon as a limit is passed, so a huge tree costs no more than the limit).

    With ``clear_meta``, the same walk also empties every node's meta: the parser fills it with source
    positions and with any ``sqlglot.meta k=v`` hint written in a comment of the query. The engine
    keeps its own marks there (generated, mask, filtered scan, …), so a query must never set meta: a
    comment could otherwise mark a cast as generated and skip type_safety, or turn identifier
    normalisation off. Positions are not used, and without them every copy of a node is cheaper.
    SELECTs with a star are marked for the checks in the same walk.
    """
    count = 0
    depth = 0
    level: list[exp.Expr] = [tree]
    while level:
        depth += 1
        count += len(level)
        if count > MAX_QUERY_NODES or depth > MAX_QUERY_DEPTH:
            return False
        below: list[exp.Expr] = []
        extend = below.extend
        for node in level:
            extend(node.iter_expressions())
            if count + len(below) > MAX_QUERY_NODES:
                return False
        if clear_meta:
            for node in level:
                node._meta = None
                if isinstance(node, exp.Select) and any(
                    isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))
                    for p in node.expressions
                ):
                    node.meta[STAR_META] = True
        level = below
    return True


def _too_complex() -> Finding:
    return Finding("query_too_complex", _TOO_COMPLEX.format(nodes=MAX_QUERY_NODES, depth=MAX_QUERY_DEPTH))


def _first_select(tree: exp.Expr) -> exp.Select:
    node = tree
    while isinstance(node, exp.SetOperation | exp.Subquery):
        node = node.left if isinstance(node, exp.SetOperation) else node.this
    assert isinstance(node, exp.Select)
    return node


def _tables(analysis: Analysis) -> tuple[TableRef, ...]:
    refs: dict[str, TableRef] = {}
    for scope in analysis.scopes:
        for node in source_nodes(scope.select):
            source = scope.sources.get(node.alias_or_name.lower())
            if isinstance(source, Base):
                refs.setdefault(source.table.ref.sql_name, source.table.ref)
    return tuple(refs[name] for name in sorted(refs))


def _uses_keyed_hash(analysis: Analysis) -> bool:
    return analysis.ctx.uses_keyed_hash


def _summary(findings: list[Finding]) -> str:
    rules = sorted({f.rule for f in findings})
    return f"query refused ({len(findings)} finding{'s' if len(findings) != 1 else ''}: {', '.join(rules)})"


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__


def _short(node: exp.Expr) -> str:
    text = node.sql(dialect="duckdb")
    return text if len(text) <= 200 else text[:197] + "..."
