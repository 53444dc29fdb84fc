"""Which columns a query can read, so that a job parses only those (projection pushdown).

This runs in the parent, on the already rewritten SQL, never in the sandbox child: the child does not
parse SQL; it only intersects the names it is given with the columns of its Parquet parts.

The answer is a deliberate over-approximation: every identifier of the statement (column, table,
alias, struct field or ``USING`` name alike) counts as a possibly needed column, and a name a table
does not have is simply not loaded. Loading a column too many costs time; loading one too few makes
the engine refuse the query. So whenever a statement can reach columns it does not name (``*`` other
than ``COUNT(*)`` or a derived table's pass-through ``SELECT *``; ``COLUMNS(...)``; ``NATURAL JOIN``;
``PIVOT``/``UNPIVOT``; a whole-row reference to a table or alias) or does not parse as one
statement, the answer is "every column".
"""

from __future__ import annotations

from dataclasses import replace

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from executors.base import JobSpec


def _passes_through(star: exp.Star) -> bool:
    """``star`` is the select list of a plain derived table or CTE (``FROM (SELECT * FROM t WHERE ...)``,
    the policy engine's row-filter shape): it forwards columns, and the outer query names the ones it
    reads. Not so under DISTINCT, GROUP BY, a set operation or as an ``IN`` subquery, where every
    column shapes the rows."""
    select = star.parent
    if not isinstance(select, exp.Select) or star.arg_key != "expressions":
        return False
    if any(select.args.get(key) for key in ("distinct", "group", "having")):
        return False
    container = select.parent
    if isinstance(container, exp.CTE):
        return True
    return isinstance(container, exp.Subquery) and isinstance(container.parent, exp.From | exp.Join)


def _reads_unnamed_columns(tree: exp.Expr) -> bool:
    for star in tree.find_all(exp.Star):
        if not isinstance(star.parent, exp.Count) and not _passes_through(star):
            return True
    if any(True for _ in tree.find_all(exp.Columns, exp.Pivot)):
        return True
    if any(str(join.method).upper() == "NATURAL" for join in tree.find_all(exp.Join)):
        return True
    # ``SELECT v FROM visits v`` is the whole row of ``visits`` as one struct value.
    relations = {t.name.lower() for t in tree.find_all(exp.Table)}
    relations |= {a.name.lower() for a in tree.find_all(exp.TableAlias) if a.name}
    return any(c.name.lower() in relations for c in tree.find_all(exp.Column))


def referenced_names(sql: str) -> frozenset[str] | None:
    """Lower-cased names that may be columns the query reads; ``None`` when it may read any column.

    >>> sorted(referenced_names(
    ...     "SELECT v.district, COUNT(DISTINCT v.person_id) AS n FROM visits AS v GROUP BY v.district"))
    ['district', 'n', 'person_id', 'v', 'visits']
    >>> referenced_names("SELECT * FROM visits") is None
    True
    >>> sorted(referenced_names("SELECT COUNT(*) AS n FROM visits"))
    ['n', 'visits']
    """
    try:
        statements = sqlglot.parse(sql, read="duckdb")
    except SqlglotError:
        return None
    if len(statements) != 1 or statements[0] is None:
        return None
    tree = statements[0]
    if _reads_unnamed_columns(tree):
        return None
    return frozenset(ident.name.lower() for ident in tree.find_all(exp.Identifier))


def with_projection(spec: JobSpec) -> JobSpec:
    """``spec`` with ``columns`` set on every SQL table input that has none, from its query.

    Python jobs and tables whose caller already chose ``columns`` are left as they are.
    """
    if spec.python_or_mock is not None or all(t.columns is not None for t in spec.tables):
        return spec
    names = referenced_names(spec.sql)
    if names is None:
        return spec
    wanted = tuple(sorted(names))
    tables = tuple(t if t.columns is not None else replace(t, columns=wanted) for t in spec.tables)
    return replace(spec, tables=tables)
