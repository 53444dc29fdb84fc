"""Median time of check + rewrite for a typical and a wide query, next to a plain sqlglot pipeline
(parse, qualify, generate) measured in the same run, interleaved with it so that load on a shared
machine affects both alike, and the ratio between them.

Figures: ``prepare_with`` against a context compiled once (how the service calls it), ``prepare``
(which compiles the context on every call), and the median of each phase of ``prepare_with``.

Run: ``.venv/bin/python benchmarks/bench_policies.py [--repeat N]``
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import sqlglot
from sqlglot.optimizer.qualify import qualify

from policies import Catalog, ColumnSchema, DatasetSchema, TableSchema, load_scope, prepare
from policies.analysis.levels import Analysis
from policies.context import PolicyContext, compile_context
from policies.passes import REWRITES
from policies.pipeline import parse_and_qualify, postcondition_findings, prepare_with, run_checks

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


def _interleaved_ms(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median milliseconds of each function, run in turn so that they share the machine's state."""
    for fn in fns.values():
        for _ in range(5):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) * 1000 for name, ts in times.items()}


def _phases(sql: str, ctx: PolicyContext) -> dict[str, float]:
    """One ``prepare_with`` call split into its phases (the same steps in the same order)."""
    t0 = time.perf_counter()
    tree, _ = parse_and_qualify(sql, ctx)
    assert tree is not None
    t1 = time.perf_counter()
    analysis = Analysis(tree, ctx)
    run_checks(analysis, ctx)
    t2 = time.perf_counter()
    for rewrite in REWRITES:
        tree = rewrite(tree, analysis, ctx)
    t3 = time.perf_counter()
    postcondition_findings(tree, analysis, ctx)
    t4 = time.perf_counter()
    tree.sql(dialect=ctx.sql_dialect, comments=False, copy=False)
    t5 = time.perf_counter()
    return {
        "parse+qualify": t1 - t0,
        "checks": t2 - t1,
        "rewrite": t3 - t2,
        "re-check": t4 - t3,
        "generate": t5 - t4,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    repeat = parser.parse_args().repeat
    catalog, scope = _catalog(), load_scope(_scope())
    ctx = compile_context(scope, catalog)
    compile_ms = _interleaved_ms({"compile": lambda: compile_context(scope, catalog)}, repeat)["compile"]
    print(f"compile_context (once per scope version and catalog): {compile_ms:.2f} ms")
    for label, sql in (("typical", TYPICAL), ("wide (30 cols, 3 joins, CTEs)", _wide())):
        prepare_with(sql, ctx)  # fails loudly if the query is refused

        def baseline(sql: str = sql) -> str:
            tree = qualify(sqlglot.parse_one(sql, dialect="duckdb"), schema=ctx.schema, dialect="duckdb")
            return tree.sql(dialect="duckdb")

        medians = _interleaved_ms(
            {
                "prepare_with": functools.partial(prepare_with, sql, ctx),
                "prepare": functools.partial(prepare, sql, scope, catalog),
                "baseline": baseline,
            },
            repeat,
        )
        samples = [_phases(sql, ctx) for _ in range(max(20, repeat // 4))]
        parts = {k: statistics.median(s[k] for s in samples) * 1000 for k in samples[0]}
        base = medians["baseline"]
        print(
            f"{label}: check+rewrite median {medians['prepare_with']:.2f} ms "
            f"(prepare, compiling the context each call: {medians['prepare']:.2f} ms); "
            f"sqlglot parse+qualify+generate {base:.2f} ms; "
            f"ratio {medians['prepare_with'] / base:.2f} ({medians['prepare'] / base:.2f})"
        )
        print("   phases: " + ", ".join(f"{k} {v:.2f} ms" for k, v in parts.items()))


if __name__ == "__main__":
    main()
