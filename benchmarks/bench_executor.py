"""Benchmark the local executor.

1. Per-job overhead: a small query (``--small-rows``, default 200,000 rows like the demo's citizens),
   p50/p95 over N sequential jobs on a cold executor (a sandbox forked per job) and on one with a warm
   sandbox waiting (``warm_sandboxes=1``), interleaved, next to the same query run in-process on the
   locked-down engine (what the sandbox costs on its own). ``--gap-ms`` pauses between jobs, as a
   gateway does between one job's end and the next one's start (the warm sandbox is replaced then).
2. A large aggregate (GROUP BY with COUNT(DISTINCT unit), SUM, COUNT) through write_version + the
   LocalExecutor + the output check (``policies.check_output``, as the service releases a result)
   against the same query run by bare DuckDB over the same plaintext in one Parquet file, same
   threads, interleaved in one run, as a ratio, with the end-to-end time split (unwrap, fork,
   decrypt, load, query, serialize, transfer, output check).
3. With ``--float-sums N``: the engine alone on the large aggregate, in-process, N runs each in rotating
   order: plain multi-thread float sums (what the exact sums replaced), exact in two limbs, and exact as
   the engine runs it; medians, interquartile ranges and ratios against plain, of the wall-clock time
   and of the process's CPU time (all threads; less sensitive to other load on a shared machine).

    python benchmarks/bench_executor.py --rows 10000000
    python benchmarks/bench_executor.py --rows 4000000 --jobs 20 --repeat 3 --float-sums 11
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crypto.envelope import new_data_key
from crypto.keyring import LocalKeyring
from executors import engine
from executors.base import JobSpec, Limits, TableInput
from executors.engine import run_query
from executors.exact_sums import OneThread, Parallel
from executors.local import LocalExecutor
from executors.storage import version_id_of, write_version
from executors.walls import Isolation
from policies import Disclosure, check_output

AGGREGATE = (
    "SELECT district, COUNT(DISTINCT person_id) AS _sbx_units, SUM(cost) AS cost, COUNT(*) AS visits "
    "FROM visits GROUP BY district"
)


def make_visits(rows: int, *, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    persons = max(1, rows // 10)
    # Skewed district sizes: a few big districts, a long tail of small ones.
    weights = 1.0 / np.arange(1, 41) ** 1.1
    district = rng.choice(40, size=rows, p=weights / weights.sum())
    return pa.table(
        {
            "person_id": rng.integers(0, persons, size=rows, dtype=np.int64),
            "district": pa.array([f"district-{d:02d}" for d in range(40)]).take(pa.array(district)),
            "cost": rng.gamma(2.0, 80.0, size=rows).round(2),
            "diagnosis": pa.array([f"J{c:02d}" for c in range(100)]).take(
                pa.array(rng.integers(0, 100, size=rows))
            ),
        }
    )


def store(
    root: Path, keyring: LocalKeyring, table: pa.Table, *, n_parts: int
) -> tuple[TableInput, dict[str, float]]:
    times: dict[str, float] = {}
    started = time.perf_counter()
    version_id = version_id_of({"visits": table})
    times["version_id"] = time.perf_counter() - started
    keyring.ensure_domain("health-bureau")
    data_key = new_data_key()
    started = time.perf_counter()
    layout = write_version(
        root,
        domain="health-bureau",
        dataset="visits",
        version_id=version_id,
        tables={"visits": table},
        units={"visits": "person_id"},
        data_key=data_key,
        partition_key=keyring.secret("partition"),
        n_parts=n_parts,
    )
    times["write_version"] = time.perf_counter() - started
    key_aad = f"health-bureau/visits/{version_id}".encode()
    return (
        TableInput(
            sql_name="visits",
            domain="health-bureau",
            dataset="visits",
            version_id=version_id,
            table="visits",
            wrapped_key=keyring.wrap("health-bureau", data_key, aad=key_aad),
            key_aad=key_aad,
            parts=layout["visits"],
        ),
        times,
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_overhead(
    executors: dict[str, LocalExecutor], table_input: TableInput, small: pa.Table, *, jobs: int, gap_s: float
) -> None:
    limits = Limits(timeout_s=60, memory_mb=512, threads=2)
    sql = (
        "SELECT district, COUNT(DISTINCT person_id) AS _sbx_units, AVG(TRY(cost)) AS cost "
        "FROM (SELECT * FROM visits WHERE TRY(diagnosis <> 'J00')) AS v GROUP BY district"
    )
    steps = ("fork", "handoff", "decrypt", "load", "query", "serialize")
    totals: dict[str, list[float]] = {name: [] for name in executors}
    split: dict[str, dict[str, list[float]]] = {name: {k: [] for k in steps} for name in executors}
    walls_seen: dict[str, dict[str, list[float]]] = {name: {} for name in executors}
    names = list(executors)
    for i in range(jobs):
        # Interleaved, and each job in turn first: load on the machine and the order hit all alike.
        for name in names[i % len(names) :] + names[: i % len(names)]:
            executor = executors[name]
            time.sleep(gap_s)
            started = time.perf_counter()
            result = executor.run(JobSpec(f"{name}-{i}", sql, (table_input,), None, limits))
            totals[name].append(time.perf_counter() - started)
            for k in steps:
                split[name][k].append(result.timings.get(k, 0.0))
            for k, value in result.timings.items():
                if k.startswith("wall."):
                    walls_seen[name].setdefault(k, []).append(value)
    inproc = []
    for _ in range(jobs):
        started = time.perf_counter()
        run_query(sql, {"visits": small}, keyed_hash_key=None, limits=limits)
        inproc.append(time.perf_counter() - started)
    print(
        f"\n[1] small job ({small.num_rows:,} rows, {len(table_input.parts)} parts), {jobs} jobs each, "
        f"{1e3 * gap_s:.0f} ms between jobs, ms:"
    )
    for name in executors:
        p50, p95 = 1e3 * pct(totals[name], 0.5), 1e3 * pct(totals[name], 0.95)
        parts = "  ".join(f"{k} {1e3 * statistics.median(split[name][k]):.1f}" for k in steps)
        print(f"    {name:18s} p50 {p50:7.1f}   p95 {p95:7.1f}   ({parts})")
    cold, warm = statistics.median(totals["cold sandbox"]), statistics.median(totals["warm sandbox"])
    print(f"    warm / cold p50 ratio {warm / cold:.2f}")
    if "warm, no walls" in totals:
        bare = statistics.median(totals["warm, no walls"])
        print(f"    warm with walls / warm without p50 ratio {warm / bare:.2f}")
    walls = sorted({k for name in executors for k in walls_seen[name]})
    if walls:
        shown = "  ".join(
            f"{k.removeprefix('wall.')} {1e3 * statistics.median(walls_seen['cold sandbox'][k]):.2f}"
            for k in walls
        )
        print(f"    wall set-up, median ms (cold sandbox): {shown}")
    p50, p95 = 1e3 * pct(inproc, 0.5), 1e3 * pct(inproc, 0.95)
    print(f"    {'in-process engine':18s} p50 {p50:7.1f}   p95 {p95:7.1f} (engine only)")


def bench_aggregate(
    executor: LocalExecutor,
    table_input: TableInput,
    plain: Path,
    *,
    threads: int,
    memory_mb: int,
    repeat: int,
) -> None:
    limits = Limits(timeout_s=600, memory_mb=memory_mb, cpu_s=3600, threads=threads)
    disclosure = Disclosure(min_units=10)
    bare: list[float] = []
    ours: list[float] = []
    splits: list[dict[str, float]] = []
    for i in range(repeat):
        con = duckdb.connect(":memory:", config={"threads": threads, "memory_limit": f"{memory_mb}MiB"})
        started = time.perf_counter()
        expected = con.sql(AGGREGATE.replace("FROM visits", f"FROM read_parquet('{plain}')")).to_arrow_table()
        bare.append(time.perf_counter() - started)
        con.close()
        started = time.perf_counter()
        result = executor.run(JobSpec(f"big-{i}", AGGREGATE, (table_input,), None, limits))
        checked_at = time.perf_counter()
        check_output(result.to_pandas(), disclosure, additive=("cost", "visits"))
        ours.append(time.perf_counter() - started)
        split = dict(result.timings)
        split["output check"] = time.perf_counter() - checked_at
        inside = ("unwrap", "fork", "decrypt", "load", "query", "serialize")
        split["transfer"] = max(0.0, split.get("total", 0.0) - sum(split.get(k, 0.0) for k in inside))
        splits.append(split)
    key = "district"
    assert (
        result.to_arrow()
        .sort_by(key)
        .select(["district", "_sbx_units", "visits"])
        .equals(expected.sort_by(key).select(["district", "_sbx_units", "visits"]))
    ), "executor and bare DuckDB disagree"
    b, o = statistics.median(bare), statistics.median(ours)
    print(f"\n[2] aggregate, median of {repeat}, threads={threads}:")
    print(f"    bare DuckDB on plaintext Parquet  {b:7.3f} s")
    print(f"    LocalExecutor + output check      {o:7.3f} s   ratio {o / b:.2f}x")
    print(f"    runs, s: bare {[round(x, 3) for x in bare]}  ours {[round(x, 3) for x in ours]}")
    names = ("unwrap", "fork", "decrypt", "load", "query", "serialize", "transfer", "output check")
    for name in names:
        print(f"      {name:12s} {statistics.median(s.get(name, 0.0) for s in splits):7.3f} s")


FLOAT_SUMS = ("plain multi-thread", "exact, two limbs", "exact (as run)")


def bench_float_sums(table: pa.Table, *, threads: int, memory_mb: int, repeat: int) -> None:
    """The engine alone on the large aggregate, in-process, interleaved in rotating order: DuckDB's
    plain float SUM on the job's threads (what the exact sums replaced; it varies in its last bits
    from run to run), the exact sum in two limbs, and as the engine runs it (one limb where the
    data's range allows). Median and interquartile range of each; ratios against plain."""
    limits = Limits(timeout_s=600, memory_mb=memory_mb, cpu_s=3600, threads=threads)
    tables = {"visits": table}
    planned = engine.plan_threads

    def plain(sql: str, schemas: Mapping[str, pa.Schema], **_: object) -> Parallel | OneThread:
        return Parallel(sql)

    def two_limbs(sql: str, schemas: Mapping[str, pa.Schema], **_: object) -> Parallel | OneThread:
        return planned(sql, schemas)

    variants = {FLOAT_SUMS[0]: plain, FLOAT_SUMS[1]: two_limbs, FLOAT_SUMS[2]: planned}
    times: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    bits: dict[str, set[bytes]] = {name: set() for name in variants}
    names = list(variants)
    try:
        for i in range(repeat):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                engine.plan_threads = variants[name]  # type: ignore[assignment]
                started, cpu_started = time.perf_counter(), time.process_time()
                result = run_query(AGGREGATE, tables, keyed_hash_key=None, limits=limits)
                times[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - cpu_started)
                bits[name].add(pickle.dumps(sorted(result.to_pylist(), key=lambda r: r["district"])))
    finally:
        engine.plan_threads = planned
    print(
        f"\n[3] float sums, engine only ({table.num_rows:,} rows, in-process), {repeat} runs, "
        f"threads={threads}:"
    )
    for label, measured in (("wall", times), ("CPU", cpu)):
        base = statistics.median(measured[FLOAT_SUMS[0]])
        for name in names:
            q1, median, q3 = statistics.quantiles(measured[name], n=4, method="inclusive")
            print(
                f"    {label:4s} {name:20s} median {1e3 * median:7.1f} ms  "
                f"IQR {1e3 * q1:7.1f}-{1e3 * q3:7.1f}  ratio {median / base:.3f}  "
                f"distinct results {len(bits[name])}"
            )
    assert bits[FLOAT_SUMS[1]] == bits[FLOAT_SUMS[2]], "one limb and two limbs disagree"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the large aggregate")
    parser.add_argument("--parts", type=int, default=4, help="unit-partitioned parts per table")
    parser.add_argument("--jobs", type=int, default=50, help="small jobs for the overhead figure")
    parser.add_argument("--small-rows", type=int, default=200_000, help="rows of the small job's table")
    parser.add_argument("--gap-ms", type=float, default=30.0, help="pause between small jobs")
    parser.add_argument("--skip-large", action="store_true", help="only the small-job figures")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-mb", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--float-sums",
        type=int,
        default=0,
        metavar="N",
        help="also time the engine alone on the large aggregate N times each: plain multi-thread float "
        "sums against the exact ones (two limbs, and as run), interleaved",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-executor-") as tmp:
        root = Path(tmp)
        keyring = LocalKeyring.open(root / "keyring.json", create=True)
        executor = LocalExecutor(key_provider=keyring, max_workers=1)
        warm = LocalExecutor(key_provider=keyring, max_workers=1, warm_sandboxes=1)
        unwalled = LocalExecutor(
            key_provider=keyring, max_workers=1, warm_sandboxes=1, isolation=Isolation.NONE
        )
        try:
            small = make_visits(args.small_rows)
            small_input, _ = store(root / "small", keyring, small, n_parts=8)
            bench_overhead(
                {"cold sandbox": executor, "warm sandbox": warm, "warm, no walls": unwalled},
                small_input,
                small,
                jobs=args.jobs,
                gap_s=args.gap_ms / 1e3,
            )
            if args.skip_large:
                return

            started = time.perf_counter()
            big = make_visits(args.rows)
            print(f"\n    generated {args.rows:,} rows in {time.perf_counter() - started:.1f} s")
            plain = root / "plain.parquet"
            pq.write_table(big, plain, compression="zstd")
            big_input, ingest = store(root / "big", keyring, big, n_parts=args.parts)
            print(
                f"    ingest: version_id_of {ingest['version_id']:.1f} s, "
                f"write_version ({args.parts} parts) {ingest['write_version']:.1f} s"
            )
            if args.float_sums:
                bench_float_sums(big, threads=args.threads, memory_mb=args.memory_mb, repeat=args.float_sums)
            del big
            bench_aggregate(
                executor, big_input, plain, threads=args.threads, memory_mb=args.memory_mb, repeat=args.repeat
            )
        finally:
            executor.close()
            warm.close()
            unwalled.close()


if __name__ == "__main__":
    main()
