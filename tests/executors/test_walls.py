"""Attacks from inside a sandbox: code that escaped RestrictedPython or DuckDB tries each wall.

Every attack runs as arbitrary Python in a fresh sandbox (``walls_trial.run_inside``, the same entry as
a job's sandbox) and must fail in the specific way its wall makes it fail. The same code run behind
``isolation=none`` (what every sandbox had before the walls: a cleared environment, rlimits and a
network namespace, as the gateway's own user) succeeds, which shows that each attack is real and that
the wall, not an accident of the test, stops it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from crypto.keyring import LocalKeyring
from executors.errors import SandboxWallDown
from executors.local import LocalExecutor
from executors.walls import Isolation, WallPlan, landlock
from tests.executors.executors_contract import AGGREGATE, spec
from tests.executors.executors_fixtures import StoredVersion
from tests.executors.walls_trial import run_inside

STRICT = WallPlan()
NONE = WallPlan(isolation=Isolation.NONE)
CANARY = "canary-7f3e-the-metadata-secret"


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gateway's state directory: a keyring and a metadata database holding a canary."""
    state = tmp_path_factory.mktemp("state")
    LocalKeyring.open(state / "keyring.json", create=True).ensure_domain("health-bureau")
    with sqlite3.connect(state / "metadata.db") as db:
        db.execute("CREATE TABLE secrets (value TEXT)")
        db.execute("INSERT INTO secrets VALUES (?)", (CANARY,))
    return state


def _attack(code: str, plan: WallPlan, tmp_path: Path) -> str:
    outcome = run_inside(f"result = attempt(lambda: {code})", plan=plan, tmp_root=tmp_path)
    assert "error" not in outcome, outcome
    return str(outcome["result"])


# (what the attacker wants, the code, how the wall makes it fail)
ATTACKS = [
    pytest.param("open('{state}/keyring.json').read()", "ENOENT", id="read the keyring"),
    pytest.param("open('{state}/metadata.db', 'rb').read()", "ENOENT", id="read the metadata database"),
    pytest.param(
        "open('/proc/{gateway}/environ', 'rb').read()", "ENOENT", id="read the gateway's environment"
    ),
    pytest.param("open('/proc/{gateway}/mem', 'rb').close()", "ENOENT", id="read the gateway's memory"),
    pytest.param(
        "__import__('socket').create_connection(('127.0.0.1', 9))", "EPERM", id="open a TCP connection"
    ),
    pytest.param(
        "__import__('socket').socket(__import__('socket').AF_INET, __import__('socket').SOCK_DGRAM)",
        "EPERM",
        id="open a UDP socket",
    ),
    pytest.param("open('{project}/escaped.txt', 'w')", "EROFS", id="write into the gateway's code"),
    pytest.param("os.kill({gateway}, 0)", "EPERM", id="signal the gateway"),
]


@pytest.mark.parametrize(("code", "failure"), ATTACKS)
def test_attack_fails_behind_the_walls(code: str, failure: str, state_dir: Path, tmp_path: Path) -> None:
    filled = code.format(state=state_dir, gateway=os.getpid(), project=Path(__file__).parents[2])
    assert _attack(filled, STRICT, tmp_path) == failure


@pytest.mark.parametrize(("code", "failure"), ATTACKS)
def test_attack_succeeds_without_walls(code: str, failure: str, state_dir: Path, tmp_path: Path) -> None:
    if "127.0.0.1" in code:  # nothing listens on the discard port; the network is what is tested
        code = "__import__('socket').socket().connect_ex(('127.0.0.1', 9))"
    if "escaped.txt" in code:  # a file the gateway could write (and that does not litter the project)
        code = "open('{tmp}/escaped.txt', 'w').close()"
    filled = code.format(
        state=state_dir, gateway=os.getpid(), project=Path(__file__).parents[2], tmp=tmp_path
    )
    assert _attack(filled, NONE, tmp_path).startswith("succeeded")


def test_forking_is_refused_and_threads_still_work(tmp_path: Path) -> None:
    code = """
import threading
box = []
worker = threading.Thread(target=lambda: box.append(sum(range(1000))))
worker.start()
worker.join()
result = {"fork": attempt(os.fork), "thread": box}
"""
    outcome = run_inside(code, plan=STRICT, tmp_root=tmp_path)
    assert outcome["result"] == {"fork": "EPERM", "thread": [499500]}


