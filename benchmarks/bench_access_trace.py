"""What the access trace costs a read: request latency with the trace on, off, and unbatched.

Starts `sandbox serve` in a subprocess on a fresh state directory three times, each with the same few
principals and domains, and times sequential keep-alive reads (`GET /v1/whoami`, `/v1/domains`,
`/v1/principals`, `/v1/jobs`), interleaved, from the client:

- ``off``: ``SANDBOX_AUDIT_READ_TRACE=false``, no read events (the baseline);
- ``on``: the trace as shipped, events queued and chained in batches by a background thread;
- ``unbatched``: the trace with ``SANDBOX_AUDIT_READ_FLUSH_EVENTS=1``, so every read is chained in a
  transaction of its own as soon as it is queued (what a per-request audit write would cost the
  server, still off the request's own path).

    .venv/bin/python benchmarks/bench_access_trace.py                 # 2,000 reads per mode
    .venv/bin/python benchmarks/bench_access_trace.py --reads 500

Prints one JSON object: p50/p95/mean per mode, the ratios to ``off``, and how many read events each
run chained (checked through the audit API, so the trace really ran).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from sandbox_api.server.bootstrap import init_deployment
from sandbox_api.server.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_service import free_port, percentile, wait_healthy

PATHS = ("/v1/whoami", "/v1/domains", "/v1/principals", "/v1/jobs")
MODES: dict[str, dict[str, str]] = {
    "off": {"SANDBOX_AUDIT_READ_TRACE": "false"},
    "on": {},
    "unbatched": {"SANDBOX_AUDIT_READ_FLUSH_EVENTS": "1"},
}


def measure(mode: str, *, reads: int, warmup: int, state_dir: Path) -> dict[str, object]:
    admin_token = init_deployment(Settings(state_dir=state_dir)).admin_token
    assert admin_token is not None
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    env.update(MODES[mode])
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
            admin = {"Authorization": f"Bearer {admin_token}"}
            with httpx.Client(base_url=url, headers=admin, timeout=30) as client:
                for name in ("health-bureau", "civil-affairs"):
                    client.post("/v1/domains", json={"name": name}).raise_for_status()
                auditor = client.post("/v1/principals", json={"name": "audra", "role": "auditor"})
                auditor.raise_for_status()
                latencies: list[float] = []
                for i in range(warmup + reads):
                    path = PATHS[i % len(PATHS)]
                    began = time.perf_counter()
                    client.get(path).raise_for_status()
                    if i >= warmup:
                        latencies.append((time.perf_counter() - began) * 1000)
                # The audit routes chain whatever still waits before they read.
                audra = {"Authorization": f"Bearer {auditor.json()['token']}"}
                events = client.get(
                    "/v1/audit/events", headers=audra, params={"event": "read.", "limit": 1}
                ).json()["events"]
                head = client.get("/v1/audit/head", headers=audra).json()
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {
        "p50_ms": round(percentile(latencies, 0.50), 3),
        "p95_ms": round(percentile(latencies, 0.95), 3),
        "mean_ms": round(statistics.fmean(latencies), 3),
        "chain_events": head["count"],
        "traced": bool(events),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for mode in MODES:
            results[mode] = measure(
                mode, reads=args.reads, warmup=args.warmup, state_dir=Path(scratch) / mode
            )
    base = results["off"]
    ratios = {
        mode: {
            stat: round(float(str(results[mode][stat])) / float(str(base[stat])), 3)
            for stat in ("p50_ms", "p95_ms", "mean_ms")
        }
        for mode in MODES
        if mode != "off"
    }
    print(
        json.dumps(
            {
                "benchmark": "read latency, access trace on vs off",
                "reads": args.reads,
                "modes": results,
                "ratio_to_off": ratios,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
