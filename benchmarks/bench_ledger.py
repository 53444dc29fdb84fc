"""Benchmark the released-cohort ledger (issue 10).

1. Check: ``CohortLedger.check_and_record`` on a scope lineage that already holds ``--cells``
   released cells (default 10,000, written by earlier jobs through the same call), on SQLite in a
   temporary directory: median and p95 added time per job release (a job of ``--job-cells`` rows),
   the first check after a restart (every batch unsealed once), and storage per released cell (the
   sealed payload, and the database file's growth). The earlier cells' unit counts are log-uniform
   between k and ``--population``; their power sums are those of random sets, which is what keyed
   sketches of distinct sets look like to the decision, and their least elements those of random
   subsets of one population (so large cohorts share them, as in a real lineage). Each job's rows
   carry two group keys, so their margins are checked and recorded too.
2. Cost in the large aggregate: the 10-million-row GROUP BY of ``bench_executor.py`` through the
   LocalExecutor, bare DuckDB on the same plaintext, the same job without the ledger, and with it
   (``ARRAY_AGG(DISTINCT person_id)`` per row, sketched in the sandbox), interleaved, medians.

    python benchmarks/bench_ledger.py            # the figures of the note
    python benchmarks/bench_ledger.py --quick    # under a minute: 1M rows, fewer timed jobs
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
from bench_executor import AGGREGATE, make_visits, store
from sqlalchemy import func, select

from crypto.keyring import LocalKeyring
from executors.base import JobSpec, Limits
from executors.local import LocalExecutor
from policies import Disclosure, check_output
from policies.cohorts import Cell, CohortSketch, least_for, lineage, sums_for
from policies.cohorts.cells import cells_of
from policies.cohorts.ledger import decide
from policies.cohorts.reference import decide_each
from policies.cohorts.sketch import BUCKETS, P
from policies.small_groups import small_groups_statement
from sandbox_api.server.services import cohort_ledger
from sandbox_api.server.services.cohort_ledger import CohortLedger
from sandbox_api.server.store.db import open_database
from sandbox_api.server.store.migrate import upgrade
from sandbox_api.server.store.models import CohortLedgerBatchRow

K = 10
LINEAGE = lineage("bench-scope", ["health-bureau/visits"])
WITH_COHORTS = AGGREGATE.replace(" FROM visits", ", ARRAY_AGG(DISTINCT person_id) AS _sbx_cohort FROM visits")
#: The same with the k rule in the query, as ``suppress_small_rows`` writes it: its audit count of the
#: groups removed (``policies.small_groups``) is one more statement in the sandbox.
WITH_K_RULE = WITH_COHORTS + f' HAVING "_sbx_units" >= {K}'


class _Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


_ELEMENTS: dict[int, np.ndarray] = {}


def population_elements(population: int) -> np.ndarray:
    """The keyed elements of a population, ascending (drawn once per size)."""
    if population not in _ELEMENTS:
        rng = np.random.default_rng(11)
        _ELEMENTS[population] = np.unique(rng.integers(1, P, population, dtype=np.int64))
    return _ELEMENTS[population]


def least_of_subset(rng: np.random.Generator, n: int, population: int, h: int) -> tuple[int, ...]:
    """The ``h`` least elements of a random ``n``-subset of the population: every cohort of a lineage
    is a subset of the same people, so large cohorts share their least elements (the keyed search's
    worst case), drawn by geometric gaps without building the subset."""
    gaps = rng.geometric(min(1.0, n / population), size=min(h, n))
    at = np.cumsum(gaps) - 1
    elements = population_elements(population)
    return tuple(int(v) for v in elements[at[at < len(elements)]])


def random_cells(rng: np.random.Generator, count: int, *, population: int) -> list[Cell]:
    """Cells of random cohorts of one population: log-uniform sizes, random power sums, multinomial
    bucket counts, and least elements as those of a random subset. A job's rows come with two
    group keys, so the ledger also checks and records their margins (8 for 10 rows)."""
    sizes = np.exp(rng.uniform(np.log(K), np.log(population), count)).astype(np.int64)
    sums = rng.integers(0, P, (count, sums_for(K)))
    return [
        Cell(
            (
                CohortSketch(
                    int(n),
                    tuple(int(v) for v in row),
                    tuple(int(b) for b in rng.multinomial(n, [1 / BUCKETS] * BUCKETS)),
                    least_of_subset(rng, int(n), population, least_for(K)),
                ),
            ),
            slots=("_sbx_sketch",),
            # Two group keys, as a GROUP BY a, b releases them: the job's rows have margins.
            row=(f"a{i % 2}", f"b{i // 2}", int(n)),
        )
        for i, (n, row) in enumerate(zip(sizes, sums, strict=True))
    ]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_check(
    root: Path, *, cells: int, job_cells: int, jobs: int, population: int, baseline: bool = True
) -> None:
    rng = np.random.default_rng(3)
    db = open_database(f"sqlite:///{root / 'meta.sqlite'}")
    upgrade(db)
    master = bytes(range(32))
    ledger = CohortLedger(master=master, clock=_Clock())
    file = root / "meta.sqlite"
    before = file.stat().st_size
    started = time.perf_counter()
    for i in range(0, cells, job_cells):
        with db.write() as session:
            ledger.check_and_record(
                session,
                LINEAGE,
                random_cells(rng, job_cells, population=population),
                min_units=K,
                job_id=f"f{i}",
            )
    fill = time.perf_counter() - started
    with db.read() as session:
        held = sum(session.execute(select(CohortLedgerBatchRow.cohorts)).scalars())
        sealed = session.execute(select(func.sum(func.length(CohortLedgerBatchRow.sealed)))).scalar_one()
    grown = file.stat().st_size - before
    restarted = CohortLedger(master=master, clock=_Clock())
    started = time.perf_counter()
    with db.write() as session:
        restarted.check_and_record(
            session, LINEAGE, random_cells(rng, job_cells, population=population), min_units=K, job_id="cold"
        )
    cold = time.perf_counter() - started
    # The batched search (``decide``) and, interleaved job by job in the same ledger, the search one
    # cohort at a time that it replaced (``decide_each``, the same decisions): the same load and the
    # same ledger size for both, so their ratio holds on a busy machine.
    timed: dict[str, tuple[list[float], list[float]]] = {"batched": ([], []), "one by one": ([], [])}
    searches = {"batched": decide, "one by one": decide_each}
    for i in range(jobs):
        for name in (list(timed) if i % 2 else list(timed)[::-1]) if baseline else ["batched"]:
            job = random_cells(rng, job_cells, population=population)
            cohort_ledger.decide = searches[name]  # type: ignore[attr-defined]
            started, used = time.perf_counter(), time.process_time()
            with db.write() as session:
                restarted.check_and_record(session, LINEAGE, job, min_units=K, job_id=f"t{i}-{name}")
            timed[name][0].append(time.perf_counter() - started)
            # CPU time of this process: on a shared machine, wall time mostly measures the other load.
            timed[name][1].append(time.process_time() - used)
    cohort_ledger.decide = decide  # type: ignore[attr-defined]
    db.dispose()
    times, cpu = timed["batched"]
    print(
        f"\n[1] ledger check, k={K}, {held:,} cells held (filled in {fill:.1f} s), jobs of {job_cells} rows:"
    )
    print(
        f"    added per job release: median {1e3 * statistics.median(times):.2f} ms, "
        f"p95 {1e3 * pct(times, 0.95):.2f} ms; CPU median {1e3 * statistics.median(cpu):.2f} ms, "
        f"p95 {1e3 * pct(cpu, 0.95):.2f} ms"
    )
    if baseline:
        old_times, old_cpu = timed["one by one"]
        print(
            "    one cohort at a time (before, interleaved): "
            f"median {1e3 * statistics.median(old_times):.2f} ms, "
            f"CPU median {1e3 * statistics.median(old_cpu):.2f} ms; batched / before: wall "
            f"{statistics.median(times) / statistics.median(old_times):.2f}x, CPU "
            f"{statistics.median(cpu) / statistics.median(old_cpu):.2f}x"
        )
    print(f"    first check after a restart (unseal everything): {1e3 * cold:.1f} ms")
    print(
        f"    storage per released cell: sealed payload {sealed / held:.1f} bytes "
        f"(sketch {6 + 4 * sums_for(K) + 2 * BUCKETS + 4 * least_for(K)} bytes at most), "
        f"database file {grown / held:.1f} bytes"
    )


def bench_aggregate(root: Path, *, rows: int, repeat: int, threads: int, memory_mb: int) -> None:
    keyring = LocalKeyring.open(root / "keyring.json", create=True)
    executor = LocalExecutor(key_provider=keyring, max_workers=1)
    limits = Limits(timeout_s=600, memory_mb=memory_mb, cpu_s=3600, threads=threads)
    ledger = CohortLedger(master=bytes(range(32)), clock=_Clock())
    request = ledger.request(LINEAGE, min_units=K)
    disclosure = Disclosure(min_units=K)
    try:
        big = make_visits(rows)
        plain = root / "plain.parquet"
        pq.write_table(big, plain, compression="zstd")
        table_input, _ = store(root / "big", keyring, big, n_parts=4)
        del big
        bare: list[float] = []
        plain_job: list[float] = []
        with_ledger: list[float] = []
        counted: list[float] = []
        sketch_s: list[float] = []
        count_sql = small_groups_statement(WITH_K_RULE)
        for i in range(repeat):
            con = duckdb.connect(":memory:", config={"threads": threads, "memory_limit": f"{memory_mb}MiB"})
            started = time.perf_counter()
            con.sql(AGGREGATE.replace("FROM visits", f"FROM read_parquet('{plain}')")).to_arrow_table()
            bare.append(time.perf_counter() - started)
            con.close()
            started = time.perf_counter()
            result = executor.run(JobSpec(f"plain-{i}", AGGREGATE, (table_input,), None, limits))
            check_output(result.to_pandas(), disclosure, additive=("cost", "visits"))
            plain_job.append(time.perf_counter() - started)
            started = time.perf_counter()
            spec = JobSpec(f"ledger-{i}", WITH_COHORTS, (table_input,), None, limits, cohorts=request)
            result = executor.run(spec)
            frame = result.to_pandas()
            cells = cells_of(frame)
            check_output(frame, disclosure, additive=("cost", "visits"))
            with_ledger.append(time.perf_counter() - started)
            sketch_s.append(result.timings.get("sketch", 0.0))
            started = time.perf_counter()
            spec = JobSpec(
                f"counted-{i}",
                WITH_K_RULE,
                (table_input,),
                None,
                limits,
                cohorts=request,
                small_groups_sql=count_sql,
            )
            result = executor.run(spec)
            check_output(result.to_pandas(), disclosure, additive=("cost", "visits"))
            counted.append(time.perf_counter() - started)
            assert result.groups_below_k is not None
        assert len(cells) == 40
        assert all(cell.cohorts for cell in cells)
        b, o, w = statistics.median(bare), statistics.median(plain_job), statistics.median(with_ledger)
        print(f"\n[2] {rows:,}-row aggregate, median of {repeat}, threads={threads}:")
        print(f"    bare DuckDB on plaintext Parquet        {b:7.3f} s")
        print(f"    LocalExecutor + output check            {o:7.3f} s   {o / b:.2f}x bare")
        print(
            f"    ... with the cohort lists and sketches  {w:7.3f} s   {w / b:.2f}x bare, "
            f"{w / o:.2f}x without"
        )
        print(f"    of which sketching in the sandbox       {statistics.median(sketch_s):7.3f} s")
        c = statistics.median(counted)
        print(
            f"    ... k rule in the query + audit count   {c:7.3f} s   {c / b:.2f}x bare, "
            f"{c / w:.2f}x the ledger job"
        )
        print(
            f"    runs, s: bare {[round(x, 2) for x in bare]} plain {[round(x, 2) for x in plain_job]} "
            f"ledger {[round(x, 2) for x in with_ledger]} counted {[round(x, 2) for x in counted]}"
        )
    finally:
        executor.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="under a minute: 1M rows, 20 timed jobs")
    parser.add_argument("--cells", type=int, default=10_000, help="cells the lineage holds before timing")
    parser.add_argument("--job-cells", type=int, default=10, help="rows per timed job")
    parser.add_argument("--jobs", type=int, default=100, help="timed jobs")
    parser.add_argument("--population", type=int, default=1_000_000, help="largest cohort")
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the large aggregate")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-mb", type=int, default=4096)
    parser.add_argument("--skip-large", action="store_true", help="only the ledger check")
    parser.add_argument(
        "--no-baseline", action="store_true", help="time only the batched search (no interleaved baseline)"
    )
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.rows, args.repeat = 20, 1_000_000, 1
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        root = Path(tmp)
        bench_check(
            root,
            cells=args.cells,
            job_cells=args.job_cells,
            jobs=args.jobs,
            population=args.population,
            baseline=not args.no_baseline,
        )
        if not args.skip_large:
            bench_aggregate(
                root, rows=args.rows, repeat=args.repeat, threads=args.threads, memory_mb=args.memory_mb
            )


if __name__ == "__main__":
    main()
