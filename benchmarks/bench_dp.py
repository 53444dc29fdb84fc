"""Benchmark differential privacy.

1. The dry-run preview: ``plan_dp`` + ``cost_of`` for a query already analysed (what the dry run adds
   to the check it runs anyway), and the whole path from SQL text (parse, qualify, checks, plan, cost);
   p50/p95 over ``--repeat`` runs after a warm-up.
2. Each DP aggregate against the same job without DP on ``--rows`` rows in DuckDB (in-process, same
   threads, interleaved): the DP one carries the per-unit keyed sample where the table needs one (not on
   a table with one row per unit), the clamp, the distinct-unit count only where keys come from the
   data, plus the OpenDP noise on the result; the non-DP one its k threshold and the ledger's unit lists.

    python benchmarks/bench_dp.py --rows 10000000

To compare two versions of the DP rewrite on the same data, in the same process, interleaved: write
one version's DP SQL with ``--dump-sql old.json`` (on that version), then run this one with
``--baseline-sql old.json``: each DP job then also runs as that SQL, and the exact pre-noise results
of both are compared (equal unless the two versions bound contributions differently).

``--engine`` runs every job as the service does: the tables registered as Arrow tables (what a job's
decrypted parts are) on a fresh locked-down connection per query through ``executors.engine.run_query``
(its thread plan and exact sums included), instead of native DuckDB tables on one open connection. The
two paths give different ratios (docs/dp.md, "Measured cost"): the non-DP job's distinct counts cost
more over Arrow strings than over DuckDB's compressed columns, the DP job's window about the same.
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd

from executors.base import Limits
from executors.dp_sampler import draw
from executors.engine import run_query
from policies.analysis.levels import Analysis
from policies.catalog import Catalog
from policies.context import PolicyContext, compile_context
from policies.dp.cost import cost_of
from policies.dp.examples import dp_catalog, dp_scope
from policies.dp.noise import release_dp
from policies.dp.plan import DpPlan, plan_dp
from policies.model import DifferentialPrivacy, Scope
from policies.passes import REWRITES
from policies.pipeline import parse_and_qualify, prepare_with, run_checks

QUERIES = [
    "SELECT district, COUNT(*) AS n, AVG(income) AS a FROM citizens GROUP BY district",
    "SELECT ward, COUNT(*) AS n, SUM(cost) AS s FROM visits GROUP BY ward",
    "SELECT c.district, COUNT(*) AS n, SUM(v.cost) AS s FROM citizens c JOIN visits v "
    "ON c.person_id = v.person_id GROUP BY c.district",
]


def _cpu() -> float:
    """This process's CPU seconds so far, every DuckDB thread included: steadier than the wall clock on
    a loaded machine, where a query's wall time also counts the time it waited for a core."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _release(exact: pd.DataFrame, *, plan: DpPlan, params: DifferentialPrivacy) -> None:
    release_dp(exact, plan, params, sample=draw)


def _timed(
    run: Callable[[str], pd.DataFrame],
    sql: str,
    release: Callable[[pd.DataFrame], None] | None,
    wall: list[float],
    cpu: list[float],
) -> pd.DataFrame:
    """Run ``sql`` (and ``release`` its exact result), appending the wall and CPU seconds it took."""
    start, start_cpu = time.perf_counter(), _cpu()
    exact = run(sql)
    if release is not None:
        release(exact)
    wall.append(time.perf_counter() - start)
    cpu.append(_cpu() - start_cpu)
    return exact


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


def _without_dp(scope: Scope) -> Scope:
    """The same scope with ``disclosure.dp`` removed: the job the DP one is compared with."""
    return scope.model_copy(update={"disclosure": scope.disclosure.model_copy(update={"dp": None})})


def _register(catalog: Catalog) -> Catalog:
    """``citizens`` as a register: one row per person (what the upload measures and records)."""
    datasets = tuple(
        d.model_copy(
            update={
                "tables": tuple(
                    t.model_copy(update={"one_row_per_unit": True}) if t.name == "citizens" else t
                    for t in d.tables
                )
            }
        )
        for d in catalog.datasets
    )
    return Catalog(datasets=datasets)


