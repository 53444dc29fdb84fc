"""Whether no privacy unit can be behind two rows of a query's result (pure).

A remainder row (``suppression: remainder``) adds up the units behind the small rows it merges; that
sum is the remainder's unit count only when the groups are disjoint. Otherwise only the largest row's
count is a safe lower bound, and no remainder row can ever reach k. The answer is recorded with the
job at submit (``ReleaseFacts.disjoint_groups``) and read at release.
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from policies.context import DIALECT
from policies.model import Scope
from policies.pipeline import PreparedQuery


def disjoint_groups(
    prepared: PreparedQuery, scope: Scope, *, unique_units: Mapping[tuple[str, str], bool]
) -> bool:
    """True when the query is a :func:`plain_grouping` over one table that holds one row per unit.

    ``unique_units`` says, per ``(dataset, table)``, whether that table holds one row per privacy unit
    (recorded at upload). Derived only where the scope merges small rows into a remainder (the only rule
    that reads it); elsewhere False (not shown).

    >>> from policies import prepare
    >>> from policies.examples import example_catalog, example_scope
    >>> scope = example_scope()
    >>> scope = scope.model_copy(
    ...     update={"disclosure": scope.disclosure.model_copy(update={"suppression": "remainder"})})
    >>> prepared = prepare("SELECT district, COUNT(*) AS n FROM citizens GROUP BY district",
    ...                    scope, example_catalog())
    >>> only = (prepared.tables[0].dataset, prepared.tables[0].table)
    >>> disjoint_groups(prepared, scope, unique_units={only: True})
    True
    >>> disjoint_groups(prepared, scope, unique_units={only: False})
    False
    """
    if scope.disclosure.suppression != "remainder" or len(prepared.tables) != 1:
        return False
    only = prepared.tables[0]
    return unique_units.get((only.dataset, only.table), False) and plain_grouping(prepared.original_sql)


# Anything that can put one input row behind several output rows, or read more than one row source.
_FAN_OUT = (
    exp.Filter,  # FILTER cells count subsets: a unit is behind the row and behind its subset counts
    exp.Window,
    exp.Subquery,
    exp.Union,
    exp.Intersect,
    exp.Except,
    exp.Join,
    exp.Lateral,
    exp.Unnest,
    exp.Explode,
    exp.Rollup,
    exp.Cube,
    exp.GroupingSets,
    exp.With,
)


def plain_grouping(sql: str) -> bool:
    """True for one SELECT … GROUP BY over one table, with nothing that fans rows out.

    Over a table with one row per unit, every unit then lands in exactly one group, so no unit is
    behind two rows. Anything else (joins, FILTER cells, set operations, subqueries, CTEs, windows,
    UNNEST, ROLLUP/CUBE/GROUPING SETS) is not shown disjoint: conservative.

    >>> plain_grouping("SELECT district, COUNT(*) AS n FROM citizens GROUP BY district")
    True
    >>> plain_grouping("SELECT district, COUNT(*) FILTER (WHERE sex = 'F') AS f FROM citizens "
    ...                "GROUP BY district")
    False
    >>> plain_grouping("SELECT c.district, COUNT(*) FROM citizens c JOIN visits v "
    ...                "ON c.person_id = v.person_id GROUP BY c.district")
    False
    >>> plain_grouping("SELECT COUNT(*) FROM citizens")
    False
    """
    try:
        tree = sqlglot.parse_one(sql, dialect=DIALECT)
    except SqlglotError:
        return False
    if not isinstance(tree, exp.Select) or not tree.args.get("group"):
        return False
    source = tree.args.get("from") or tree.args.get("from_")
    if source is None or not isinstance(source.this, exp.Table):
        return False
    if not isinstance(source.this.this, exp.Identifier):  # a table function, not a table
        return False
    return not any(True for _ in tree.find_all(*_FAN_OUT)) and _one_select(tree)


def _one_select(tree: exp.Expr) -> bool:
    return sum(1 for _ in tree.find_all(exp.Select)) == 1
