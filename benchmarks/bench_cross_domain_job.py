"""Benchmark a cross-domain *job*: the rounds on a real local executor, end to end (issue 13).

``bench_cross_domain.py`` times the protocol's steps in one process. This one times what a job costs
once it runs as a job: encrypted, unit-partitioned data on disk, each domain's rounds in fresh sandboxes
(decrypt, its part's SELECT, per-person pre-aggregation, blinding, sealing), messages carried between
sandboxes as bytes, the gateway's matching. Beside it, the same question as one SQL job over both
tables in one sandbox (what a ``kind: sql`` job does), and the ratio. Wall seconds, on whatever the
machine has; the two domains' rounds run at once, as a deployment runs them.

    python benchmarks/bench_cross_domain_job.py                     # 20,000 / 60,000 / 200,000 citizens
    python benchmarks/bench_cross_domain_job.py --sizes 2000
    python benchmarks/bench_cross_domain_job.py --sizes 20000 --profile   # where the rounds' time goes

"CPU s per domain" is the CPU time of a domain's sandboxes (their ``cpu`` timings, every round), the
larger of the two: comparable across runs on a loaded machine where wall seconds are not. ``--profile``
runs the same rounds in this process instead (same code, no sandbox walls, one thread per domain) under
cProfile, and prints where the CPU time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa

from crypto.envelope import new_data_key
from crypto.keyring import LocalKeyring
from executors.base import Executor, JobSpec, Limits, ResultTable, TableInput
from executors.crossdomain.job import CrossDomainJob, DomainPartSpec
from executors.crossdomain.placed import run_cross_domain
from executors.crossdomain.rounds import run_round
from executors.crossdomain.split import split
from executors.local import LocalExecutor
from executors.storage import version_id_of, write_version

CROSS = (
    "SELECT c.district AS district, COUNT(DISTINCT v.person_id) AS patients, COUNT(*) AS visits, "
    "SUM(v.cost) AS total_cost FROM visits AS v JOIN citizens AS c ON v.person_id = c.person_id "
    "WHERE v.diagnosis = 'flu' GROUP BY c.district"
)
ONE_SANDBOX = (
    "SELECT c.district, COUNT(DISTINCT v.person_id) AS patients, COUNT(*) AS visits, "
    "SUM(v.cost) AS total_cost, COUNT(DISTINCT v.person_id) AS _sbx_units FROM visits AS v "
    "JOIN citizens AS c ON v.person_id = c.person_id WHERE v.diagnosis = 'flu' GROUP BY c.district "
    "HAVING COUNT(DISTINCT v.person_id) >= 10"
)
DISTRICTS = [f"district-{i:02d}" for i in range(16)]


def tables(citizens: int, *, seed: int = 1) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    ids = np.array([f"P{i:07d}" for i in range(citizens)], dtype=object)
    people = pa.table({"person_id": ids, "district": rng.choice(DISTRICTS, size=citizens)})
    n = citizens * 5
    # A fifth of the visitors are not citizens of this city (they must match nothing).
    visitor = rng.integers(0, int(citizens * 1.2), size=n)
    visits = pa.table(
        {
            "person_id": np.array([f"P{i:07d}" for i in visitor], dtype=object),
            "diagnosis": rng.choice(["flu", "cold", "asthma"], size=n, p=[0.5, 0.3, 0.2]),
            "cost": np.round(rng.uniform(5, 900, size=n), 2),
        }
    )
    return people, visits


def stored(root: Path, keyring: LocalKeyring, name: str, domain: str, table: pa.Table) -> TableInput:
    keyring.ensure_domain(domain)
    version = version_id_of({name: table})
    data_key = new_data_key()
    layout = write_version(
        root,
        domain=domain,
        dataset=name,
        version_id=version,
        tables={name: table},
        units={name: "person_id"},
        data_key=data_key,
        partition_key=keyring.secret("partition"),
        n_parts=4,
    )
    aad = f"{domain}/{name}/{version}".encode()
    return TableInput(
        sql_name=name,
        domain=domain,
        dataset=name,
        version_id=version,
        table=name,
        wrapped_key=keyring.wrap(domain, data_key, aad=aad),
        key_aad=aad,
        parts=layout[name],
        unit="person_id",
    )


def one_size(
    citizens: int, executor: LocalExecutor, root: Path, keyring: LocalKeyring, *, profile: bool = False
) -> None:
    people, visits = tables(citizens)
    c = stored(root, keyring, "citizens", "civil-affairs", people)
    v = stored(root, keyring, "visits", "health-bureau", visits)
    query = split(
        CROSS,
        datasets={"visits": "health-bureau/visits", "citizens": "civil-affairs/citizens"},
        domains={"health-bureau/visits": "health-bureau", "civil-affairs/citizens": "civil-affairs"},
        one_row={"civil-affairs/citizens"},  # a register: one row per person, as its catalog says
    )
    job = CrossDomainJob(
        plan=query.plan,
        left=DomainPartSpec("health-bureau", "health-bureau/visits", query.left.sql, ("visits",)),
        right=DomainPartSpec("civil-affairs", "civil-affairs/citizens", query.right.sql, ("citizens",)),
        min_units=10,
    )
    limits = Limits(timeout_s=600, cpu_s=1200, memory_mb=4096)
    spec = JobSpec(f"bench-{citizens}", CROSS, (v, c), None, limits=limits, cross_domain=job)
    if profile:
        profiled(spec, keyring)
        return
    started = time.perf_counter()
    result = run_cross_domain(executor, spec)
    cross = time.perf_counter() - started
    cpu = max(float(result.timings.get(f"{side}_cpu", 0.0)) for side in ("left", "right"))
    started = time.perf_counter()
    single = executor.run(JobSpec(f"bench-one-{citizens}", ONE_SANDBOX, (v, c), None, limits=limits))
    one = time.perf_counter() - started
    assert result.row_count == single.row_count, (result.row_count, single.row_count)
    steps = {
        k: round(float(s), 2)
        for k, s in sorted(result.timings.items())
        if k.split("_", 1)[-1] in ("hello", "blind", "reblind", "answer", "load", "query", "cpu")
    }
    print(
        f"| {citizens:,} / {citizens * 5:,} | {cross:.1f} | {cpu:.1f} | {one:.2f} | {cross / one:.0f}x | "
        f"{carried(result.parts) / 1e6:.1f} MB | {steps} |",
        flush=True,
    )


class _InProcess:
    """The rounds run here, each under its own profiler (cProfile sees one thread at a time)."""

    def __init__(self, keyring: LocalKeyring) -> None:
        self._keyring = keyring
        self._lock = threading.Lock()
        self.profiles: list[cProfile.Profile] = []

    def run(self, spec: JobSpec) -> ResultTable:
        keys = tuple(self._keyring.unwrap(t.domain, t.wrapped_key, aad=t.key_aad) for t in spec.tables)
        profile = cProfile.Profile(time.thread_time)
        profile.enable()
        header, ipc = run_round(spec, keys)
        profile.disable()
        with self._lock:
            self.profiles.append(profile)
        timings = header["timings"]
        engine = header["engine"]
        assert isinstance(timings, Mapping)
        assert isinstance(engine, Mapping)
        return ResultTable(
            arrow_ipc=ipc, row_count=int(str(header["row_count"])), timings=timings, engine=engine
        )

    def cancel(self, job_id: str) -> bool:
        return False

    def close(self) -> None:
        return None


def profiled(spec: JobSpec, keyring: LocalKeyring) -> None:
    """The rounds of ``spec`` in this process under cProfile: CPU seconds per function, every round."""
    executor: Executor
    executor = rounds = _InProcess(keyring)
    run_cross_domain(executor, spec)
    stats = pstats.Stats(rounds.profiles[0])
    for profile in rounds.profiles[1:]:
        stats.add(profile)
    stats.sort_stats("tottime").print_stats(15)


def carried(parts: tuple[Mapping[str, object], ...]) -> int:
    """Bytes of messages the domains sent, all recipients together."""
    total = 0
    for part in parts:
        sent = part["sent_bytes"]
        assert isinstance(sent, Mapping)
        total += sum(int(n) for n in sent.values())
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="*", default=[20_000, 60_000, 200_000])
    parser.add_argument("--profile", action="store_true", help="run the rounds here under cProfile")
    args = parser.parse_args()
    if not args.profile:
        print(
            "| citizens / visits | cross-domain job wall s | CPU s per domain | one-sandbox job wall s "
            "| ratio | carried | seconds per step |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        keyring = LocalKeyring.open(root / "keyring.json", create=True)
        executor = LocalExecutor(key_provider=keyring, max_workers=2)
        try:
            for size in args.sizes:
                one_size(size, executor, root / f"data-{size}", keyring, profile=args.profile)
        finally:
            executor.close()


if __name__ == "__main__":
    main()