def _k_only_sql(sql: str, ctx: PolicyContext) -> str:
    """The non-DP job without the released-cohort ledger's unit lists: its k-threshold aggregate only."""
    tree, _ = parse_and_qualify(sql, ctx)
    assert tree is not None
    analysis = Analysis(tree, ctx)
    for rewrite in REWRITES:
        tree = rewrite(tree, analysis, ctx)
    return tree.sql(dialect="duckdb", comments=False)


#: (name, query, whether citizens is declared one row per unit)
AGGREGATES = [
    ("register, public keys", QUERIES[0], True),
    ("register, no declaration", QUERIES[0], False),
    ("visits, keys from the data", QUERIES[1], False),
    ("register joined with visits", QUERIES[2], True),
    # The rows bound alone (no group sample): only people above the bound are sorted.
    ("visits, no grouping", "SELECT COUNT(*) AS n, SUM(cost) AS s FROM visits", False),
]


def dp_sql() -> dict[str, str]:
    """Each aggregate's DP SQL as this version rewrites it (for ``--dump-sql``)."""
    out = {}
    for name, sql, register in AGGREGATES:
        catalog = _register(dp_catalog()) if register else dp_catalog()
        out[name] = prepare_with(sql, compile_context(dp_scope(), catalog)).sql
    return out


