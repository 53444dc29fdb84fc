"""The job's record and its signed receipt say which walls held around the job's sandbox."""

from __future__ import annotations

import os

from executors.walls import landlock
from sandbox_api.receipt_format import signed_bytes
from tests.sandbox_api.api_helpers import World
from tests.sandbox_api.auditing_helpers import receipt_of, release


def test_the_receipt_signs_the_walls_that_held(api: World) -> None:
    job_id = release(api)
    receipt = receipt_of(api, job_id)
    identity = "uid" if os.geteuid() == 0 else "userns"
    walls = ["network", "mount", identity, "no_new_privs", "seccomp"]
    if landlock.abi_version() > 0:
        walls.insert(4, "landlock")
    assert receipt["engine"]["walls"] == ",".join(walls)
    assert receipt["engine"]["isolation"] == "strict"
    assert receipt["engine"]["network"] == "isolated"
    assert b'"walls":"' + ",".join(walls).encode() + b'"' in signed_bytes(receipt)
