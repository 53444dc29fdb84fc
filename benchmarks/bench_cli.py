"""How long the ``sandbox`` command line takes to start (goal: at most 0.4 s for --help and simple commands).

Times, in fresh interpreters, ``sandbox --help`` and ``sandbox dataset list`` against a live gateway
(``sandbox serve`` on a fresh state directory, with the first admin's token): the median and the
fastest of N runs each. ``--code DIR`` times the command line of another checkout (for a before/after
figure on the same machine); the gateway always runs from this one.

    .venv/bin/python benchmarks/bench_cli.py
    .venv/bin/python benchmarks/bench_cli.py --runs 20 --code /path/to/an/older/checkout

Prints one JSON object. Timings on a shared, busy machine vary: compare figures from one run.
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
from pathlib import Path

import httpx

from sandbox_api.server.bootstrap import init_deployment
from sandbox_api.server.settings import Settings

HERE = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _timed(argv: list[str], *, code: Path, runs: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")} | {"PYTHONPATH": str(code)}
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "sandbox_api.cli", *argv],
            env=env,
            cwd=code,
            capture_output=True,
            check=False,
        )
        seconds.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
    return {"median_s": round(statistics.median(seconds), 3), "min_s": round(min(seconds), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--code", type=Path, default=HERE, help="checkout whose command line is timed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state:
        token = init_deployment(Settings(state_dir=Path(state))).admin_token
        assert token is not None
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        serve = [sys.executable, "-m", "sandbox_api.cli", "serve", "--state-dir", state, "--port", str(port)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")} | {
            "PYTHONPATH": str(HERE)
        }
        with subprocess.Popen(
            serve, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ) as gateway:
            try:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline:
                        raise SystemExit("the gateway did not start")
                    time.sleep(0.1)
                figures = {
                    "code": str(args.code),
                    "runs": args.runs,
                    "help": _timed(["--help"], code=args.code, runs=args.runs),
                    "dataset_list": _timed(
                        ["dataset", "list", "--url", url, "--token", token], code=args.code, runs=args.runs
                    ),
                }
            finally:
                gateway.terminate()
                gateway.wait(timeout=30)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