def test_a_thread_bomb_is_bounded_by_the_task_limit(tmp_path: Path) -> None:
    """Processes are refused outright (above); threads are what is left to multiply, and the sandbox's
    own uid may hold at most ``max_tasks`` tasks (RLIMIT_NPROC counts threads)."""
    code = """
import threading
threading.stack_size(64 * 1024)
stop = threading.Event()
started = 0
try:
    while started < 10_000:
        threading.Thread(target=stop.wait, daemon=True).start()
        started += 1
    failure = "none"
except RuntimeError as exc:  # "can't start new thread": the kernel said EAGAIN
    failure = type(exc).__name__
stop.set()
result = {"started": started, "failure": failure}
"""
    outcome = run_inside(code, plan=STRICT, tmp_root=tmp_path)
    assert outcome["result"] == {"started": STRICT.max_tasks - 1, "failure": "RuntimeError"}


def test_ptrace_and_other_escapes_are_refused(tmp_path: Path) -> None:
    code = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    def run():
        if getattr(libc, name)(*args) != 0:
            raise OSError(ctypes.get_errno(), name)
    return run
PTRACE_ATTACH = 16
result = {
    "ptrace the parent": attempt(call("ptrace", PTRACE_ATTACH, os.getppid(), None, None)),
    "unshare a user namespace": attempt(call("unshare", 0x10000000)),
    "mount": attempt(call("mount", b"none", b"/tmp", b"tmpfs", 0, None)),
    "execute a program": attempt(lambda: os.execv("/bin/sh", ["sh", "-c", "true"])),
    "change uid": attempt(lambda: os.setuid(0)),
}
"""
    outcome = run_inside(code, plan=STRICT, tmp_root=tmp_path)
    assert outcome["result"] == {
        "ptrace the parent": "EPERM",
        "unshare a user namespace": "EPERM",
        "mount": "EPERM",
        "execute a program": "EPERM",
        "change uid": "EPERM",
    }


def test_writes_land_only_in_the_private_directory(tmp_path: Path) -> None:
    code = """
result = {
    "own": attempt(lambda: os.mkdir("/job/mine")),
    "tmp": attempt(lambda: os.mkdir("/tmp/escape")),
    "root": attempt(lambda: os.mkdir("/escape")),
    "etc": attempt(lambda: open("/etc/escape", "w")),
    "cwd": os.getcwd(),
}
"""
    outcome = run_inside(code, plan=STRICT, tmp_root=tmp_path)
    # /tmp exists in the sandbox's root only when the code it runs lives under it (a clone in /tmp):
    # either way nothing can be created there.
    assert outcome["result"].pop("tmp") in {"EROFS", "ENOENT"}
    assert outcome["result"] == {
        "own": "succeeded: None",
        "root": "EROFS",
        "etc": "EROFS",
        "cwd": "/job",
    }


def test_the_gateway_environment_is_not_in_the_sandbox_memory(tmp_path: Path) -> None:
    """The fork server started with the gateway's environment (a database password, say), and the
    kernel keeps that block in every forked child's memory: escaped code reads its own stack."""
    code = """
import ctypes
fields = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
start, end = int(fields[47]), int(fields[48])  # env_start, env_end: fields 50 and 51 of proc(5)
result = {"block": ctypes.string_at(start, end - start).strip(bytes(1)).decode(), "env": sorted(os.environ)}
"""
    outcome = run_inside(code, plan=STRICT, tmp_root=tmp_path)
    assert outcome["result"] == {"block": "", "env": ["HOME", "LC_ALL", "TMPDIR"]}
    assert os.environ.get("PATH")  # the gateway (this test) has one: there was something to leak


def test_no_descriptor_of_the_gateway_or_the_fork_server_is_left_open(tmp_path: Path) -> None:
    """The gateway's log streams and the fork server's pipes (the resource tracker's takes commands)."""
    code = """
result = {}
for fd in sorted(int(name) for name in os.listdir("/proc/self/fd")):
    try:
        result[str(fd)] = os.readlink(f"/proc/self/fd/{fd}").split(":")[0]
    except OSError:
        pass  # the descriptor listdir used, closed again
"""
    outcome = run_inside(code, plan=STRICT, tmp_root=tmp_path)
    opened = dict(outcome["result"])  # type: ignore[call-overload]
    assert [opened.pop(str(fd)) for fd in (0, 1, 2)] == ["/dev/null"] * 3
    # What is left: the pipe to the parent, and its own statm (for the address-space limit).
    assert sorted("statm" if v.endswith("/statm") else v for v in opened.values()) == ["socket", "statm"]


def test_only_the_sandbox_itself_is_visible_in_proc(tmp_path: Path) -> None:
    code = "result = sorted(int(p) for p in os.listdir('/proc') if p.isdigit()) == [os.getpid()]"
    assert run_inside(code, plan=STRICT, tmp_root=tmp_path)["result"] is True


