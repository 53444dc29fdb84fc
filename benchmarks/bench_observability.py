"""What metrics and tracing cost a small job: the same job through ``sandbox serve`` with them on and off.

Two deployments seeded alike with a small copy of the demo data, each with its gateway: one with
observability **off** (``metrics_enabled=false``, ``trace_exporter=off``), one with everything **on**
(metrics, every span recorded and exported as JSON to standard output, which is discarded). The same
small aggregate job runs on each in turn, job by job, timed from the submit request until the client
sees it released, so both sides see the same machine load.

    .venv/bin/python benchmarks/bench_observability.py               # 150 jobs per side
    .venv/bin/python benchmarks/bench_observability.py --jobs 40

Prints one JSON object: p50 and p95 per side and the ratio of the medians (on / off).
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
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
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

SIDES: Mapping[str, Mapping[str, str]] = {
    "off": {"SANDBOX_METRICS_ENABLED": "false", "SANDBOX_TRACE_EXPORTER": "off"},
    "on": {
        "SANDBOX_METRICS_ENABLED": "true",
        "SANDBOX_TRACE_EXPORTER": "console",
        "SANDBOX_TRACE_SAMPLE_RATIO": "1",
    },
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def gateway(state_dir: Path, settings: Mapping[str, str]) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")} | dict(settings)
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
            deadline = time.monotonic() + 120
            while True:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the gateway did not start")
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


def seeded(state_dir: Path, args: argparse.Namespace) -> tuple[str, str]:
    """A deployment in ``state_dir`` with a small copy of the demo data; the admin's and operator's tokens."""
    admin_token = init_deployment(Settings(state_dir=state_dir)).admin_token
    assert admin_token is not None
    with gateway(state_dir, SIDES["off"]) as url, SandboxClient(url, admin_token, timeout=600) as admin:
        cast = demo.provision(
            admin,
            admin_token=admin_token,
            citizens_n=args.citizens,
            visits_n=args.visits,
            today=date.today(),
            say=lambda _line: None,
            progress=False,
        )
    return admin_token, cast.tokens["alice"]


def one_job(operator: SandboxClient) -> float:
    began = time.perf_counter()
    job = operator.submit_job(demo_data.DEMO_SCOPE_NAME, SMALL_JOB)
    finished = operator.wait_for_job(job.job_id, timeout=120)
    elapsed = time.perf_counter() - began
    if finished.state != "released":
        raise SystemExit(f"job {job.job_id} ended {finished.state}: {finished.reason}")
    return elapsed * 1000


def run(args: argparse.Namespace, scratch: Path) -> dict[str, object]:
    tokens = {side: seeded(scratch / side, args) for side in SIDES}
    latencies: dict[str, list[float]] = {side: [] for side in SIDES}
    with ExitStack() as stack:
        operators = {
            side: stack.enter_context(
                SandboxClient(
                    stack.enter_context(gateway(scratch / side, settings)), tokens[side][1], timeout=120
                )
            )
            for side, settings in SIDES.items()
        }
        for i in range(args.warmup + args.jobs):
            # Job by job, alternating which side goes first: both see the same machine load.
            order = list(SIDES) if i % 2 == 0 else list(reversed(SIDES))
            for side in order:
                elapsed = one_job(operators[side])
                if i >= args.warmup:
                    latencies[side].append(elapsed)
        # The metrics were really collected on the "on" side.
        admin = {"Authorization": f"Bearer {tokens['on'][0]}"}
        scraped = httpx.get(f"{operators['on'].base_url}/metrics", headers=admin)
        assert "sandbox_job_phase_seconds_count" in scraped.text
    summary = {
        side: {
            "jobs": len(values),
            "p50_ms": round(statistics.median(values), 1),
            "p95_ms": round(percentile(values, 0.95), 1),
        }
        for side, values in latencies.items()
    }
    return {
        "benchmark": "small job over HTTP, submit -> released, observability on vs off (alternating jobs)",
        "query": SMALL_JOB,
        "citizens": args.citizens,
        "visits": args.visits,
        **summary,
        "ratio_p50_on_over_off": round(
            statistics.median(latencies["on"]) / statistics.median(latencies["off"]), 3
        ),
        "ratio_p95_on_over_off": round(
            percentile(latencies["on"], 0.95) / percentile(latencies["off"], 0.95), 3
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--citizens", type=int, default=20_000)
    parser.add_argument("--visits", type=int, default=50_000)
    parser.add_argument("--jobs", type=int, default=150, help="jobs per side")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as scratch:
        print(json.dumps(run(args, Path(scratch)), indent=2))


if __name__ == "__main__":
    main()
