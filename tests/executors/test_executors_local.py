"""The local fork-server executor: the shared contract plus what only a local backend can show."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from crypto.keyring import LocalKeyring
from executors.base import JobSpec
from executors.errors import DataUnavailable, ExecutionCancelled, ExecutionFailed
from executors.local import LocalExecutor
from executors.sandbox import READY
from executors.walls import DEFAULT_FIRST_UID, landlock
from tests.executors.executors_contract import (
    AGGREGATE,
    ENDLESS,
    SMALL,
    ExecutorContract,
    run_in_thread,
    spec,
)
from tests.executors.executors_fixtures import StoredVersion


class TestLocalExecutorContract(ExecutorContract):
    @pytest.fixture
    def executor(self, local_executor: LocalExecutor) -> LocalExecutor:
        return local_executor


def _wait_for_warm(executor: LocalExecutor, count: int) -> tuple[int, ...]:
    deadline = time.monotonic() + 20
    while len(pids := executor.warm_sandboxes()) < count:
        assert time.monotonic() < deadline, "the warm sandboxes never started"
        time.sleep(0.02)
    return pids


class TestWarmLocalExecutorContract(ExecutorContract):
    """The same contract when each test's jobs land in sandboxes that were waiting for them."""

    @pytest.fixture
    def executor(self, warm_executor: LocalExecutor) -> LocalExecutor:
        _wait_for_warm(warm_executor, 2)
        return warm_executor


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 (after the parenthesised command, which may contain spaces) is the parent pid.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def _descendants(pid: int) -> set[int]:
    result: set[int] = set()
    frontier = {pid}
    while frontier:
        children = set().union(*(_children(p) for p in frontier)) - result
        result |= children
        frontier = children
    return result