def bench_aggregate(
    rows: int,
    repeat: int,
    only: set[str] | None,
    *,
    spread: bool = False,
    baseline: dict[str, str] | None = None,
    engine: bool = False,
) -> None:
    """Each DP job against the same job without DP, on ``rows`` rows per table (interleaved, medians).

    ``citizens`` has one row per person (``rows`` people), ``visits`` three rows per person (``spread``:
    three on average, drawn by a hash, so that some people are over the rows bound); both keep ``rows``
    rows. The non-DP job is timed twice: as the service runs it (k threshold and the released-cohort
    ledger's unit lists) and with its k-threshold aggregate only. ``baseline``: another version's DP SQL
    per aggregate, timed in the same loop, its exact result checked equal to this version's. ``engine``:
    each query through ``run_query`` over the tables as Arrow (as the service runs jobs)."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE citizens AS SELECT i + 1 AS person_id, 'N' AS national_id, 'P' AS name, "
        "'0170' || (i % 100) AS phone, DATE '1970-01-01' AS birth_date, "
        "CASE WHEN i % 2 = 0 THEN 'F' ELSE 'M' END AS sex, "
        "['North', 'South', 'East', 'West'][i % 4 + 1] AS district, "
        f"(i * 7919) % 120000 AS income, 'J10' AS diagnosis FROM range({rows}) t(i)"
    )
    person = "hash(i)" if spread else "(i * 2654435761)"
    con.execute(
        f"CREATE TABLE visits AS SELECT {person} % {max(rows // 3, 1)} + 1 AS person_id, "
        "'W' || (i % 40) AS ward, ((i * 31) % 700)::DOUBLE AS cost FROM range(" + str(rows) + ") t(i)"
    )
    arrow = (
        {t: con.sql(f"SELECT * FROM {t}").to_arrow_table() for t in ("citizens", "visits")} if engine else {}
    )
    limits = Limits(timeout_s=3600, memory_mb=8192, cpu_s=36000, threads=2)

    def run(sql: str) -> pd.DataFrame:
        params = {"sbx_dp_key": "k"} if "$sbx_dp_key" in sql else None
        if engine:
            table = run_query(sql, arrow, keyed_hash_key=None, limits=limits, parameters=params)
            result: pd.DataFrame = table.to_pandas()
        else:
            result = con.execute(sql, params).df()
        return result

    for name, sql, register in AGGREGATES:
        if only and name not in only:
            continue
        catalog = _register(dp_catalog()) if register else dp_catalog()
        ctx = compile_context(dp_scope(), catalog)
        plain_ctx = compile_context(_without_dp(dp_scope()), catalog)
        assert ctx.disclosure.dp is not None
        private = prepare_with(sql, ctx)
        assert private.dp_plan is not None
        service = prepare_with(sql, plain_ctx).sql
        k_only = _k_only_sql(sql, plain_ctx)
        timings: dict[str, list[float]] = {"service": [], "k": [], "dp": [], "baseline": []}
        cpu: dict[str, list[float]] = {key: [] for key in timings}
        old = (baseline or {}).get(name)
        agree: list[bool] = []

        release = functools.partial(_release, plan=private.dp_plan, params=ctx.disclosure.dp)
        for _ in range(repeat):
            if old is not None:
                exact_old = _timed(run, old, release, timings["baseline"], cpu["baseline"])
            _timed(run, service, None, timings["service"], cpu["service"])
            _timed(run, k_only, None, timings["k"], cpu["k"])
            exact = _timed(run, private.sql, release, timings["dp"], cpu["dp"])
            if old is not None:
                ordered = list(exact.columns)
                same = (
                    exact.sort_values(ordered)
                    .reset_index(drop=True)
                    .equals(exact_old[ordered].sort_values(ordered).reset_index(drop=True))
                )
                agree.append(same)
        s, k, d = (statistics.median(timings[x]) for x in ("service", "k", "dp"))
        versus = ""
        if old is not None:
            b = statistics.median(timings["baseline"])
            # Equal where both bound by the same rows; a different bounding (contribution clamping
            # against the sample) keeps the sensitivity, not the exact sums.
            equal = "exact results equal" if all(agree) else "exact results differ: another bounding"
            versus = f"; baseline DP SQL {b * 1e3:.0f} ms, ratio {b / s:.2f} ({equal})"
        print(
            f"{name} ({rows:,} rows): without DP {s * 1e3:.0f} ms as the service runs it "
            f"(k-threshold aggregate only {k * 1e3:.0f} ms); with DP {d * 1e3:.0f} ms "
            f"(noise included); ratio {d / s:.2f} ({d / k:.2f} against the k-only aggregate){versus}"
        )
        cs, cd = (statistics.median(cpu[x]) for x in ("service", "dp"))
        cpu_versus = ""
        if old is not None:
            cb = statistics.median(cpu["baseline"])
            cpu_versus = f"; baseline DP SQL {cb * 1e3:.0f} ms, ratio {cb / cs:.2f}"
        print(
            f"  CPU time: without DP {cs * 1e3:.0f} ms, with DP {cd * 1e3:.0f} ms; "
            f"ratio {cd / cs:.2f}{cpu_versus}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--aggregate-repeat", type=int, default=5)
    parser.add_argument("--only", action="append", help="run only this aggregate (repeatable)")
    parser.add_argument("--skip-preview", action="store_true")
    parser.add_argument("--spread", action="store_true", help="visits per person drawn by a hash (1 to ~10)")
    parser.add_argument("--dump-sql", help="write each aggregate's DP SQL to this JSON file and stop")
    parser.add_argument("--baseline-sql", help="JSON of another version's DP SQL to time alongside")
    parser.add_argument(
        "--engine", action="store_true", help="run every job through the service's engine over Arrow tables"
    )
    args = parser.parse_args()
    if args.dump_sql:
        with Path(args.dump_sql).open("w", encoding="utf-8") as out:
            json.dump(dp_sql(), out, indent=1)
        return
    baseline = None
    if args.baseline_sql:
        with Path(args.baseline_sql).open(encoding="utf-8") as src:
            baseline = json.load(src)
    if not args.skip_preview:
        bench_preview(args.repeat)
    only = set(args.only or ()) or None
    bench_aggregate(
        args.rows, args.aggregate_repeat, only, spread=args.spread, baseline=baseline, engine=args.engine
    )


if __name__ == "__main__":
    main()
