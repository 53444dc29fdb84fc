"""The query split for unit-partitioned execution: golden cases, and execution on a tiny DuckDB fixture
showing that partial-then-merge over unit partitions gives exactly what the query gives in one piece."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from policies.distributed import NotSplittable, SplitQuery, split_query

GOLDEN = Path(__file__).parent.parent / "golden" / "policies" / "split_query.sql"
UNITS = {"t": "u", "v": "w"}


@dataclass(frozen=True)
class Case:
    id: str
    sql: str
    expected: str


def load_cases(path: Path) -> list[Case]:
    cases = []
    for block in path.read_text().split("-- case: ")[1:]:
        title, body = block.split("\n", 1)
        sql, expected = body.split("-- expect:\n", 1)
        cases.append(Case(id=title.strip().replace(" ", "-"), sql=sql.strip(), expected=expected.strip()))
    return cases


def render(plan: SplitQuery | NotSplittable) -> str:
    if isinstance(plan, NotSplittable):
        return f"-- not splittable: {plan.reason}"
    return f"-- partial:\n{plan.partial_sql}\n-- final:\n{plan.final_sql}"


@pytest.mark.parametrize("case", load_cases(GOLDEN), ids=lambda c: c.id)
def test_split_golden(case: Case) -> None:
    assert render(split_query(case.sql, units=UNITS)) == case.expected


def test_golden_file_covers_both_outcomes() -> None:
    outcomes = {isinstance(split_query(c.sql, units=UNITS), SplitQuery) for c in load_cases(GOLDEN)}
    assert outcomes == {True, False}


def test_split_is_deterministic() -> None:
    sql = "SELECT d AS d, COUNT(*) AS n, AVG(x) AS a, COUNT(DISTINCT u) AS _sbx_units FROM t GROUP BY d"
    assert split_query(sql, units=UNITS) == split_query(sql, units=UNITS)


def test_a_table_without_a_known_unit_does_not_split() -> None:
    plan = split_query("SELECT COUNT(DISTINCT u) AS n FROM t", units={})
    assert isinstance(plan, NotSplittable)


def test_an_unparseable_query_does_not_split() -> None:
    assert isinstance(split_query("SELECT FROM WHERE", units=UNITS), NotSplittable)


def test_counting_distinct_values_of_a_joined_non_unit_column_does_not_split() -> None:
    sql = "SELECT COUNT(DISTINCT v.y) AS n FROM t JOIN v ON t.u = v.w"
    assert isinstance(split_query(sql, units=UNITS), NotSplittable)


def _light_first(cte: str = "_sbx_dp_heavy", probe: str = "t.u") -> str:
    heavy = f'EXISTS(SELECT 1 FROM "{cte}" AS "{cte}" WHERE "{cte}".u IS NOT DISTINCT FROM {probe})'
    return (
        f'SELECT t.d AS d, COUNT(*) AS n, SUM(t.x) AS s FROM (WITH "{cte}" AS (SELECT t.u FROM t AS t '
        f"GROUP BY t.u HAVING COUNT(*) > 3) SELECT * FROM t AS t WHERE NOT {heavy} UNION ALL SELECT * "
        f"FROM t AS t WHERE {heavy} QUALIFY ROW_NUMBER() OVER (PARTITION BY t.u ORDER BY "
        "HASH('k', t.x, t.d, t.f)) <= 3) AS t GROUP BY t.d"
    )


LIGHT_FIRST = _light_first()


PER_UNIT = (
    "SELECT SUM(t.c) AS n, SUM(t.s) AS s FROM (SELECT t.u, CASE WHEN COUNT(*) > 3 THEN 3 ELSE COUNT(*) END "
    "AS c, CASE WHEN COUNT(*) > 3 THEN SUM(t.x) * 3 / COUNT(*) ELSE SUM(t.x) END AS s FROM t "
    "WHERE t.x > 5 GROUP BY t.u) AS t"
)


def test_only_a_derived_table_grouped_by_its_unit_splits() -> None:
    """Grouped by the unit, each row is one unit's, computed whole in its one part; grouped by anything
    else (or also by another column, or not projecting the unit) a part sees only some of a group."""
    units = {"t": "u"}
    assert isinstance(split_query(PER_UNIT, units=units), SplitQuery)
    for other in (
        "SELECT SUM(t.c) AS n FROM (SELECT t.d, COUNT(*) AS c FROM t GROUP BY t.d) AS t",
        "SELECT SUM(t.c) AS n FROM (SELECT t.u, t.d, COUNT(*) AS c FROM t GROUP BY t.u, t.d) AS t",
        "SELECT SUM(t.c) AS n FROM (SELECT COUNT(*) AS c FROM t GROUP BY t.u) AS t",
        "SELECT SUM(t.c) AS n FROM (SELECT t.u, COUNT(*) AS c FROM t GROUP BY t.u HAVING COUNT(*) > 1) AS t",
    ):
        assert isinstance(split_query(other, units=units), NotSplittable), other


def test_only_the_dp_samples_own_union_splits() -> None:
    assert isinstance(split_query(LIGHT_FIRST, units=UNITS), SplitQuery)
    for other in (_light_first(cte="mine"), _light_first(probe="t.x")):
        assert isinstance(split_query(other, units=UNITS), NotSplittable), other
    union = "SELECT COUNT(*) AS n FROM (SELECT * FROM t UNION ALL SELECT * FROM t) AS t"
    assert isinstance(split_query(union, units=UNITS), NotSplittable)


def test_dp_queries_as_prepared_still_split() -> None:
    """The DP rewrite's samples (the rows bound's light-first one, and the groups bound's window with its
    first-row flag) split, so a DP job still runs one task per part on Ray
    (``tests/executors/test_ray_executor.py``)."""
    from policies.context import compile_context
    from policies.dp.examples import dp_catalog, dp_scope
    from policies.pipeline import prepare_with

    ctx = compile_context(dp_scope(), dp_catalog())
    units = {"citizens": "person_id", "visits": "person_id"}
    for sql in (
        "SELECT COUNT(*) AS n, SUM(income) AS s FROM citizens",
        "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district",
        # Keys from the data: each group's units counted by the flag of their first kept row.
        "SELECT ward, COUNT(*) AS n, COUNT(DISTINCT person_id) AS u FROM visits GROUP BY ward",
        "SELECT c.district, COUNT(*) AS n, SUM(v.cost) AS s FROM citizens c JOIN visits v "
        "ON c.person_id = v.person_id GROUP BY c.district",
    ):
        prepared = prepare_with(sql, ctx).sql
        assert isinstance(split_query(prepared, units=units), SplitQuery), prepared


# -- execution: partial on every part, merge, compare with the whole -----------------------------------

EXECUTED = (
    "SELECT d AS d, COUNT(*) AS n, SUM(x) AS s, AVG(x) AS a, COUNT(DISTINCT u) AS _sbx_units "
    "FROM t GROUP BY d",
    "SELECT d AS d, AVG(f) AS a, SUM(f) AS s, MIN(f) AS lo, MAX(x) AS hi FROM t GROUP BY d ORDER BY d",
    "SELECT d AS d, COUNT(x) FILTER(WHERE x > 50) AS n, COUNT(DISTINCT u) FILTER(WHERE x > 50) AS k "
    "FROM t GROUP BY d",
    "SELECT x % 3 AS b, SUM(x) / COUNT(*) AS mean FROM t GROUP BY x % 3 HAVING COUNT(*) > 5 ORDER BY b",
    "SELECT COUNT(*) AS n, AVG(x) AS a, COUNT(DISTINCT u) AS k FROM t WHERE d = 'none'",
    "SELECT a.d AS d, COUNT(*) AS n, COUNT(DISTINCT b.u) AS k "
    "FROM t AS a JOIN t AS b ON a.u = b.u GROUP BY a.d",
    "SELECT t.d AS d, SUM(v.y) AS s, AVG(v.y) AS a FROM t LEFT JOIN v ON t.u = v.w GROUP BY t.d",
    "SELECT t.d AS d, COUNT(*) AS n FROM (SELECT * FROM t WHERE x > 10) AS t "
    "GROUP BY t.d ORDER BY n, d LIMIT 3",
    # The k rule as the engine writes it: HAVING names the hidden unit count, before ORDER BY/LIMIT.
    'SELECT d AS d, COUNT(*) AS n, COUNT(DISTINCT u) AS "_sbx_units" FROM t GROUP BY d '
    'HAVING COUNT(*) > 3 AND "_sbx_units" >= 12 ORDER BY n DESC, d LIMIT 2',
    # DP's per-unit sample that ranks only the units above the bound (units here have 1 to 12 rows).
    LIGHT_FIRST,
    # DP's clamped per-unit contributions (no grouping): one row per unit, summed across parts.
    PER_UNIT,
)


def tables(seed: int) -> dict[str, pa.Table]:
    rng = random.Random(seed)
    rows = 600
    units = [rng.randrange(120) for _ in range(rows)]
    return {
        "t": pa.table(
            {
                "u": units,
                "d": [rng.choice(["a", "b", "c", None]) for _ in range(rows)],
                "x": [None if rng.random() < 0.1 else rng.randrange(100) for _ in range(rows)],
                "f": [rng.random() * 1000 for _ in range(rows)],
            }
        ),
        "v": pa.table({"w": list(range(0, 120, 2)), "y": [rng.randrange(1000) for _ in range(60)]}),
    }


def partition(table: pa.Table, unit: str, index: int, n_parts: int) -> pa.Table:
    keep = [hash((v * 2654435761) % 2**32) % n_parts == index for v in table.column(unit).to_pylist()]
    return table.filter(pa.array(keep))


def released(table: pa.Table, *, ordered: bool) -> tuple[pa.Schema, list[tuple[object, ...]]]:
    """What an executor hands back (the Arrow schema and rows), floats to the canonical 12 digits."""

    def value(v: object) -> object:
        return float(f"{v:.12g}") if isinstance(v, float) else v

    rows = [tuple(value(v) for v in row.values()) for row in table.to_pylist()]
    return table.schema, rows if ordered else sorted(rows, key=repr)


def arrow(sql: str, registered: dict[str, pa.Table]) -> pa.Table:
    con = duckdb.connect(":memory:")
    try:
        for name, table in registered.items():
            con.register(name, table)
        result: pa.Table = con.sql(sql).to_arrow_table()
    finally:
        con.close()
    return result


@pytest.mark.parametrize("n_parts", [1, 3, 16])
@pytest.mark.parametrize("sql", EXECUTED, ids=[f"q{i}" for i in range(len(EXECUTED))])
def test_partial_then_merge_equals_the_whole(sql: str, n_parts: int) -> None:
    plan = split_query(sql, units=UNITS)
    assert isinstance(plan, SplitQuery), plan
    data = tables(seed=n_parts)
    parts = [
        {name: partition(table, UNITS[name], i, n_parts) for name, table in data.items()}
        for i in range(n_parts)
    ]
    partials = pa.concat_tables([arrow(plan.partial_sql, part) for part in parts])
    merged = arrow(plan.final_sql, {plan.partials_table: partials})
    ordered = "ORDER BY" in sql.rsplit(")", 1)[-1]  # the query's own ORDER BY, not a window's
    assert released(merged, ordered=ordered) == released(arrow(sql, data), ordered=ordered)
