"""Ray backend benchmark: a large unit-count aggregate on Ray against DuckDB's own threads, per-job
overhead of Ray against the local backend, and a multi-node estimate on one machine.

    .venv/bin/python benchmarks/bench_ray.py --rows 5000000 --parts 16 --cpus 1,2

The aggregate is a GROUP BY with COUNT(DISTINCT unit), SUM and COUNT over encrypted unit-partitioned
parts. "duckdb-N" is one bare DuckDB process with N threads on the plaintext already in memory (the
bar); "ray-N" is the whole Ray job on a local one-node cluster with N CPUs (one task per part in a
forked sandbox: decrypt, parse, query; then the sealed merge). "nodes-K" runs K one-CPU nodes on this
machine. Every result is checked against DuckDB's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from crypto.envelope import new_data_key
from crypto.keyring import LocalKeyring
from executors.base import JobSpec, Limits, TableInput
from executors.local import LocalExecutor
from executors.ray_cluster import NODE_KEYRING_ENV, KeyringFile
from executors.storage import version_id_of, write_version

DOMAIN = "bench"
SQL = (
    "SELECT district, COUNT(DISTINCT person_id) AS _sbx_units, SUM(cost) AS cost, COUNT(*) AS n "
    "FROM t GROUP BY district ORDER BY district"
)
SMALL_SQL = "SELECT district, COUNT(*) AS n, COUNT(DISTINCT person_id) AS _sbx_units FROM t GROUP BY 1"


def make_table(rows: int, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "person_id": rng.integers(0, max(1, rows // 5), rows, dtype=np.int64),
            "district": pa.array(rng.integers(0, 40, rows, dtype=np.int32)).cast(pa.string()),
            "cost": rng.integers(0, 10_000, rows, dtype=np.int64),
        }
    )


def store(root: Path, keyring: LocalKeyring, table: pa.Table, n_parts: int, name: str) -> TableInput:
    version = version_id_of({"t": table})
    data_key = new_data_key()
    layout = write_version(
        root,
        domain=DOMAIN,
        dataset=name,
        version_id=version,
        tables={"t": table},
        units={"t": "person_id"},
        data_key=data_key,
        partition_key=keyring.secret("partition"),
        n_parts=n_parts,
    )
    key_aad = f"{DOMAIN}/{name}/{version}".encode()
    return TableInput(
        sql_name="t",
        domain=DOMAIN,
        dataset=name,
        version_id=version,
        table="t",
        wrapped_key=keyring.wrap(DOMAIN, data_key, aad=key_aad),
        key_aad=key_aad,
        parts=layout["t"],
        unit="person_id",
    )


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def bare_duckdb(table: pa.Table, threads: int, repeat: int) -> tuple[float, list[dict[str, object]]]:
    con = duckdb.connect(":memory:", config={"threads": threads})
    con.register("t", table)
    seconds, result = timed(lambda: con.sql(SQL).to_arrow_table(), repeat)
    con.close()
    assert isinstance(result, pa.Table)
    return seconds, result.to_pylist()


def ray_job(
    executor: object, table: TableInput, limits: Limits, repeat: int, tag: str
) -> tuple[float, object]:
    counter = iter(range(10**6))
    run = executor.run  # type: ignore[attr-defined]
    run(JobSpec(f"{tag}-warm", SQL, (table,), None, limits))  # fork servers warm on every worker
    return timed(
        lambda: run(JobSpec(f"{tag}-{next(counter)}", SQL, (table,), None, limits)).to_arrow(), repeat
    )


def overhead(executor: object, keyring: LocalKeyring, small: TableInput, limits: Limits, runs: int) -> None:
    """p50 wall time of a small one-part job on the local backend and on Ray."""
    local = LocalExecutor(key_provider=keyring, max_workers=1)
    backends = {"local": local.run, "ray": executor.run}  # type: ignore[attr-defined]
    p50 = {}
    for name, run in backends.items():
        times = []
        for i in range(runs):
            started = time.perf_counter()
            run(JobSpec(f"{name}-small-{i}", SMALL_SQL, (small,), None, limits))
            times.append(time.perf_counter() - started)
        p50[name] = statistics.median(times) * 1000
    local.close()
    print(f"\n== small job p50 over {runs} runs: local {p50['local']:.1f} ms, ray {p50['ray']:.1f} ms")
    print(f"   Ray overhead per job: {p50['ray'] - p50['local']:.1f} ms\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--parts", type=int, default=16)
    parser.add_argument("--cpus", default="1,2", help="comma-separated CPU counts for DuckDB and Ray")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--small-runs", type=int, default=30)
    parser.add_argument(
        "--nodes", type=int, default=2, help="one-CPU nodes for the multi-node estimate (0: skip)"
    )
    args = parser.parse_args()
    cpus = [int(c) for c in args.cpus.split(",")]

    # Imported here, not at the top: the benchmark measures Ray; the project imports it in one module.
    import ray
    from ray.cluster_utils import Cluster

    from executors.ray_executor import RayExecutor

    root = Path(tempfile.mkdtemp(prefix="sbxbench-", dir="/tmp"))
    os.environ.setdefault("RAY_TMPDIR", str(root))
    keyring_path = root / "keyring.json"
    keyring = LocalKeyring.open(keyring_path, create=True)
    keyring.ensure_domain(DOMAIN)
    os.environ[NODE_KEYRING_ENV] = str(keyring_path)
    limits = Limits(timeout_s=600, memory_mb=4096, cpu_s=3600, threads=max(cpus))
    print(f"rows={args.rows:,} parts={args.parts} cores={os.cpu_count()}")

    started = time.perf_counter()
    table = make_table(args.rows)
    big = store(root / "data", keyring, table, args.parts, "big")
    small_table = make_table(2_000, seed=3)
    small = store(root / "data", keyring, small_table, 1, "small")
    print(f"prepared and encrypted in {time.perf_counter() - started:.1f} s")

    expected = None
    print("\n== aggregate (median seconds)")
    for n in cpus:
        seconds, expected = bare_duckdb(table, n, args.repeat)
        print(f"duckdb-{n:<3} {seconds:8.3f}")
    for n in cpus:
        ray.init(
            num_cpus=n,
            resources={f"domain:{DOMAIN}": 1},
            object_store_memory=200 * 2**20,
            include_dashboard=False,
            log_to_driver=False,
        )
        executor = RayExecutor(key_sources={DOMAIN: KeyringFile(str(keyring_path))})
        seconds, result = ray_job(executor, big, replace(limits, threads=n), args.repeat, f"ray{n}")
        assert isinstance(result, pa.Table)
        assert result.to_pylist() == expected, "Ray result differs"
        print(f"ray-{n:<6} {seconds:8.3f}")

        if n == cpus[0]:
            overhead(executor, keyring, small, replace(limits, threads=1), args.small_runs)
        executor.close()
        ray.shutdown()

    if args.nodes:
        print(f"== multi-node estimate: K one-CPU nodes on this machine, {args.parts} parts")
        base = None
        for k in range(1, args.nodes + 1):
            cluster = Cluster(
                initialize_head=True,
                head_node_args={
                    "num_cpus": 0,
                    "include_dashboard": False,
                    "object_store_memory": 100 * 2**20,
                },
            )
            for _ in range(k):
                cluster.add_node(
                    num_cpus=1,
                    resources={f"domain:{DOMAIN}": 1},
                    object_store_memory=100 * 2**20,
                    env_vars={NODE_KEYRING_ENV: str(keyring_path)},
                )
            executor = RayExecutor(address=cluster.address)
            seconds, result = ray_job(executor, big, replace(limits, threads=1), args.repeat, f"nodes{k}")
            assert isinstance(result, pa.Table)
            assert result.to_pylist() == expected
            base = base or seconds
            speedup = base / seconds
            print(f"nodes-{k:<4} {seconds:8.3f}  speed-up {speedup:4.2f}  ({speedup / k:.2f} of linear)")
            executor.close()
            ray.shutdown()
            cluster.shutdown()


if __name__ == "__main__":
    main()
