"""Benchmark differential privacy.

1. The dry-run preview: ``plan_dp`` + ``cost_of`` for a query already analysed (what the dry run adds
   to the check it runs anyway), and the whole path from SQL text (parse, qualify, checks, plan, cost);
   p50/p95 over ``--repeat`` runs after a warm-up.
2. The DP aggregate against the same aggregate without DP on ``--rows`` rows in DuckDB (in-process, same
   threads, interleaved): the DP one carries the per-unit keyed sample, the groups bound and the clamp,
   plus the OpenDP noise on the result.

    python benchmarks/bench_dp.py --rows 10000000
"""

from __future__ import annotations

import argparse
import statistics
import time

import duckdb

from executors.dp_sampler import draw
from policies.analysis.levels import Analysis
from policies.context import compile_context
from policies.dp.cost import cost_of
from policies.dp.examples import dp_catalog, dp_scope
from policies.dp.noise import release_dp
from policies.dp.plan import plan_dp
from policies.pipeline import parse_and_qualify, prepare_with, run_checks
from tests.policies.dp.pipeline_dp import prepare_dp

QUERIES = [
    "SELECT district, COUNT(*) AS n, AVG(income) AS a FROM citizens GROUP BY district",
    "SELECT ward, COUNT(*) AS n, SUM(cost) AS s FROM visits GROUP BY ward",
    "SELECT c.district, COUNT(*) AS n, SUM(v.cost) AS s FROM citizens c JOIN visits v "
    "ON c.person_id = v.person_id GROUP BY c.district",
]


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return f"p50 {statistics.median(ordered) * 1e3:.3f} ms, p95 {p95 * 1e3:.3f} ms"


def bench_preview(repeat: int) -> None:
    ctx = compile_context(dp_scope(), dp_catalog())
    assert ctx.disclosure.dp is not None
    for sql in QUERIES:
        tree, _ = parse_and_qualify(sql, ctx)
        assert tree is not None
        analysis = Analysis(tree, ctx)
        added, whole = [], []
        for i in range(repeat + 20):
            start = time.perf_counter()
            cost_of(plan_dp(analysis, ctx), ctx.disclosure.dp)
            middle = time.perf_counter()
            fresh, _ = parse_and_qualify(sql, ctx)
            assert fresh is not None
            fresh_analysis = Analysis(fresh, ctx)
            run_checks(fresh_analysis, ctx)
            cost_of(plan_dp(fresh_analysis, ctx), ctx.disclosure.dp)
            end = time.perf_counter()
            if i >= 20:
                added.append(middle - start)
                whole.append(end - middle)
        print(f"preview {sql[:48]!r}: plan+cost {_ms(added)}; from SQL {_ms(whole)}")


def bench_aggregate(rows: int, repeat: int) -> None:
    con = duckdb.connect()
    people = max(rows // 3, 1)
    con.execute(
        f"CREATE TABLE citizens AS SELECT i % {people} + 1 AS person_id, 'N' AS national_id, 'P' AS name, "
        "'0170' || (i % 100) AS phone, DATE '1970-01-01' AS birth_date, "
        "CASE WHEN i % 2 = 0 THEN 'F' ELSE 'M' END AS sex, "
        "['North', 'South', 'East', 'West'][i % 4 + 1] AS district, "
        f"(i * 7919) % 120000 AS income, 'J10' AS diagnosis FROM range({rows}) t(i)"
    )
    con.execute("CREATE TABLE visits (person_id BIGINT, ward VARCHAR, cost DOUBLE)")
    ctx = compile_context(dp_scope(), dp_catalog())
    assert ctx.disclosure.dp is not None
    sql = QUERIES[0]
    plain = prepare_with(sql, ctx).sql  # today's rewrite (dp ignored)
    private = prepare_dp(sql, ctx)
    timings: dict[str, list[float]] = {"plain": [], "dp": []}
    for _ in range(repeat):
        start = time.perf_counter()
        con.execute(plain).df()
        timings["plain"].append(time.perf_counter() - start)
        start = time.perf_counter()
        exact = con.execute(private.sql, {"sbx_dp_key": "k"}).df()
        release_dp(exact, private.plan, ctx.disclosure.dp, sample=draw)
        timings["dp"].append(time.perf_counter() - start)
    p, d = statistics.median(timings["plain"]), statistics.median(timings["dp"])
    print(
        f"aggregate over {rows:,} rows: without DP {p * 1e3:.1f} ms, "
        f"with DP {d * 1e3:.1f} ms, ratio {d / p:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--aggregate-repeat", type=int, default=5)
    args = parser.parse_args()
    bench_preview(args.repeat)
    bench_aggregate(args.rows, args.aggregate_repeat)


if __name__ == "__main__":
    main()
