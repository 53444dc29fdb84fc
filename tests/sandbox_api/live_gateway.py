"""A real gateway for tests: ``sandbox serve`` in a subprocess on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import httpx

from sandbox_api.cli import demo
from sandbox_api.client.api_client import SandboxClient
from sandbox_api.server.bootstrap import init_deployment
from sandbox_api.server.settings import Settings
from tests.sandbox_api.replay_helpers import replay_live

AUDITOR = "audrey"  # the demo cast's auditor


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes], *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/v1/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the gateway did not become healthy")


@contextmanager
def serve_gateway(
    state_dir: Path, *, settings: Mapping[str, str] | None = None, log_to: Path | None = None
) -> Iterator[str]:
    """``sandbox serve`` on an initialised state directory, in a subprocess; yields its URL.

    ``settings``: extra ``SANDBOX_*`` environment variables for the gateway (others are dropped).
    ``log_to``: a file that receives the gateway's standard error (its log lines); default: discarded."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")} | dict(settings or {})
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
    with contextlib.ExitStack() as files:
        stderr = subprocess.DEVNULL if log_to is None else files.enter_context(log_to.open("wb"))
        with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr) as process:
            try:
                wait_healthy(url, process)
                yield url
            finally:
                process.terminate()
                process.wait(timeout=30)


@contextmanager
def seeded_gateway(
    state_dir: Path, *, citizens: int, visits: int, seed: int
) -> Iterator[tuple[str, demo.DemoCast]]:
    """A gateway seeded through the client with a small copy of the demo (``demo.provision``).

    When the caller is done, every job the gateway released is replayed by the demo's auditor and must
    match its receipt (``replay_helpers``)."""
    admin_token = init_deployment(Settings(state_dir=state_dir)).admin_token
    assert admin_token is not None
    with serve_gateway(state_dir) as url, SandboxClient(url, admin_token, timeout=120) as admin:
        cast = demo.provision(
            admin,
            admin_token=admin_token,
            citizens_n=citizens,
            visits_n=visits,
            seed=seed,
            today=date.today(),
            say=lambda _line: None,
            progress=False,
        )
        yield url, cast
        replay_live(url, cast.tokens[AUDITOR])
