"""The test-only hook: arbitrary Python in a sandbox behind the same walls as a job.

It lives in the tests, not in the ``executors`` package, so no route, setting or deployment can reach
it. A trial process is forked from the same fork server as a job's sandbox and enters it through the
same function (``sandbox.enter_sandbox``: process group, parent-death signal, the walls, the cleared
environment) and the same resource limits, then runs the attacker's code instead of a job: what code
that escaped RestrictedPython or DuckDB could do.

The code ends by setting ``result`` (anything JSON can carry); the trial returns it with the walls that
held, or the exception's class if the code raised.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.forkserver
import os
import shutil
import signal
import tempfile
from multiprocessing.connection import Connection
from pathlib import Path

from executors.base import Limits
from executors.forking import LeanForkServerProcess
from executors.local import PRELOAD
from executors.sandbox import apply_limits, enter_sandbox
from executors.walls import WallPlan

TRIAL_LIMITS = Limits(timeout_s=20, memory_mb=256, cpu_s=10, threads=1)

# Prepended to every trial: ``attempt(f)`` runs ``f`` and names how it failed (an errno name), or says
# "succeeded" (with what it returned).
ATTEMPT = """
import errno, os

def attempt(action):
    try:
        value = action()
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return "succeeded: " + repr(value)[:200]
"""


def _trial_main(conn: Connection, jobdir: str, plan: WallPlan, code: str, gateway_uid: int | None) -> None:
    try:
        if gateway_uid is not None:  # play a gateway that does not run as root
            os.chown(jobdir, gateway_uid, gateway_uid)
            os.setgroups([])
            os.setresgid(gateway_uid, gateway_uid, gateway_uid)
            os.setresuid(gateway_uid, gateway_uid, gateway_uid)
        entered = enter_sandbox(jobdir, plan, pipe=conn.fileno())
        apply_limits(TRIAL_LIMITS, address_space_mb=entered.address_space_mb())
        namespace: dict[str, object] = {}
        exec(ATTEMPT + code, namespace)  # the point of the hook: the attacker's code, inside the walls
        outcome = {"walls": entered.report.summary(), "result": namespace.get("result")}
    except BaseException as exc:  # reported to the test, which asserts on it
        outcome = {"error": type(exc).__name__, "detail": str(exc)}
    conn.send_bytes(json.dumps(outcome).encode())
    conn.close()


def run_inside(
    code: str, *, plan: WallPlan, tmp_root: Path, gateway_uid: int | None = None
) -> dict[str, object]:
    """Run ``code`` in a fresh sandbox behind ``plan``'s walls; its outcome (see the module docstring).

    ``gateway_uid``: enter the sandbox as this unprivileged user, as a gateway not running as root would
    (the test process must be root to play it)."""
    jobdir = tempfile.mkdtemp(prefix="sbx-trial-", dir=tmp_root)
    context = multiprocessing.get_context("forkserver")
    # The fork server a job's sandbox comes from (it may be running already, then this changes nothing):
    # its children start with one thread, as the walls require.
    context.set_forkserver_preload(list(PRELOAD))
    multiprocessing.forkserver.ensure_running()
    parent, child = context.Pipe(duplex=True)
    process = LeanForkServerProcess(
        target=_trial_main, args=(child, jobdir, plan, code, gateway_uid), daemon=True
    )
    try:
        process.start()
        child.close()
        if not parent.poll(TRIAL_LIMITS.timeout_s):
            raise AssertionError("the trial sandbox did not answer in time")
        outcome: dict[str, object] = json.loads(parent.recv_bytes())
        return outcome
    finally:
        if process.pid is not None:  # the whole process group: anything the code managed to start
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        process.join(timeout=5)
        parent.close()
        shutil.rmtree(jobdir, ignore_errors=True)
