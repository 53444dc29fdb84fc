"""The same gateway on SQLite and on PostgreSQL: small-job p50, then fifty operators at once.

For each store a fresh deployment, ``sandbox serve`` in a subprocess (loopback), seeded with a small
copy of the demo data through the client. Then

1. **one operator**: ``--jobs`` small jobs on each store, one after another and alternating between
   the two gateways (both run at once, so both see the same background load), each timed from submit
   until the client sees it released: p50 and p95 (goal: PostgreSQL p50 <= 1.2x SQLite's);
2. **fifty operators**: ``--operators`` clients (threads, each with its own connection) submit small
   jobs back to back for ``--duration`` seconds (default 60): jobs released per second and the p95 of
   submit-to-released. The operators share one principal, whose quotas are raised for the run: the
   deployment-wide runner slots (``max_concurrent_jobs``) are what is measured, not per-person quotas.

PostgreSQL is a throwaway cluster on a loopback port (initdb, pg_ctl: the tests' helper), removed
afterwards; or ``--postgres-url`` to use an existing empty database.

    .venv/bin/python benchmarks/bench_stores.py                      # 60 s of fifty operators per store
    .venv/bin/python benchmarks/bench_stores.py --duration 20 --jobs 40

Prints one JSON object with both stores' figures and the PostgreSQL/SQLite ratios.

``--baseline DIR`` also runs the code of another source tree (a checkout of an earlier commit, e.g.
``git worktree add ../before <commit>``) as two more gateways, one per store, in the same alternation:
before and after are measured in one run, under the same load (docs/operations.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import date
from pathlib import Path

from sandbox_api.cli import demo, demo_data
from sandbox_api.client.api_client import SandboxClient
from sandbox_api.server.bootstrap import init_deployment
from sandbox_api.server.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' PostgreSQL helper
from bench_service import SMALL_JOB, free_port, percentile, wait_healthy

from tests.sandbox_api.postgres_cluster import running_cluster

# Raised for the run: fifty clients of one principal would otherwise meet its queue and hourly quotas.
LOAD_SETTINGS = {
    "SANDBOX_QUEUE_LIMIT": "10000",
    "SANDBOX_QUOTA_QUEUED_JOBS": "10000",
    "SANDBOX_QUOTA_JOBS_PER_HOUR": "1000000",
    "SANDBOX_QUOTA_CONCURRENT_JOBS": "1000",
    "SANDBOX_QUOTA_LONG_POLLS": "1000",
}


@contextmanager
def gateway(
    state_dir: Path, database_url: str | None, args: argparse.Namespace, *, source: Path | None = None
) -> Iterator[tuple[str, str]]:
    """A seeded gateway on ``database_url`` (None: SQLite): its URL and the operator's token.

    ``source``: run the gateway from that source tree instead of this one (``--baseline``)."""
    overrides = {} if database_url is None else {"database_url": database_url}
    admin_token = init_deployment(Settings(state_dir=state_dir, **overrides)).admin_token
    assert admin_token is not None
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")} | LOAD_SETTINGS
    if database_url is not None:
        env["SANDBOX_DATABASE_URL"] = database_url
    if source is not None:
        env["PYTHONPATH"] = str(source)  # ahead of this tree's installed packages (and `-m` runs in it)
    command = [sys.executable, "-m", "sandbox_api.cli", "serve", "--state-dir", str(state_dir)]
    command += ["--port", str(port)]
    with subprocess.Popen(
        command, env=env, cwd=source, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as server:
        try:
            wait_healthy(url, server)
            with SandboxClient(url, admin_token, timeout=600) as admin:
                cast = demo.provision(
                    admin,
                    admin_token=admin_token,
                    citizens_n=args.citizens,
                    visits_n=args.visits,
                    today=date.today(),
                    say=lambda _line: None,
                    progress=False,
                )
            yield url, cast.tokens["alice"]
        finally:
            server.terminate()
            server.wait(timeout=30)


def one_job(client: SandboxClient) -> float:
    """Submit one small job and wait for it: milliseconds from submit to released."""
    began = time.perf_counter()
    job = client.submit_job(demo_data.DEMO_SCOPE_NAME, SMALL_JOB)
    finished = client.wait_for_job(job.job_id, timeout=600)
    if finished.state != "released":
        raise SystemExit(f"job {job.job_id} ended {finished.state}: {finished.reason}")
    return (time.perf_counter() - began) * 1000


def alternating(
    gateways: dict[str, tuple[str, str]], args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """One job on each store in turn: both see the same background load, so their ratio is fair."""
    latencies: dict[str, list[float]] = {store: [] for store in gateways}
    with ExitStack() as stack:
        clients = {
            store: stack.enter_context(SandboxClient(url, token, timeout=600))
            for store, (url, token) in gateways.items()
        }
        for index in range(args.warmup + args.jobs):
            # Each round in the other order, so that no gateway always follows the same one.
            turn = list(clients.items()) if index % 2 == 0 else list(reversed(clients.items()))
            for store, client in turn:
                elapsed = one_job(client)
                if index >= args.warmup:
                    latencies[store].append(elapsed)
    return {
        store: {"p50_ms": round(percentile(values, 0.5), 1), "p95_ms": round(percentile(values, 0.95), 1)}
        for store, values in latencies.items()
    }


def concurrent(url: str, token: str, args: argparse.Namespace) -> dict[str, float]:
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(args.operators + 1)
    deadline: list[float] = []

    def operator() -> None:
        with SandboxClient(url, token, timeout=600) as client:
            start.wait()
            while time.perf_counter() < deadline[0]:
                try:
                    elapsed = one_job(client)
                except (SystemExit, Exception) as failed:
                    with lock:
                        failures.append(str(failed)[:200])
                    continue
                with lock:
                    latencies.append(elapsed)

    with ExitStack() as stack:
        threads = [threading.Thread(target=operator, daemon=True) for _ in range(args.operators)]
        stack.callback(lambda: [t.join(timeout=600) for t in threads])
        for thread in threads:
            thread.start()
        deadline.append(time.perf_counter() + args.duration)
        began = time.perf_counter()
        start.wait()
    wall = time.perf_counter() - began
    return {
        "operators": args.operators,
        "duration_s": args.duration,
        "released": len(latencies),
        "failed": len(failures),
        "jobs_per_s": round(len(latencies) / wall, 2),
        "p50_ms": round(percentile(latencies, 0.5), 1) if latencies else -1.0,
        "p95_ms": round(percentile(latencies, 0.95), 1) if latencies else -1.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--citizens", type=int, default=20_000)
    parser.add_argument("--visits", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=60, help="sequential jobs per store")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--operators", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of concurrent load per store")
    parser.add_argument(
        "--postgres-url", default=None, help="an empty PostgreSQL database (default: start one)"
    )
    parser.add_argument(
        "--baseline", type=Path, default=None, help="also run this source tree's code (before/after)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as scratch, ExitStack() as stack:
        if args.postgres_url is None:
            cluster = stack.enter_context(running_cluster())
            postgres_url = cluster.new_database()
        else:
            postgres_url = args.postgres_url
        gateways = {
            "sqlite": stack.enter_context(gateway(Path(scratch) / "sqlite", None, args)),
            "postgresql": stack.enter_context(gateway(Path(scratch) / "postgres", postgres_url, args)),
        }
        before: dict[str, tuple[str, str]] = {}
        if args.baseline is not None:
            if args.postgres_url is not None:
                raise SystemExit("--baseline needs a database of its own: leave out --postgres-url")
            source = args.baseline.resolve()
            before = {
                "baseline_sqlite": stack.enter_context(
                    gateway(Path(scratch) / "b-sqlite", None, args, source=source)
                ),
                "baseline_postgresql": stack.enter_context(
                    gateway(Path(scratch) / "b-postgres", cluster.new_database(), args, source=source)
                ),
            }
        one = alternating(gateways | before, args)
        # One store at a time: fifty operators on each, the other gateway idle.
        many = {store: concurrent(url, token, args) for store, (url, token) in gateways.items()}
    report = {
        "benchmark": "small job on SQLite and on PostgreSQL (loopback), one operator then many",
        "query": SMALL_JOB,
        "citizens": args.citizens,
        "visits": args.visits,
        "one_operator_alternating": one,
        "fifty_operators": many,
        "p50_ratio_postgresql_over_sqlite": round(one["postgresql"]["p50_ms"] / one["sqlite"]["p50_ms"], 2),
        **(
            {
                "baseline": str(args.baseline),
                "baseline_p50_ratio_postgresql_over_sqlite": round(
                    one["baseline_postgresql"]["p50_ms"] / one["baseline_sqlite"]["p50_ms"], 2
                ),
            }
            if args.baseline is not None
            else {}
        ),
        "goal_p50_ratio": 1.2,
        "throughput_ratio_postgresql_over_sqlite": round(
            many["postgresql"]["jobs_per_s"] / many["sqlite"]["jobs_per_s"], 2
        ),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
