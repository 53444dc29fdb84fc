"""Forget the environment a process was started with: the gateway's, a database password among it.

A sandbox is forked from the fork server, which the gateway started with its own environment. Clearing
``os.environ`` is not enough: the kernel keeps the block the process was started with on its stack and
shows it in ``/proc/self/environ``, and every forked child inherits that block. :func:`scrub` zeroes
it in place (its bounds are fields 50 and 51 of ``/proc/self/stat``, see proc(5)) and empties
``os.environ``. The fork server runs it once at start-up (``fork_server_preload``), and every sandbox
runs it again before its walls go up.

What it cannot reach: copies the fork server's interpreter made of the environment before (the values
``os.environ`` held, freed but not overwritten). Keep secrets out of the gateway's environment where
the deployment allows (a file only the gateway's user reads).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

_ENV_START_FIELD = 50  # 1-based field numbers of /proc/<pid>/stat


def environment_block() -> tuple[int, int]:
    """The start and end address of this process's original environment block."""
    stat = Path("/proc/self/stat").read_text(encoding="ascii")
    fields = stat.rsplit(")", 1)[1].split()  # field 3 (state) onwards: the command name may hold spaces
    start = int(fields[_ENV_START_FIELD - 3])
    return start, int(fields[_ENV_START_FIELD - 2])


def scrub() -> None:
    """Zero the original environment block and empty ``os.environ`` (see the module docstring)."""
    start, end = environment_block()
    os.environ.clear()
    if 0 < start < end:
        ctypes.memset(start, 0, end - start)
