"""CPU, recursion and memory bombs and interrupts end the job with a reason; the process lives on."""

from __future__ import annotations

import json
import os
import resource
import signal
import threading
from pathlib import Path

import pytest

from executors.pyjobs import (
    AggregateOutput,
    PyJobError,
    PyJobInterrupted,
    PyJobResourceExhausted,
    PyLimits,
)

from .pyjobs_fixtures import run

FAST = PyLimits(cpu_s=0.3)


@pytest.mark.parametrize(
    "code",
    [
        "while True:\n    pass",
        "x = 0\nwhile True:\n    x += 1",
        "def f():\n    try:\n        while True:\n            pass\n"
        "    finally:\n        while True:\n            pass\nf()",
        "import math\nresult = math.factorial(10**7)",
    ],
    ids=["busy-loop", "counting-loop", "loop-in-finally", "factorial"],
)
def test_cpu_bombs_stop_at_the_cpu_limit(code: str) -> None:
    with pytest.raises(PyJobResourceExhausted) as raised:
        run(code, limits=FAST)
    assert "CPU seconds" in raised.value.detail


@pytest.mark.parametrize(
    "code",
    [
        "def f(n):\n    return f(n + 1)\nf(0)",
        "f = lambda n: f(n + 1)\nf(0)",
        "result = people['age'].map(lambda v: (lambda g: g(g))(lambda g: g(g)))",
    ],
    ids=["def", "lambda", "inside-pandas-callback"],
)
def test_recursion_bombs_end_cleanly(code: str) -> None:
    with pytest.raises(PyJobResourceExhausted) as raised:
        run(code)
    assert "recursion" in raised.value.detail


@pytest.mark.parametrize(
    "code",
    ["x = [0] * (10**12)", "x = 'a' * (10**13)", "import numpy as np\nx = np.ones(10**13)"],
    ids=["list", "string", "numpy"],
)
def test_immediate_memory_bombs_end_cleanly(code: str) -> None:
    with pytest.raises(PyJobResourceExhausted) as raised:
        run(code)
    assert "memory" in raised.value.detail


def _in_limited_child(code: str, address_space: int) -> dict[str, str]:
    """Run the job in a forked child under RLIMIT_AS, as the sandbox process does."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_end)
        report = {"kind": "none", "detail": ""}
        try:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
            run(code)
        except PyJobError as exc:
            report = {"kind": type(exc).__name__, "detail": exc.detail}
        except BaseException as exc:
            report = {"kind": "escaped:" + type(exc).__name__, "detail": ""}
        os.write(write_end, json.dumps(report).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status)
    assert os.WEXITSTATUS(status) == 0
    return json.loads(data)  # type: ignore[no-any-return]


def _current_address_space() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize(
    "code",
    [
        "import numpy as np\nx = np.zeros((40000, 40000))\nx[:] = 1.0",
        "chunks = []\nwhile True:\n    chunks.append('x' * 10**7)",
        "import pandas as pd\nx = people\nfor i in range(40):\n    x = pd.concat([x, x])",
    ],
    ids=["numpy-zeros", "growing-list", "doubling-frame"],
)
def test_gradual_memory_bombs_end_cleanly_under_rlimit(code: str) -> None:
    report = _in_limited_child(code, _current_address_space() + 512 * 2**20)
    assert report["kind"] == "PyJobResourceExhausted", report
    assert "memory" in report["detail"]


def test_keyboard_interrupt_ends_the_job_cleanly() -> None:
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(PyJobInterrupted) as raised:
            run("while True:\n    pass", limits=PyLimits(cpu_s=30))
    finally:
        timer.cancel()
    assert "KeyboardInterrupt" in raised.value.detail


def test_process_still_runs_jobs_after_the_bombs() -> None:
    out = run("result = aggregate(people, by='sex', aggs={'n': ('age', 'count')})")
    assert isinstance(out, AggregateOutput)
    assert int(out.table["n"].sum()) == 600