def test_a_state_directory_inside_a_readable_directory_is_covered(tmp_path: Path) -> None:
    """A deployment whose state directory lies inside its project (which the sandbox reads, for the code)."""
    project = tmp_path / "project"
    state = project / ".sandbox-state"
    state.mkdir(parents=True)
    (state / "keyring.json").write_text(CANARY)
    (project / "module.py").write_text("VALUE = 1\n")
    code = (
        (
            "result = {'code': open('{project}/module.py').read(), 'state': os.listdir('{state}'),"
            " 'keyring': attempt(lambda: open('{state}/keyring.json').read())}"
        )
        .replace("{project}", str(project))
        .replace("{state}", str(state))
    )
    sys.path.insert(0, str(project))  # the sandbox binds every sys.path directory read-only
    try:
        outcome = run_inside(code, plan=replace(STRICT, hidden=(str(state),)), tmp_root=tmp_path)
    finally:
        sys.path.remove(str(project))
    assert "error" not in outcome, outcome
    assert outcome["result"] == {"code": "VALUE = 1\n", "state": [], "keyring": "ENOENT"}


def test_landlock_is_raised_where_the_kernel_offers_it(tmp_path: Path) -> None:
    walls = str(run_inside("result = None", plan=STRICT, tmp_root=tmp_path)["walls"]).split(",")
    assert ("landlock" in walls) is (landlock.abi_version() > 0)
    assert {"network", "mount", "no_new_privs", "seccomp"} <= set(walls)


UNPRIVILEGED_GATEWAY = 40_000


def test_an_unprivileged_gateway_runs_its_sandboxes_as_nobody_behind_the_same_walls(
    state_dir: Path, tmp_path: Path
) -> None:
    code = f"""
import socket
result = {{
    "uid": os.getuid(),
    "keyring": attempt(lambda: open("{state_dir}/keyring.json").read()),
    "socket": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)),
    "fork": attempt(os.fork),
    "write": attempt(lambda: open("/etc/escape", "w")),
    "capabilities": [line for line in open("/proc/self/status") if line.startswith("CapEff")]
    if os.path.exists("/proc/self/status") else "no /proc",
}}
"""
    own = Path(tempfile.mkdtemp(prefix="unprivileged-gateway-"))  # pytest's are private to root
    own.chmod(0o755)
    try:
        outcome = run_inside(code, plan=STRICT, tmp_root=own, gateway_uid=UNPRIVILEGED_GATEWAY)
    finally:
        shutil.rmtree(own)
    assert "error" not in outcome, outcome
    walls = str(outcome["walls"]).split(",")
    assert walls[:3] == ["network", "mount", "userns"]
    assert {"no_new_privs", "seccomp"} <= set(walls)
    assert outcome["result"] == {
        "uid": 65534,
        "keyring": "ENOENT",
        "socket": "EPERM",
        "fork": "EPERM",
        "write": "EROFS",
        "capabilities": "no /proc",
    }


# -- fail closed ---------------------------------------------------------------------------------------

# A uid range that cannot exist: the identity wall cannot be raised.
IMPOSSIBLE_FIRST_UID = 2**32 - 2


@pytest.fixture
def impossible(keyring: LocalKeyring, tmp_path: Path) -> Iterator[LocalExecutor]:
    executor = LocalExecutor(
        key_provider=keyring, max_workers=1, tmp_root=tmp_path, first_uid=IMPOSSIBLE_FIRST_UID
    )
    yield executor
    executor.close()


def test_a_wall_that_cannot_be_raised_stops_the_job(impossible: LocalExecutor, visits: StoredVersion) -> None:
    with pytest.raises(SandboxWallDown) as raised:
        impossible.run(spec(visits, AGGREGATE, job_id="no-uid"))
    assert "uid wall" in raised.value.detail
    assert "isolation=relaxed" in raised.value.detail


def test_relaxed_isolation_runs_and_says_which_wall_is_missing(
    keyring: LocalKeyring, visits: StoredVersion, tmp_path: Path
) -> None:
    executor = LocalExecutor(
        key_provider=keyring,
        max_workers=1,
        tmp_root=tmp_path,
        first_uid=IMPOSSIBLE_FIRST_UID,
        isolation=Isolation.RELAXED,
    )
    try:
        result = executor.run(spec(visits, AGGREGATE, job_id="relaxed"))
    finally:
        executor.close()
    assert result.row_count == 5
    assert result.engine["isolation"] == "relaxed"
    walls = result.engine["walls"].split(",")
    assert "uid" not in walls
    assert {"network", "mount", "seccomp"} <= set(walls)


def test_no_isolation_is_recorded_as_such(
    keyring: LocalKeyring, visits: StoredVersion, tmp_path: Path
) -> None:
    executor = LocalExecutor(key_provider=keyring, max_workers=1, tmp_root=tmp_path, isolation=Isolation.NONE)
    try:
        result = executor.run(spec(visits, AGGREGATE, job_id="none"))
    finally:
        executor.close()
    assert result.engine["walls"] == "no_new_privs"
    assert result.engine["network"] == "shared (none isolation)"
