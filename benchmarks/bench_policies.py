"""Median time of check + rewrite (``policies.prepare``) for a typical and a wide query, next to a
straightforward sqlglot pipeline (parse, qualify, generate) measured in the same run.

Run: ``.venv/bin/python benchmarks/bench_policies.py [--repeat N]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import sqlglot
from sqlglot.optimizer.qualify import qualify

from policies import Catalog, ColumnSchema, DatasetSchema, TableSchema, load_scope, prepare
from policies.analysis.levels import Analysis
from policies.context import build_context
from policies.passes import REWRITES
from policies.pipeline import parse_and_qualify, run_checks

TYPICAL = (
    "SELECT district, sex, birth_date, COUNT(*) AS n, SUM(income) AS total, AVG(income) AS mean "
    "FROM citizens WHERE diagnosis = 'J10' GROUP BY district, sex, birth_date"
)


def _catalog() -> Catalog:
    def table(name: str, extra: int) -> TableSchema:
        cols = [
            ColumnSchema(name="person_id", type="BIGINT"),
            ColumnSchema(name="district", type="VARCHAR"),
            ColumnSchema(name="sex", type="VARCHAR"),
            ColumnSchema(name="birth_date", type="DATE"),
            ColumnSchema(name="income", type="BIGINT"),
            ColumnSchema(name="diagnosis", type="VARCHAR"),
        ]
        cols += [ColumnSchema(name=f"{name}_c{i}", type="BIGINT") for i in range(extra)]
        return TableSchema(name=name, unit="person_id", columns=tuple(cols))

    names = ("citizens", "visits", "claims", "labs")
    return Catalog(datasets=tuple(DatasetSchema(domain="hb", name=n, tables=(table(n, 10),)) for n in names))


def _scope() -> str:
    rules = (
        "person_id: {use: join_key}\n      district: {use: group}\n      sex: {use: group}\n"
        "      birth_date: {mask: {generalize: year}, use: group}\n"
        "      income: {use: aggregate, bounds: [0, 1000000]}\n      diagnosis: {use: filter}\n"
    )
    datasets = ""
    for name in ("citizens", "visits", "claims", "labs"):
        extra = "".join(f"      {name}_c{i}: {{use: aggregate}}\n" for i in range(10))
        datasets += f"  hb/{name}:\n    row_filter: \"district <> 'X'\"\n    columns:\n      {rules}{extra}"
    return (
        f"scope: bench\npurpose: benchmark\ngrantees: [group:g]\n"
        "valid: {from: 2026-01-01, until: 2026-12-31}\n"
        f"datasets:\n{datasets}"
    )


def _wide() -> str:
    sums = ", ".join(
        f"SUM(v.visits_c{i}) AS v{i}, SUM(c.claims_c{i}) AS c{i}, AVG(l.labs_c{i}) AS l{i}" for i in range(8)
    )
    return (
        "WITH v AS (SELECT person_id, visits_c0, visits_c1, visits_c2, visits_c3, visits_c4, visits_c5,"
        " visits_c6,"
        " visits_c7 FROM visits WHERE diagnosis = 'J10'), "
        "c AS (SELECT person_id, claims_c0, claims_c1, claims_c2, claims_c3, claims_c4, claims_c5, claims_c6,"
        " claims_c7 FROM claims) "
        f"SELECT p.district, p.sex, p.birth_date, COUNT(DISTINCT p.person_id) AS people, {sums} "
        "FROM citizens p JOIN v ON p.person_id = v.person_id JOIN c ON p.person_id = c.person_id "
        "JOIN labs l ON p.person_id = l.person_id WHERE p.sex = 'F' GROUP BY p.district, p.sex, p.birth_date "
        "HAVING COUNT(*) > 1 ORDER BY people DESC"
    )


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    repeat = parser.parse_args().repeat
    catalog, scope = _catalog(), load_scope(_scope())
    ctx, _ = build_context(scope, catalog)
    for label, sql in (("typical", TYPICAL), ("wide (30 cols, 3 joins, CTEs)", _wide())):
        prepare(sql, scope, catalog)  # fails loudly if the query is refused

        def baseline(sql: str = sql) -> str:
            tree = qualify(sqlglot.parse_one(sql, dialect="duckdb"), schema=ctx.schema, dialect="duckdb")
            return tree.sql(dialect="duckdb")

        def stages(sql: str = sql) -> dict[str, float]:
            marks = {}
            t0 = time.perf_counter()
            c, _ = build_context(scope, catalog)
            t1 = time.perf_counter()
            tree, _ = parse_and_qualify(sql, c)
            assert tree is not None
            t2 = time.perf_counter()
            analysis = Analysis(tree, c)
            run_checks(analysis, c)
            t3 = time.perf_counter()
            for rewrite in REWRITES:
                tree = rewrite(tree, analysis, c)
            t4 = time.perf_counter()
            run_checks(Analysis(tree, c, generated=True), c)
            t5 = time.perf_counter()
            tree.sql(dialect="duckdb")
            t6 = time.perf_counter()
            marks.update(
                context=t1 - t0,
                parse_qualify=t2 - t1,
                checks=t3 - t2,
                rewrite=t4 - t3,
                recheck=t5 - t4,
                generate=t6 - t5,
            )
            return marks

        total = _median_ms(lambda sql=sql: prepare(sql, scope, catalog), repeat)
        base = _median_ms(baseline, repeat)
        samples = [stages() for _ in range(max(20, repeat // 4))]
        parts = {k: statistics.median(s[k] for s in samples) * 1000 for k in samples[0]}
        print(
            f"{label}: check+rewrite median {total:.2f} ms; sqlglot parse+qualify+generate {base:.2f} ms "
            f"(ratio {total / base:.2f})"
        )
        print("   " + ", ".join(f"{k} {v:.2f} ms" for k, v in parts.items()))


if __name__ == "__main__":
    main()
