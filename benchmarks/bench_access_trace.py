"""What the access trace costs a read: request latency with the trace on, off, and unbatched.

Starts three `sandbox serve` subprocesses, each on a fresh state directory with the same few principals
and domains, and times sequential keep-alive reads (`GET /v1/whoami`, `/v1/domains`, `/v1/principals`,
`/v1/jobs` in turn) from the client, the three gateways taking turns in blocks:

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
from contextlib import ExitStack
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


class Gateway:
    """One `sandbox serve` on a fresh state directory, seeded with two domains and an auditor."""

    def __init__(self, mode: str, state_dir: Path, stack: ExitStack) -> None:
        admin_token = init_deployment(Settings(state_dir=state_dir)).admin_token
        assert admin_token is not None
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
        env.update(MODES[mode])
        command = [
            *(sys.executable, "-m", "sandbox_api.cli", "serve"),
            *("--state-dir", str(state_dir), "--port", str(port)),
        ]
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(server.wait, timeout=30)
        stack.callback(server.terminate)
        wait_healthy(url, server)
        headers = {"Authorization": f"Bearer {admin_token}"}
        self.client = stack.enter_context(httpx.Client(base_url=url, headers=headers, timeout=30))
        for name in ("health-bureau", "civil-affairs"):
            self.client.post("/v1/domains", json={"name": name}).raise_for_status()
        auditor = self.client.post("/v1/principals", json={"name": "audra", "role": "auditor"})
        auditor.raise_for_status()
        self.auditor = {"Authorization": f"Bearer {auditor.json()['token']}"}
        self.latencies: list[float] = []

    def reads(self, n: int, *, keep: bool) -> None:
        for i in range(n):
            began = time.perf_counter()
            self.client.get(PATHS[i % len(PATHS)]).raise_for_status()
            if keep:
                self.latencies.append((time.perf_counter() - began) * 1000)

    def summary(self) -> dict[str, object]:
        # The audit routes chain whatever still waits before they read.
        traced = self.client.get(
            "/v1/audit/events", headers=self.auditor, params={"event": "read.", "limit": 1}
        ).json()["events"]
        head = self.client.get("/v1/audit/head", headers=self.auditor).json()
        return {
            "p50_ms": round(percentile(self.latencies, 0.50), 3),
            "p95_ms": round(percentile(self.latencies, 0.95), 3),
            "mean_ms": round(statistics.fmean(self.latencies), 3),
            "chain_events": head["count"],
            "traced": bool(traced),
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reads", type=int, default=2000, help="timed reads per mode")
    parser.add_argument("--rounds", type=int, default=10, help="blocks per mode, taken in turn")
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        gateways = {mode: Gateway(mode, Path(scratch) / mode, stack) for mode in MODES}
        for gateway in gateways.values():
            gateway.reads(args.warmup, keep=False)
        # Modes take turns in blocks, so that load from elsewhere on the machine falls on each alike.
        for _ in range(args.rounds):
            for gateway in gateways.values():
                gateway.reads(args.reads // args.rounds, keep=True)
        results = {mode: gateway.summary() for mode, gateway in gateways.items()}
    base = results["off"]
    ratios = {
        mode: {
            stat: round(float(str(results[mode][stat])) / float(str(base[stat])), 3)
            for stat in ("p50_ms", "p95_ms", "mean_ms")
        }
        for mode in MODES
        if mode != "off"
    }
    report = {"benchmark": "read latency, access trace on vs off", "reads": args.reads, "modes": results}
    print(json.dumps({**report, "ratio_to_off": ratios}, indent=2))


if __name__ == "__main__":
    main()
