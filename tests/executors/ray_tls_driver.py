"""A gateway's driver in a process of its own: joins the Ray cluster at ADDRESS and runs one job.

``python -m tests.executors.ray_tls_driver ADDRESS JOB RESULT`` reads a pickled ``JobSpec`` from JOB,
runs it with ``RayExecutor(address=ADDRESS)`` and writes the result's Arrow IPC stream to RESULT.

It is a separate process because Ray reads its TLS settings (``RAY_USE_TLS`` and ``RAY_TLS_*``) once,
when a process first connects: the test process may already hold a plain Ray connection, and it must
not leak TLS settings into the other tests.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

from executors.base import JobSpec
from executors.ray_executor import RayExecutor


def main(address: str, job_path: str, result_path: str) -> None:
    job = pickle.loads(Path(job_path).read_bytes())  # written by the test that runs this
    if not isinstance(job, JobSpec):
        raise TypeError(f"{job_path} holds a {type(job).__name__}, not a JobSpec")
    executor = RayExecutor(address=address)
    try:
        Path(result_path).write_bytes(executor.run(job).arrow_ipc)
    finally:
        executor.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
