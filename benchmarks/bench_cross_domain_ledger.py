"""Benchmark what the released-cohort ledger adds to a cross-domain job (issue 10 on issue 13's jobs).

The same job as ``bench_cross_domain_job.py`` (the demo's flu question by district), run on a real
local executor without the ledger and with it, interleaved (``--repeat`` pairs, medians reported), so
that load on the machine weighs on both alike. With the ledger each domain blinds with its lineage key
times a fresh factor (the same cost), and after the match the released cells' distinct tokens go
through one more exchange: the gateway raises them to its factor, each domain takes out its own in an
``unblind`` round, the gateway takes out its factor and sketches each cell. Reported: wall seconds of
the job both ways and their ratio, the seconds of the two domains' ``unblind`` steps (inside their
sandboxes, one after the other) beside their ``reblind`` steps (the same operation on every person of
the other domain, as a yardstick that the machine's load weighs on alike), the gateway process's CPU
seconds both ways, and the size of the sketches.

    python benchmarks/bench_cross_domain_ledger.py                  # 20,000 and 60,000 citizens
    python benchmarks/bench_cross_domain_ledger.py --sizes 2000 --repeat 1
    python benchmarks/bench_cross_domain_ledger.py --sizes 2000 --repeat 1 --json   # one line per job

``--json`` prints, for every job, its wall seconds and CPU seconds per party and step: each domain's
sandboxes per round (``left_cpu``: every round of the left domain; ``left_unblind``: its unblind
steps), and the gateway's (this process's CPU plus that of its workers for the group operations,
``gateway_workers_cpu``), with the gateway's stages (``gateway_match_s``, ``ledger_*_s``). These add
up what a 2-core machine shared with other work does not show in wall seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

# The script's own folder is on the path when it runs: the job's data and question are that benchmark's.
from bench_cross_domain_job import CROSS, stored, tables

from crypto.keyring import LocalKeyring
from executors.base import JobSpec, Limits, ResultTable
from executors.crossdomain.job import CrossDomainJob, DomainPartSpec
from executors.crossdomain.placed import run_cross_domain
from executors.crossdomain.split import split
from executors.local import LocalExecutor
from policies.cohorts import SketchRequest, least_for, sums_for

K = 10


def _spec(citizens: int, root: Path, keyring: LocalKeyring) -> JobSpec:
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
        min_units=K,
    )
    limits = Limits(timeout_s=600, cpu_s=1200, memory_mb=4096)
    return JobSpec(f"bench-{citizens}", CROSS, (v, c), None, limits=limits, cross_domain=job)


def _with_ledger(spec: JobSpec, job_id: str) -> JobSpec:
    assert spec.cross_domain is not None
    request = SketchRequest(secret=bytes(range(32)), power_sums=sums_for(K), least=least_for(K))
    return replace(
        spec, job_id=job_id, cohorts=request, cross_domain=replace(spec.cross_domain, lineage="bench")
    )


def _timed(executor: LocalExecutor, spec: JobSpec) -> tuple[float, float, ResultTable]:
    """Wall seconds, the gateway's CPU seconds (this process and the workers it started and ended)."""
    wall, cpu, children = time.perf_counter(), time.process_time(), _children_cpu()
    result = run_cross_domain(executor, spec)
    cpu = time.process_time() - cpu + _children_cpu() - children
    return time.perf_counter() - wall, cpu, result


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the sandboxes' fork server has not ended
    return usage.ru_utime + usage.ru_stime


def _record(citizens: int, mode: str, wall: float, gateway_cpu: float, result: ResultTable) -> str:
    timings = {k: round(float(v), 3) for k, v in sorted(result.timings.items())}
    return json.dumps(
        {"citizens": citizens, "mode": mode, "wall_s": round(wall, 3), "gateway_cpu": round(gateway_cpu, 3)}
        | {"timings": timings}
    )


def one_size(
    citizens: int, repeat: int, executor: LocalExecutor, root: Path, keyring: LocalKeyring, *, as_json: bool
) -> None:
    spec = _spec(citizens, root, keyring)
    plain: list[tuple[float, float]] = []
    ledger: list[tuple[float, float, float, float]] = []
    sketch_bytes = people = 0
    for i in range(repeat):
        wall, cpu, result = _timed(executor, replace(spec, job_id=f"{spec.job_id}-plain-{i}"))
        if as_json:
            print(_record(citizens, "plain", wall, cpu, result), flush=True)
        plain.append((wall, cpu))
        wall, cpu, result = _timed(executor, _with_ledger(spec, f"{spec.job_id}-ledger-{i}"))
        if as_json:
            print(_record(citizens, "ledger", wall, cpu, result), flush=True)
        unblind = sum(float(s) for k, s in result.timings.items() if k in ("left_unblind", "right_unblind"))
        reblind = sum(float(s) for k, s in result.timings.items() if k in ("left_reblind", "right_reblind"))
        ledger.append((wall, cpu, unblind, reblind))
        table = result.to_pandas()
        sketch_bytes = sum(len(b) for b in table["_sbx_sketch"])
        people = int(table["_sbx_units"].sum())
    if as_json:
        return
    p_wall = statistics.median(w for w, _ in plain)
    l_wall = statistics.median(w for w, _, _, _ in ledger)
    print(
        f"| {citizens:,} / {citizens * 5:,} | {people:,} | {p_wall:.1f} | {l_wall:.1f} | "
        f"{l_wall / p_wall:.2f}x | {statistics.median(u for _, _, u, _ in ledger):.2f} | "
        f"{statistics.median(r for _, _, _, r in ledger):.2f} | "
        f"{statistics.median(c for _, c in plain):.2f} | "
        f"{statistics.median(c for _, c, _, _ in ledger):.2f} | "
        f"{sketch_bytes / max(1, len(table)):.0f} B |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="*", default=[20_000, 60_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON line per job, no table")
    args = parser.parse_args()
    if not args.json:
        print(
            "| citizens / visits | people in released cells | job s, no ledger | job s, ledger | ratio | "
            "unblind steps s | re-blind steps s | gateway CPU s, no ledger | gateway CPU s, ledger | "
            "sketch per cell |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        keyring = LocalKeyring.open(root / "keyring.json", create=True)
        executor = LocalExecutor(key_provider=keyring, max_workers=2)
        try:
            for size in args.sizes:
                one_size(size, args.repeat, executor, root / f"data-{size}", keyring, as_json=args.json)
        finally:
            executor.close()


if __name__ == "__main__":
    main()
