"""Every web-console page's time on the demo data, per role: p50 and p95 (goal: p95 <= 100 ms).

Starts `sandbox serve` in a subprocess on a fresh state directory, seeds it with the demo data through
the Python client, runs one released job for the operator, signs each member of the demo cast in to the
console and loads each of their pages N times, timing each request from send to last byte (on loopback,
which is the gateway's time plus a fraction of a millisecond).

    .venv/bin/python benchmarks/bench_console.py                        # full demo data, 50 loads a page
    .venv/bin/python benchmarks/bench_console.py --citizens 20000 --visits 100000 --loads 20
    .venv/bin/python benchmarks/bench_console.py --audit-events 20000   # a chain in use for a while

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import httpx
from bench_service import SMALL_JOB, free_port, percentile, wait_healthy

from sandbox_api.cli import demo, demo_data
from sandbox_api.client.api_client import SandboxClient
from sandbox_api.server.bootstrap import init_deployment
from sandbox_api.server.console.session import COOKIE
from sandbox_api.server.settings import Settings

GOAL_P95_MS = 100
PAGES: dict[str, tuple[str, ...]] = {
    "alice": (
        "/console/home",
        "/console/jobs",
        "/console/scopes",
        "/console/datasets",
        "/console/jobs/{job}",
    ),
    "otto": ("/console/reviews",),
    "olga": ("/console/scopes",),
    "carol": ("/console/datasets",),
    "audrey": ("/console/audit", "/console/jobs"),
    "admin": ("/console/admin",),
}


def signed_in(http: httpx.Client, token: str) -> dict[str, str]:
    """The console's cookie is Secure: carried by hand over loopback HTTP."""
    page = http.get("/console/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    anonymous = {"Cookie": f"{COOKIE}={page.cookies[COOKIE]}"}
    answer = http.post("/console/sign-in", headers=anonymous, data={"csrf": csrf.group(1), "token": token})
    assert answer.status_code == 303, answer.text
    return {"Cookie": f"{COOKIE}={answer.cookies[COOKIE]}"}


def grow_audit_log(url: str, token: str, events: int) -> None:
    """A deployment that has been in use: every authenticated read is an audit event (the access
    trace), so ``events`` reads of who-am-I lengthen the chain by as many events."""
    headers = {"Authorization": f"Bearer {token}"}

    def reads(n: int) -> None:
        with httpx.Client(base_url=url, timeout=60, headers=headers) as http:
            for _ in range(n):
                http.get("/v1/whoami").raise_for_status()

    threads = [threading.Thread(target=reads, args=(events // 4,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run(args: argparse.Namespace, state_dir: Path) -> dict[str, object]:
    admin_token = init_deployment(Settings(state_dir=state_dir)).admin_token
    assert admin_token is not None
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    command = [sys.executable, "-m", "sandbox_api.cli", "serve", "--state-dir", str(state_dir)]
    command += ["--port", str(port)]
    pages: dict[str, dict[str, float]] = {}
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as server:
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
            with cast.client("alice") as operator:
                job = operator.submit_job(demo_data.DEMO_SCOPE_NAME, SMALL_JOB)
                operator.wait_for_job(job.job_id, timeout=120)
            if args.audit_events:
                grow_audit_log(url, admin_token, args.audit_events)
            with httpx.Client(base_url=url, timeout=60) as http:
                for who, paths in PAGES.items():
                    headers = signed_in(http, cast.tokens[who])
                    for template in paths:
                        path = template.format(job=job.job_id)
                        times = []
                        for i in range(args.warmup + args.loads):
                            began = time.perf_counter()
                            answer = http.get(path, headers=headers)
                            elapsed = (time.perf_counter() - began) * 1000
                            if answer.status_code != 200:
                                raise SystemExit(f"{who} {path}: {answer.status_code}")
                            if i >= args.warmup:
                                times.append(elapsed)
                        pages[f"{who} {template}"] = {
                            "p50_ms": round(percentile(times, 0.50), 1),
                            "p95_ms": round(percentile(times, 0.95), 1),
                        }
        finally:
            server.terminate()
            server.wait(timeout=30)
    worst = max(v["p95_ms"] for v in pages.values())
    return {
        "benchmark": "web console page time per role (client-observed on loopback)",
        "citizens": args.citizens,
        "visits": args.visits,
        "loads_per_page": args.loads,
        "audit_events_added": args.audit_events,
        "pages": pages,
        "worst_p95_ms": worst,
        "goal_p95_ms": GOAL_P95_MS,
        "meets_goal": worst <= GOAL_P95_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--citizens", type=int, default=200_000)
    parser.add_argument("--visits", type=int, default=1_000_000)
    parser.add_argument("--loads", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--audit-events", type=int, default=0, help="lengthen the audit chain first by this many reads"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as scratch:
        print(json.dumps(run(args, Path(scratch) / "state"), indent=2))


if __name__ == "__main__":
    main()