def _gone(pid: int) -> bool:
    """Exited: reaped already, or a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}


def _wait_for_pid(executor: LocalExecutor, job_id: str) -> int:
    deadline = time.monotonic() + 20
    while job_id not in executor.running():
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.02)
    return executor.running()[job_id]


@pytest.fixture
def own_executor(keyring: LocalKeyring, tmp_path: Path) -> Iterator[LocalExecutor]:
    executor = LocalExecutor(key_provider=keyring, max_workers=1, tmp_root=tmp_path)
    yield executor
    executor.close()


def test_close_leaves_no_sandbox_processes(
    keyring: LocalKeyring, visits: StoredVersion, tmp_path: Path
) -> None:
    executor = LocalExecutor(key_provider=keyring, max_workers=2, tmp_root=tmp_path)
    before = _descendants(os.getpid())
    runs = [run_in_thread(executor, spec(visits, ENDLESS, job_id=f"orphan-{i}")) for i in range(2)]
    pids = {_wait_for_pid(executor, f"orphan-{i}") for i in range(2)}
    assert pids <= _descendants(os.getpid())
    executor.close()
    for thread, outcome in runs:
        thread.join(timeout=20)
        assert isinstance(outcome[0], ExecutionCancelled)
    deadline = time.monotonic() + 10
    while _descendants(os.getpid()) - before:
        assert time.monotonic() < deadline, f"left behind: {_descendants(os.getpid()) - before}"
        time.sleep(0.05)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ExecutionCancelled):
        executor.run(spec(visits, AGGREGATE, job_id="after-close"))


def test_a_crashed_sandbox_is_reported_and_the_executor_goes_on(
    own_executor: LocalExecutor, visits: StoredVersion
) -> None:
    thread, outcome = run_in_thread(own_executor, spec(visits, ENDLESS, job_id="crash"))
    os.kill(_wait_for_pid(own_executor, "crash"), signal.SIGSEGV)
    thread.join(timeout=20)
    assert isinstance(outcome[0], ExecutionFailed)
    assert "SIGSEGV" in outcome[0].detail
    assert own_executor.run(spec(visits, AGGREGATE, job_id="after-crash")).row_count == 5


def test_private_temp_dir_exists_while_running_and_is_removed(
    own_executor: LocalExecutor, visits: StoredVersion, tmp_path: Path
) -> None:
    thread, outcome = run_in_thread(own_executor, spec(visits, ENDLESS, job_id="tmpdir"))
    _wait_for_pid(own_executor, "tmpdir")
    (private,) = tmp_path.iterdir()
    assert private.stat().st_mode & 0o077 == 0
    own_executor.cancel("tmpdir")
    thread.join(timeout=20)
    assert isinstance(outcome[0], ExecutionCancelled)
    assert list(tmp_path.iterdir()) == []


def test_concurrency_is_bounded_by_max_workers(own_executor: LocalExecutor, visits: StoredVersion) -> None:
    runs = [run_in_thread(own_executor, spec(visits, AGGREGATE, job_id=f"bounded-{i}")) for i in range(3)]
    most = 0
    while any(thread.is_alive() for thread, _ in runs):
        most = max(most, len(own_executor.running()))
        time.sleep(0.002)
    assert most == 1
    assert all(outcome[0].row_count == 5 for _, outcome in runs)  # type: ignore[union-attr]


def test_the_jobs_own_cpu_seconds_are_reported(local_executor: LocalExecutor, visits: StoredVersion) -> None:
    busy = "SELECT COUNT(DISTINCT hash(i * 7)) AS n FROM range(3000000) t(i)"
    light = local_executor.run(spec(visits, AGGREGATE, job_id="cpu-light")).timings["cpu"]
    heavy = local_executor.run(spec(visits, busy, job_id="cpu-heavy")).timings["cpu"]
    assert 0 <= light < heavy


def test_every_wall_is_recorded(local_executor: LocalExecutor, visits: StoredVersion) -> None:
    engine = local_executor.run(spec(visits, AGGREGATE, job_id="network")).engine
    assert engine["network"] == "isolated"
    assert engine["isolation"] == "strict"
    identity = "uid" if os.geteuid() == 0 else "userns"
    expected = ["network", "mount", identity, "no_new_privs", "seccomp"]
    if landlock.abi_version() > 0:
        expected.insert(4, "landlock")
    assert engine["walls"] == ",".join(expected)


def test_sandbox_runs_in_its_own_network_namespace(
    local_executor: LocalExecutor, visits: StoredVersion
) -> None:
    thread, _ = run_in_thread(local_executor, spec(visits, ENDLESS, job_id="netns"))
    pid = _wait_for_pid(local_executor, "netns")
    try:
        deadline = time.monotonic() + 5
        while True:  # the child unshares and sets its limits right after it starts
            child_ns = str(Path(f"/proc/{pid}/ns/net").readlink())
            limits = Path(f"/proc/{pid}/limits").read_text()
            if "Max file size             0" in limits or time.monotonic() > deadline:
                break
            time.sleep(0.02)
    finally:
        local_executor.cancel("netns")
        thread.join(timeout=20)
    if os.geteuid() == 0:
        assert child_ns != str(Path("/proc/self/ns/net").readlink())
    assert "Max core file size        0" in limits
    assert "Max file size             0" in limits


def test_duplicate_job_id_is_refused(local_executor: LocalExecutor, visits: StoredVersion) -> None:
    thread, _ = run_in_thread(local_executor, spec(visits, ENDLESS, job_id="twice"))
    _wait_for_pid(local_executor, "twice")
    try:
        with pytest.raises(ExecutionFailed):
            local_executor.run(spec(visits, AGGREGATE, job_id="twice"))
    finally:
        local_executor.cancel("twice")
        thread.join(timeout=20)


@pytest.fixture
def warm_one(keyring: LocalKeyring, tmp_path: Path) -> Iterator[LocalExecutor]:
    executor = LocalExecutor(key_provider=keyring, max_workers=1, tmp_root=tmp_path, warm_sandboxes=1)
    yield executor
    executor.close()


def test_a_warm_sandbox_serves_one_job_and_is_replaced(
    warm_one: LocalExecutor, visits: StoredVersion
) -> None:
    (first,) = _wait_for_warm(warm_one, 1)
    result = warm_one.run(spec(visits, AGGREGATE, job_id="warm-1"))
    assert result.row_count == 5
    assert result.engine["sandbox"] == "local-fork (warm)"
    assert "fork" not in result.timings
    assert result.timings["handoff"] >= 0
    deadline = time.monotonic() + 10
    while first in _descendants(os.getpid()):  # it exits after its one job (reaped in the background)
        assert time.monotonic() < deadline, "the sandbox outlived its job"
        time.sleep(0.02)
    (second,) = _wait_for_warm(warm_one, 1)
    assert second != first
    again = warm_one.run(spec(visits, AGGREGATE, job_id="warm-2"))
    assert again.to_arrow().equals(result.to_arrow())


def test_a_warm_sandbox_is_walled_before_its_job_arrives(warm_one: LocalExecutor, tmp_path: Path) -> None:
    (pid,) = _wait_for_warm(warm_one, 1)
    proc = Path(f"/proc/{pid}")
    deadline = time.monotonic() + 10
    while "Seccomp:\t2" not in (status := (proc / "status").read_text()):  # the filter is the last wall
        assert time.monotonic() < deadline, "the warm sandbox never raised its walls"
        time.sleep(0.02)
    assert "NoNewPrivs:\t1" in status
    assert os.getpgid(pid) == pid  # its own process group: killed as one
    for namespace in ("net", "mnt", "ipc", "uts"):
        assert (proc / "ns" / namespace).readlink() != Path(f"/proc/self/ns/{namespace}").readlink()
    uid = DEFAULT_FIRST_UID + pid if os.geteuid() == 0 else os.getuid()  # else: nobody, mapped to us
    assert f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}" in status
    assert "CapEff:\t0000000000000000" in status
    (private,) = tmp_path.iterdir()
    assert private.stat().st_mode & 0o077 == 0


def test_a_dead_warm_sandbox_is_replaced_by_a_fresh_one(
    warm_one: LocalExecutor, visits: StoredVersion
) -> None:
    (pid,) = _wait_for_warm(warm_one, 1)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not _gone(pid):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    result = warm_one.run(spec(visits, AGGREGATE, job_id="after-kill"))
    assert result.row_count == 5
    assert result.engine["sandbox"] == "local-fork"  # forked for the job: the waiting one was dead
    _wait_for_warm(warm_one, 1)


def test_close_stops_waiting_warm_sandboxes(keyring: LocalKeyring, tmp_path: Path) -> None:
    executor = LocalExecutor(key_provider=keyring, max_workers=1, tmp_root=tmp_path, warm_sandboxes=2)
    pids = set(_wait_for_warm(executor, 2))
    assert pids <= _descendants(os.getpid())
    executor.close()
    deadline = time.monotonic() + 10
    while pids & _descendants(os.getpid()):
        assert time.monotonic() < deadline, f"left behind: {pids & _descendants(os.getpid())}"
        time.sleep(0.05)
    assert list(tmp_path.iterdir()) == []
    assert executor.warm_sandboxes() == ()


def test_warm_sandboxes_are_off_by_default(own_executor: LocalExecutor, visits: StoredVersion) -> None:
    result = own_executor.run(spec(visits, AGGREGATE, job_id="cold"))
    assert result.engine["sandbox"] == "local-fork"
    assert "fork" in result.timings
    assert own_executor.warm_sandboxes() == ()


def test_a_stuck_warm_sandbox_is_passed_over(warm_one: LocalExecutor, visits: StoredVersion) -> None:
    (pid,) = _wait_for_warm(warm_one, 1)
    (spare,) = warm_one._spares  # white box: consume its "ready", then freeze it
    assert spare.conn.poll(20)
    assert spare.conn.recv_bytes() == READY
    os.kill(pid, signal.SIGSTOP)
    try:
        result = warm_one.run(spec(visits, AGGREGATE, job_id="passed-over"))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    assert result.row_count == 5
    assert result.engine["sandbox"] == "local-fork"  # its own fresh fork, not the silent one
    assert _gone(pid) or pid not in warm_one.warm_sandboxes()


@pytest.mark.parametrize("attempt", range(3))
def test_close_right_after_start_leaves_nothing(keyring: LocalKeyring, tmp_path: Path, attempt: int) -> None:
    before = _descendants(os.getpid())
    executor = LocalExecutor(key_provider=keyring, max_workers=1, tmp_root=tmp_path, warm_sandboxes=2)
    executor.close()  # while the warm sandboxes are still being started
    assert list(tmp_path.iterdir()) == []
    deadline = time.monotonic() + 10
    while True:
        # The fork server (our child, started once per process) stays; its children, the sandboxes, not.
        left = {p for p in _descendants(os.getpid()) - before - _children(os.getpid()) if not _gone(p)}
        if not left:
            break
        assert time.monotonic() < deadline, f"left behind: {left}"
        time.sleep(0.05)


def test_a_missing_part_is_named_and_the_sandbox_it_took_is_not_left_behind(
    warm_one: LocalExecutor, visits: StoredVersion, tmp_path: Path
) -> None:
    (taken,) = _wait_for_warm(warm_one, 1)
    table = visits.inputs["visits"]
    gone = replace(table.parts[1], path=str(tmp_path / "gone.enc"))
    job = JobSpec(
        job_id="missing-part",
        sql=AGGREGATE,
        tables=(replace(table, parts=(table.parts[0], gone, *table.parts[2:])),),
        keyed_hash_key=None,
        limits=SMALL,
    )
    with pytest.raises(DataUnavailable) as raised:
        warm_one.run(job)
    assert "part 1 (part-00001.enc)" in raised.value.detail
    deadline = time.monotonic() + 10
    while not _gone(taken):  # the parts are opened by the parent: the waiting sandbox got nothing
        assert time.monotonic() < deadline, "the sandbox taken for the job was left running"
        time.sleep(0.02)
    assert warm_one.run(spec(visits, AGGREGATE, job_id="after-missing")).row_count == 5
