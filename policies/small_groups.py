"""The audit count of groups the k rule removed: a statement the sandbox runs beside the job's query.

``passes.suppress_small_rows`` makes the k rule part of the query (a HAVING on every final SELECT), so
groups below ``min_units`` never leave the engine and the gateway never learns how many there were.
Auditors still want that number (how much of a question the k rule answered with silence). This
module derives, from the rewritten query alone, one more statement that counts them inside the
sandbox: every final SELECT that carries the k condition, with that condition negated and its ORDER
BY, LIMIT and OFFSET removed, counted with ``COUNT(*)``; the counts of all such SELECTs added up. Only
that one number leaves the sandbox, never a key or a value of a removed group.

The number is for auditors only (the job's ``job.released`` audit event). It must never reach the
operator: "one group of this breakdown was removed" says that a group of 1..k-1 units exists, which is
exactly the fact the k rule hides (``WHERE diagnosis = 'X' GROUP BY district`` with one group removed
says that someone has X). So it is not in the release report, the receipt, the timings, nor the
result.

Remainder branches (``passes.merge_small_rows``) are not counted: they test the unit count as an
expression, not by the ``_sbx_units`` output name the k condition uses, and merge rather than remove.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from policies.passes.add_unit_counts import leaves
from policies.passes.suppress_small_rows import is_unit_count

#: The name of the one column the statement returns.
COUNT_COLUMN = "_sbx_groups_below_k"


def small_groups_statement(sql: str, *, dialect: str = "duckdb") -> str | None:
    """The statement that counts the groups the k rule removes from ``sql`` (a rewritten query), or
    None when no final SELECT carries the k condition (differential privacy, or no unit counts).

    >>> q = ('WITH t AS (SELECT * FROM c) SELECT d, COUNT(*) AS n, COUNT(DISTINCT p) AS "_sbx_units" '
    ...      'FROM t GROUP BY d HAVING COUNT(*) > 1 AND "_sbx_units" >= 10 ORDER BY n LIMIT 1')
    >>> print(small_groups_statement(q))  # doctest: +NORMALIZE_WHITESPACE
    WITH t AS (SELECT * FROM c) SELECT (SELECT COUNT(*) FROM (SELECT d, COUNT(*) AS n,
    COUNT(DISTINCT p) AS "_sbx_units" FROM t GROUP BY d HAVING COUNT(*) > 1
    AND NOT ("_sbx_units" >= 10))) AS "_sbx_groups_below_k"
    >>> small_groups_statement("SELECT COUNT(*) AS n FROM c") is None
    True
    """
    try:
        tree = sqlglot.parse_one(sql, dialect=dialect)
    except sqlglot.errors.SqlglotError:
        return None  # not the engine's own rewrite: nothing to count (the job itself is unaffected)
    counts: list[exp.Expr] = []
    for select in leaves(tree):
        negated = _negated(select)
        if negated is not None:
            counts.append(exp.Subquery(this=exp.select(exp.Count(this=exp.Star())).from_(negated.subquery())))
    if not counts:
        return None
    total = counts[0]
    for more in counts[1:]:
        total = exp.Add(this=total, expression=more)
    out = exp.Select(expressions=[exp.alias_(total, COUNT_COLUMN, quoted=True)])
    with_ = tree.args.get("with_") or tree.args.get("with")
    if with_ is not None:
        out.set("with_" if "with_" in tree.args else "with", with_.copy())
    return out.sql(dialect=dialect)


def _negated(select: exp.Select) -> exp.Select | None:
    """A copy of ``select`` that keeps exactly the groups its k condition removes, unordered and
    unlimited (None when it has no k condition). The user's own HAVING conditions stay: a group they
    remove was never a candidate for release."""
    having = select.args.get("having")
    if having is None:
        return None
    conjuncts = list(having.this.flatten()) if isinstance(having.this, exp.And) else [having.this]
    k_rule = [c for c in conjuncts if _is_k_condition(c)]
    if not k_rule:
        return None
    rest = [c for c in conjuncts if not _is_k_condition(c)]
    copy = select.copy()
    for clause in ("order", "limit", "offset", "with", "with_"):
        copy.set(clause, None)
    condition = exp.Not(this=exp.Paren(this=exp.and_(*(c.copy() for c in k_rule), copy=False)))
    copy.set("having", exp.Having(this=exp.and_(*(c.copy() for c in rest), condition, copy=False)))
    return copy


def _is_k_condition(node: exp.Expr) -> bool:
    """``"_sbx_units…" >= <number>``, as ``suppress_small_rows`` writes it."""
    return (
        isinstance(node, exp.GTE)
        and isinstance(node.this, exp.Column)
        and not node.this.table
        and is_unit_count(node.this.name)
        and isinstance(node.expression, exp.Literal)
    )
