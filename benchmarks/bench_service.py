"""Small job end to end over HTTP on the demo data: p50 and p95 over N jobs (goal: p50 <= 100 ms).

Starts `sandbox serve` in a subprocess on a fresh state directory, seeds it with the demo data through
the Python client (200,000 citizens and 1,000,000 visits by default), then submits one small aggregate
job after another and times each from the submit request until the client sees it released.

    .venv/bin/python benchmarks/bench_service.py                       # full demo data, 200 jobs
    .venv/bin/python benchmarks/bench_service.py --citizens 20000 --visits 100000 --jobs 50
    .venv/bin/python benchmarks/bench_service.py --alerts off   # then --alerts on: detection's cost

Prints one JSON object: the latency percentiles, where the gateway says the time went, and the part that
is not the sandbox process (each job's latency minus its ``execute_s``: HTTP, commits, the output check
and the wait for the answer).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx

from sandbox_api.cli import demo, demo_data
from sandbox_api.client.api_client import SandboxClient
from sandbox_api.server.bootstrap import init_deployment
from sandbox_api.server.settings import Settings

SMALL_JOB = """\
SELECT sex, COUNT(DISTINCT person_id) AS people, AVG(income) AS avg_income
FROM citizens
GROUP BY sex"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the gateway exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the gateway did not start")


def run(args: argparse.Namespace, state_dir: Path) -> dict[str, object]:
    admin_token = init_deployment(Settings(state_dir=state_dir)).admin_token
    assert admin_token is not None
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    if args.warm_sandboxes is not None:
        env["SANDBOX_WARM_SANDBOXES"] = str(args.warm_sandboxes)
    if args.alerts is not None:
        env["SANDBOX_ALERTS_ENABLED"] = "true" if args.alerts == "on" else "false"
    command = [
        sys.executable,
        "-m",
        "sandbox_api.cli",
        "serve",
        "--state-dir",
        str(state_dir),
        "--port",
        str(port),
    ]
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as server:
        try:
            wait_healthy(url, server)
            started = time.perf_counter()
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
            seeding_s = time.perf_counter() - started
            latencies: list[float] = []
            outside: list[float] = []  # latency minus execute_s, per job
            phases: dict[str, list[float]] = {}
            # Operators never see per-phase timings: the admin reads them, outside the timed span.
            with cast.client("alice") as operator, SandboxClient(url, admin_token) as admin:
                for i in range(args.warmup + args.jobs):
                    began = time.perf_counter()
                    job = operator.submit_job(demo_data.DEMO_SCOPE_NAME, SMALL_JOB)
                    finished = operator.wait_for_job(job.job_id, timeout=120)
                    elapsed = time.perf_counter() - began
                    if finished.state != "released":
                        raise SystemExit(f"job {job.job_id} ended {finished.state}: {finished.reason}")
                    if i < args.warmup:
                        continue
                    timings = admin.get_job(job.job_id).timings
                    latencies.append(elapsed * 1000)
                    outside.append((elapsed - timings.get("execute_s", 0.0)) * 1000)
                    for phase, seconds in timings.items():
                        phases.setdefault(phase, []).append(seconds * 1000)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {
        "benchmark": "small job end to end over HTTP (submit -> released, client-observed)",
        "query": SMALL_JOB,
        "citizens": args.citizens,
        "visits": args.visits,
        "jobs": len(latencies),
        "alerts": args.alerts or "the setting's default",
        "seeding_s": round(seeding_s, 1),
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
        "max_ms": round(max(latencies), 1),
        "goal_p50_ms": 100,
        "outside_execute_p50_ms": round(percentile(outside, 0.50), 1),
        "outside_execute_p95_ms": round(percentile(outside, 0.95), 1),
        "gateway_phase_medians_ms": {k: round(statistics.median(v), 1) for k, v in sorted(phases.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--citizens", type=int, default=200_000)
    parser.add_argument("--visits", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--warm-sandboxes", type=int, default=None, help="SANDBOX_WARM_SANDBOXES (default: the setting's)"
    )
    parser.add_argument(
        "--alerts",
        choices=("on", "off"),
        default=None,
        help="SANDBOX_ALERTS_ENABLED: what detecting unusual use costs a job (default: the setting's)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as scratch:
        print(json.dumps(run(args, Path(scratch) / "state"), indent=2))


if __name__ == "__main__":
    main()
