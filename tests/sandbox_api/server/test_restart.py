"""Kill a real uvicorn gateway with jobs queued and running, restart it: nothing lost or released twice.

On both stores: SQLite in the state folder, and a real PostgreSQL database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from crypto.audit import AuditEntry, verify_chain
from tests.sandbox_api.api_helpers import GOOD_SQL, SCOPE, World, bearer, wait_for_job, world
from tests.sandbox_api.replay_helpers import assert_every_release_replays
from tests.sandbox_api.stores import NewStore, on_both_stores

store = on_both_stores

JOBS = 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(api: World, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SANDBOX_STATE_DIR": str(api.settings.state_dir),
        "SANDBOX_MAX_CONCURRENT_JOBS": "1",
        "SANDBOX_N_PARTS": "4",
    }
    if api.settings.database_url is not None:
        env["SANDBOX_DATABASE_URL"] = api.settings.database_url
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "sandbox_api.server.app:app_from_env",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill below takes the sandboxes with it
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError("the gateway did not start")


def _kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def _query(url: str, sql: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql)))
    finally:
        engine.dispose()


def _states(url: str) -> dict[str, tuple[str, int]]:
    return {row[0]: (row[1], row[2]) for row in _query(url, "SELECT id, state, attempts FROM jobs")}


def _crash_with_work_in_flight(
    api: World, base: str, headers: dict[str, str]
) -> tuple[subprocess.Popen[bytes], list[str]]:
    """Start, submit, SIGKILL while one job runs and others wait; retried if the timing missed."""
    port = int(base.rsplit(":", 1)[1])
    for _ in range(5):
        process = _start(api, port)
        ids = []
        for index in range(JOBS):
            answer = httpx.post(
                f"{base}/v1/jobs",
                headers=headers,
                json={"scope": SCOPE, "sql": f"{GOOD_SQL} HAVING COUNT(*) > {index}"},
            )
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["job_id"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            running = httpx.get(f"{base}/v1/jobs", headers=headers, params={"state": "running"}).json()[
                "jobs"
            ]
            if running:
                break
            time.sleep(0.005)
        _kill(process)
        states = Counter(state for state, _ in _states(api.settings.resolved_database_url).values())
        if states["running"] and states["queued"]:
            return process, ids
    raise AssertionError("could not catch a job running with others queued")


def test_restart_resumes_queued_requeues_running_and_never_releases_twice(
    tmp_path: Path, store: NewStore
) -> None:
    with world(tmp_path / "state", database_url=store()) as api:
        tokens = dict(api.tokens)
        expected_dataset = api.dataset_version
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    headers = bearer(tokens["alice"])
    _, _ = _crash_with_work_in_flight(api, base, headers)
    at_kill = _states(api.settings.resolved_database_url)
    interrupted = [job for job, (state, _) in at_kill.items() if state == "running"]

    process = _start(api, port)
    try:
        with httpx.Client(base_url=base) as client:
            final = {job: wait_for_job(client, headers, job, timeout_s=120) for job in at_kill}
            export = client.get("/v1/audit/export", headers=bearer(tokens["audra"])).text
            result = client.get(f"/v1/jobs/{interrupted[0]}/result", headers=headers)
            # Interrupted, re-queued or resumed: each released job replays to what was released.
            replayed = assert_every_release_replays(client, bearer(tokens["audra"]))
    finally:
        _kill(process)

    # Nothing lost: every job reached a final state, and (with 2 attempts allowed) every one was released.
    assert {job: view["state"] for job, view in final.items()} == dict.fromkeys(at_kill, "released")
    for job in interrupted:
        assert final[job]["attempts"] == 2
        assert final[job]["dataset_versions"] == {"health-bureau/citizens": expected_dataset}
    assert result.status_code == 200
    assert replayed == len(at_kill)
    entries = [AuditEntry.from_json(line) for line in export.splitlines()]
    verify_chain(entries)
    released = Counter(e.details["job"] for e in entries if e.event == "job.released")
    assert released == Counter(dict.fromkeys(at_kill, 1))  # never twice
    requeued = {e.details["job"] for e in entries if e.event == "job.requeued"}
    assert requeued == set(interrupted)
    count_results = "SELECT job_id, COUNT(*) FROM results GROUP BY job_id"
    results = _query(api.settings.resolved_database_url, count_results)
    assert all(count == 1 for _, count in results)
    assert {job for job, _ in results} >= set(at_kill)
