"""``LocalExecutor``: each job in a fresh sandboxed process forked from a warm fork server.

The fork server (``multiprocessing``'s ``forkserver``) has pandas, pyarrow, DuckDB and this package
imported, so a job pays for a fork, not for an interpreter start. The parent unwraps the data keys
with the key provider and hands them to the child only through a pipe. The wall-clock timeout, cancel
and ``close`` kill the child's process group; its private temporary directory is removed afterwards
whatever happened.

*Warm sandboxes* (``warm_sandboxes=N``) go one step further: up to N sandbox processes are forked and
hardened before any job needs them, open their engine and walk a job's path once over synthetic data,
then wait. A job takes one if one is waiting (a fresh one is forked otherwise) and a replacement is
started when the job ends. Each still serves exactly one job; it holds no key and no data before its job
arrives. On the demo's small job this saves the fork, the engine's start (10-15 ms) and most first-touch
costs of a fresh process (see ``benchmarks/bench_executor.py --small``).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.forkserver
import os
import pickle
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from pathlib import Path

from opentelemetry.trace import Tracer

from crypto.errors import CryptoError, IntegrityError
from crypto.keyring import KeyProvider
from executors.base import JobSpec, ResultTable, ledger_key_aad
from executors.columns import with_projection
from executors.crossdomain import strip_once
from executors.errors import (
    BY_CODE,
    DataUnavailable,
    ExecutionCancelled,
    ExecutionError,
    ExecutionFailed,
    ExecutionTimeout,
    PartIntegrityError,
    ResourceExhausted,
)
from executors.forking import LeanForkServerProcess
from executors.sandbox import READY, Payload, child_main, send_part_fds
from executors.storage import part_indices, part_name
from executors.tracing import job_span, record_timings
from executors.walls import DEFAULT_FIRST_UID, Isolation, WallPlan

# Imported by the fork server once, so that every forked job starts warm.
PRELOAD = (
    "pandas",
    "pyarrow",
    "pyarrow.parquet",
    "duckdb",
    "executors.sandbox",
    "executors.walls",
    "executors.fork_server_preload",
)
_MAX_HEADER_BYTES = 1 << 20
# How long a job waits for a warm sandbox still warming up (about 20-30 ms) before forking its own.
READY_WAIT_S = 0.25


@dataclass
class _Sandbox:
    """A started sandbox process with its end of the pipe and its private temporary directory."""

    process: BaseProcess
    conn: Connection
    tmpdir: str
    warm: bool

    def discard(self) -> None:
        if self.process.pid is not None:
            if self.process.is_alive():
                _kill(self.process)
            self.process.join(timeout=5)
        self.conn.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


@dataclass
class _Running:
    """Book-keeping of one job between its start and its end (guarded by the executor's lock)."""

    process: BaseProcess | None = None
    cancelled: bool = False
    done: threading.Event = field(default_factory=threading.Event)


def _kill(process: BaseProcess) -> None:
    pid = process.pid
    if pid is None:
        return
    # The child made itself a process-group leader; anything it started goes with it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, ValueError):
        process.kill()


def _exit_error(job_id: str, exitcode: int | None) -> ExecutionError:
    if exitcode is not None and exitcode < 0:
        sig = -exitcode
        name = signal.Signals(sig).name if sig in signal.valid_signals() else f"signal {sig}"
        if sig == signal.SIGXCPU:
            return ResourceExhausted(f"job {job_id} used up its CPU-time limit")
        if sig == signal.SIGKILL:
            return ResourceExhausted(f"job {job_id} was killed by the system (usually: out of memory)")
        if sig == signal.SIGXFSZ:
            return ExecutionFailed(f"job {job_id} tried to write a file, which the sandbox forbids")
        return ExecutionFailed(
            f"job {job_id}'s sandbox process crashed ({name}); this can mean it exceeded its "
            "address-space limit"
        )
    return ExecutionFailed(f"job {job_id}'s sandbox process ended without a result (exit code {exitcode})")


class LocalExecutor:
    """The embedded executor: bounded concurrency, one forked sandbox process per job."""

    def __init__(
        self,
        *,
        key_provider: KeyProvider,
        max_workers: int = 2,
        tmp_root: Path | None = None,
        warm_sandboxes: int = 0,
        isolation: Isolation = Isolation.STRICT,
        first_uid: int = DEFAULT_FIRST_UID,
        hidden_paths: tuple[Path, ...] = (),
        tracer: Tracer | None = None,
    ) -> None:
        """``isolation``, ``first_uid``: see ``executors.walls``. ``hidden_paths``: the state directory,
        keyring and database, covered in every sandbox should one lie inside a directory it can read.
        ``tracer``: where the executor's spans go (``executors.tracing``; default the process's global
        tracer, a no-op one unless the process configured tracing)."""
        self._tracer = tracer
        if max_workers < 1:
            raise ExecutionFailed(f"max_workers must be at least 1, got {max_workers}")
        if warm_sandboxes < 0:
            raise ExecutionFailed(f"warm_sandboxes must be 0 or more, got {warm_sandboxes}")
        self._keys = key_provider
        self._plan = WallPlan(
            isolation=isolation, first_uid=first_uid, hidden=tuple(str(p.resolve()) for p in hidden_paths)
        )
        self._warm_target = warm_sandboxes
        self._spares: list[_Sandbox] = []
        self._spares_starting = 0
        # Threads that start warm sandboxes or reap finished ones; close() waits for them.
        self._helpers: set[threading.Thread] = set()
        self._slots = threading.BoundedSemaphore(max_workers)
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}
        self._closed = False
        self._tmp_root = tmp_root if tmp_root is not None else _memory_backed_tmp()
        self._ctx: ForkServerContext = multiprocessing.get_context("forkserver")
        # The preload list belongs to the process-wide fork server; it takes effect when that server
        # starts, which ensure_running does now rather than on the first job.
        self._ctx.set_forkserver_preload(list(PRELOAD))
        multiprocessing.forkserver.ensure_running()
        # One empty child now, so the fork server has finished its preload before the first job.
        probe = LeanForkServerProcess(target=_noop, daemon=True)
        probe.start()
        probe.join()
        self._replenish()

    # -- the Executor protocol -------------------------------------------------------------------

    def run(self, spec: JobSpec, *, arrow_tables: Mapping[str, bytes] | None = None) -> ResultTable:
        """Run ``spec`` in a fresh sandbox; ``arrow_tables`` (name to Arrow IPC) are extra in-memory
        inputs, used by the Ray backend to merge partial aggregates inside a sandbox."""
        with job_span(self._tracer, spec, "executor.run", attributes={"sandbox.executor": "local"}) as span:
            result = self._run(spec, arrow_tables=arrow_tables)
            record_timings(span, result.timings)
            return result

    def trace_with(self, tracer: Tracer) -> None:
        """Send this executor's spans to ``tracer`` (the gateway's own provider) from now on."""
        self._tracer = tracer

    def _run(self, spec: JobSpec, *, arrow_tables: Mapping[str, bytes] | None) -> ResultTable:
        started = time.perf_counter()
        spec = with_projection(spec)  # parse only the columns the query can read (in the child)
        # A domain's sealed state serves two unblind rounds, and their points count together.
        spec = replace(spec, party=strip_once.claim(spec.party))
        data_keys = self._unwrap(spec)
        lineage_secret = self._lineage_secret(spec)
        unwrap_s = time.perf_counter() - started
        entry = self._register(spec.job_id)
        try:
            with self._slots:
                with self._lock:
                    if entry.cancelled or self._closed:
                        raise ExecutionCancelled(f"job {spec.job_id} was cancelled before it started")
                payload = Payload(
                    spec=spec,
                    data_keys=data_keys,
                    arrow_tables=tuple((arrow_tables or {}).items()),
                    lineage_secret=lineage_secret,
                )
                return self._run_in_child(payload, entry, unwrap_s=unwrap_s, started=started)
        finally:
            with self._lock:
                self._running.pop(spec.job_id, None)
            entry.done.set()

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            entry = self._running.get(job_id)
            if entry is None or entry.cancelled:
                return False
            entry.cancelled = True
            process = entry.process
        if process is not None:
            _kill(process)
        return True

    def close(self) -> None:
        with self._lock:
            self._closed = True
            entries = list(self._running.values())
            for entry in entries:
                entry.cancelled = True
            processes = [e.process for e in entries if e.process is not None]
            spares, self._spares = self._spares, []
        for process in processes:
            _kill(process)
        for spare in spares:
            spare.discard()
        for entry in entries:
            entry.done.wait(timeout=10)
        with self._lock:
            helpers = list(self._helpers)
        for thread in helpers:
            thread.join(timeout=10)
        with self._lock:  # a starter may have finished a fork as close() began
            spares, self._spares = self._spares, []
        for spare in spares:
            spare.discard()

    def readiness(self) -> str | None:
        """None when jobs can run here now, else why not (for a readiness probe)."""
        # A fork server that died is started again by the next fork, so only a closed executor is
        # unable to run jobs.
        with self._lock:
            return "the local executor is closed" if self._closed else None

    def warm_sandboxes(self) -> tuple[int, ...]:
        """Process ids of the warm sandboxes waiting for a job now (for operators and tests)."""
        with self._lock:
            return tuple(
                spare.process.pid
                for spare in self._spares
                if spare.process.pid is not None and spare.process.is_alive()
            )

    def running(self) -> Mapping[str, int]:
        """Job id to sandbox process id of every job whose process is alive (for operators and tests)."""
        with self._lock:
            return {
                job_id: entry.process.pid
                for job_id, entry in self._running.items()
                if entry.process is not None and entry.process.pid is not None
            }

    # -- steps ---------------------------------------------------------------------------------

    def _unwrap(self, spec: JobSpec) -> tuple[bytes, ...]:
        keys: list[bytes] = []
        for table in spec.tables:
            try:
                keys.append(self._keys.unwrap(table.domain, table.wrapped_key, aad=table.key_aad))
            except IntegrityError as exc:
                raise PartIntegrityError(
                    f"the data key of {table.domain}/{table.dataset} version {table.version_id} failed "
                    "authentication (tampered, or bound to another version)"
                ) from exc
            except CryptoError as exc:
                raise DataUnavailable(
                    f"the data key of {table.domain}/{table.dataset} version {table.version_id} cannot be "
                    f"unwrapped: {exc.detail}"
                ) from exc
        return tuple(keys)

    def _lineage_secret(self, spec: JobSpec) -> bytes:
        """For a cross-domain round under the ledger: its dataset's ledger key, unwrapped as the data
        keys are (empty where the spec carries none: the round derives from the data key)."""
        if spec.party is None or not spec.party.lineage or not spec.tables or not spec.tables[0].ledger_key:
            return b""
        table = spec.tables[0]
        dataset = f"{table.domain}/{table.dataset}"
        try:
            return self._keys.unwrap(table.domain, table.ledger_key, aad=ledger_key_aad(dataset))
        except IntegrityError as exc:
            raise PartIntegrityError(
                f"the ledger key of {dataset} failed authentication (tampered, or bound to another dataset)"
            ) from exc
        except CryptoError as exc:
            raise DataUnavailable(f"the ledger key of {dataset} cannot be unwrapped: {exc.detail}") from exc

    def _register(self, job_id: str) -> _Running:
        with self._lock:
            if self._closed:
                raise ExecutionCancelled(f"job {job_id} cannot start: the executor is closed")
            if job_id in self._running:
                raise ExecutionFailed(f"job {job_id} is already running on this executor")
            entry = _Running()
            self._running[job_id] = entry
            return entry

    def _run_in_child(
        self, payload: Payload, entry: _Running, *, unwrap_s: float, started: float
    ) -> ResultTable:
        spec = payload.spec
        message = pickle.dumps(payload)
        with self._lock:
            if entry.cancelled:
                raise ExecutionCancelled(f"job {spec.job_id} was cancelled before it started")
            sandbox = self._take_spare()
        if sandbox is not None and not _ready(sandbox):
            sandbox.discard()  # failed or stuck before its job: fork a fresh one instead
            sandbox = None
        fork_at: float | None = None
        part_fds: list[int] = []
        try:
            part_fds = _open_parts(spec)
            with self._lock:
                if entry.cancelled:
                    raise ExecutionCancelled(f"job {spec.job_id} was cancelled before it started")
                if sandbox is None:
                    fork_at = time.monotonic()
                    sandbox = self._start_sandbox(warm=False)
                entry.process = sandbox.process
            if fork_at is not None:
                _await_walls(sandbox, spec, entry)
            sent_at = time.monotonic()
            try:
                sandbox.conn.send_bytes(message)
                send_part_fds(sandbox.conn, part_fds)
            except OSError:
                if entry.cancelled:
                    raise ExecutionCancelled(f"job {spec.job_id} was cancelled") from None
                raise ExecutionFailed(
                    f"job {spec.job_id}'s sandbox process ended before it received the job (killed by the "
                    "system, usually for memory); nothing ran, so submitting it again is safe"
                ) from None
            header, ipc = self._collect(spec, sandbox.conn, sandbox.process, entry)
            with self._lock:
                entry.process = None  # from here on a cancel must not signal this (exiting) process
            done, sandbox = sandbox, None
        finally:
            for fd in part_fds:
                os.close(fd)
            if sandbox is not None:
                sandbox.discard()
            self._replenish()
        # The result is in: the process is on its way out. Tearing its memory down takes the kernel a few
        # ms, which the job need not wait for; close() waits for every such clean-up.
        self._retire(done)
        return _result(header, ipc, unwrap_s=unwrap_s, fork_at=fork_at, sent_at=sent_at, started=started)

    def _retire(self, sandbox: _Sandbox) -> None:
        thread = threading.Thread(target=self._reap, args=(sandbox,), name="sandbox-reaper", daemon=True)
        with self._lock:
            self._helpers.add(thread)
            thread.start()

    def _reap(self, sandbox: _Sandbox) -> None:
        try:
            sandbox.discard()
        finally:
            with self._lock:
                self._helpers.discard(threading.current_thread())

    # -- warm sandboxes ------------------------------------------------------------------------

    def _start_sandbox(self, *, warm: bool) -> _Sandbox:
        tmpdir = tempfile.mkdtemp(prefix="sbx-job-", dir=self._tmp_root)
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        process = LeanForkServerProcess(
            target=child_main, args=(child_conn, tmpdir, warm, self._plan), daemon=True
        )
        try:
            process.start()
        except BaseException:
            parent_conn.close()
            shutil.rmtree(tmpdir, ignore_errors=True)
            raise
        finally:
            child_conn.close()
        return _Sandbox(process=process, conn=parent_conn, tmpdir=tmpdir, warm=warm)

    def _take_spare(self) -> _Sandbox | None:
        """A waiting warm sandbox, if one is alive (caller holds the lock)."""
        while self._spares:
            spare = self._spares.pop(0)
            if spare.process.is_alive():
                return spare
            spare.discard()
        return None

    def _replenish(self) -> None:
        """Top the warm sandboxes up to the target, in the background (forking takes a few ms)."""
        with self._lock:
            missing = self._warm_target - len(self._spares) - self._spares_starting
            if self._closed or missing <= 0:
                return
            self._spares_starting += missing
            thread = threading.Thread(
                target=self._start_spares, args=(missing,), name="sandbox-warm-start", daemon=True
            )
            self._helpers.add(thread)
            thread.start()  # under the lock: close() must never see a thread it cannot join yet

    def _start_spares(self, count: int) -> None:
        try:
            for _ in range(count):
                spare: _Sandbox | None = None
                with self._lock:
                    closed = self._closed
                if not closed:
                    try:
                        spare = self._start_sandbox(warm=True)
                    except Exception:  # no warm sandbox this time: jobs fork their own meanwhile
                        spare = None
                with self._lock:
                    self._spares_starting -= 1
                    if spare is not None and not self._closed:
                        self._spares.append(spare)
                        spare = None
                if spare is not None:
                    spare.discard()
        finally:
            with self._lock:
                self._helpers.discard(threading.current_thread())

    def _collect(
        self, spec: JobSpec, conn: Connection, process: BaseProcess, entry: _Running
    ) -> tuple[dict[str, object], bytes]:
        deadline = time.monotonic() + spec.limits.timeout_s
        ready = wait([conn, process.sentinel], timeout=spec.limits.timeout_s)
        header: dict[str, object] | None = None
        if conn in ready:
            try:
                header = _parse_header(conn.recv_bytes(_MAX_HEADER_BYTES))
            except (EOFError, OSError):
                header = None
        if header is not None and header.get("status") == "ok":
            remaining = max(0.0, deadline - time.monotonic())
            if not conn.poll(remaining):
                ready = []
            else:
                try:
                    return header, conn.recv_bytes()
                except (EOFError, OSError):
                    header = None
        if entry.cancelled:
            raise ExecutionCancelled(f"job {spec.job_id} was cancelled")
        if not ready:
            _kill(process)
            raise ExecutionTimeout(
                f"job {spec.job_id} exceeded its wall-clock limit of {spec.limits.timeout_s:g} s"
            )
        if header is not None and header.get("status") == "error":
            cls = BY_CODE.get(str(header.get("code")), ExecutionFailed)
            raise cls(str(header.get("detail", "the job failed in its sandbox")))
        process.join(timeout=5)
        raise _exit_error(spec.job_id, process.exitcode)


def _ready(sandbox: _Sandbox) -> bool:
    """Whether a warm sandbox has said it waits for its job (it may still be warming up: give it a
    moment; one that failed before its job has sent an error instead)."""
    try:
        if not sandbox.conn.poll(READY_WAIT_S):
            return False
        return sandbox.conn.recv_bytes(_MAX_HEADER_BYTES) == READY
    except (EOFError, OSError):
        return False


def _await_walls(sandbox: _Sandbox, spec: JobSpec, entry: _Running) -> None:
    """Wait until a freshly forked sandbox says its walls are up; raise what it reported otherwise
    (``SandboxWallDown`` under strict isolation): the job is sent to no sandbox that is not walled."""
    conn = sandbox.conn
    ready = wait([conn, sandbox.process.sentinel], timeout=spec.limits.timeout_s)
    raw: bytes | None = None
    if conn in ready:
        with contextlib.suppress(EOFError, OSError):
            raw = conn.recv_bytes(_MAX_HEADER_BYTES)
    if raw == READY:
        return
    if entry.cancelled:
        raise ExecutionCancelled(f"job {spec.job_id} was cancelled")
    header = _parse_header(raw) if raw is not None else None
    if header is not None and header.get("status") == "error":
        cls = BY_CODE.get(str(header.get("code")), ExecutionFailed)
        raise cls(str(header.get("detail", "the sandbox failed before its job")))
    if not ready:
        raise ExecutionTimeout(
            f"job {spec.job_id}'s sandbox did not get ready within {spec.limits.timeout_s:g} s"
        )
    sandbox.process.join(timeout=5)
    raise _exit_error(spec.job_id, sandbox.process.exitcode)


def _open_parts(spec: JobSpec) -> list[int]:
    """A read-only descriptor on every part of ``spec``, in order: what the sandbox reads its data from."""
    fds: list[int] = []
    try:
        for table in spec.tables:
            for index, part in zip(part_indices(table), table.parts, strict=True):
                try:
                    fds.append(os.open(part.path, os.O_RDONLY | os.O_CLOEXEC))
                except OSError as exc:
                    raise DataUnavailable(
                        f"part {index} ({part_name(index)}) of table {table.table!r} in "
                        f"{table.domain}/{table.dataset} version {table.version_id} cannot be read: "
                        f"{exc.strerror}"
                    ) from exc
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds


def _noop() -> None:
    return None


def _parse_header(raw: bytes) -> dict[str, object] | None:
    try:
        header = json.loads(raw)
    except ValueError:
        return None
    return header if isinstance(header, dict) else None


def _result(
    header: dict[str, object],
    ipc: bytes,
    *,
    unwrap_s: float,
    fork_at: float | None,
    sent_at: float,
    started: float,
) -> ResultTable:
    """The child's result with the parent's timings added: ``fork`` (a cold sandbox: from the fork to
    the child's first line) and ``handoff`` (from sending the job to the child reading it; a warm
    sandbox still warming up when its job came counts the rest of its warm-up here)."""
    raw_timings = header.get("timings")
    timings = {str(k): float(v) for k, v in raw_timings.items()} if isinstance(raw_timings, dict) else {}
    child_start = header.get("started_at")
    if fork_at is not None and isinstance(child_start, int | float):
        timings["fork"] = max(0.0, float(child_start) - fork_at)
    received = header.get("received_at")
    if isinstance(received, int | float):
        timings["handoff"] = max(0.0, float(received) - sent_at)
    timings["unwrap"] = unwrap_s
    timings["total"] = time.perf_counter() - started
    raw_engine = header.get("engine")
    engine = {str(k): str(v) for k, v in raw_engine.items()} if isinstance(raw_engine, dict) else {}
    engine["sandbox"] = "local-fork (warm)" if header.get("warm") is True else "local-fork"
    engine["network"] = str(header.get("network", "unknown"))
    engine["walls"] = str(header.get("walls", "unknown"))
    engine["isolation"] = str(header.get("isolation", "unknown"))
    row_count = header.get("row_count")
    return ResultTable(
        arrow_ipc=ipc,
        row_count=int(row_count) if isinstance(row_count, int) else 0,
        timings=timings,
        engine=engine,
    )


def _memory_backed_tmp() -> Path | None:
    """A RAM-backed directory for the jobs' private temp dirs when there is one (nothing lands on disk)."""
    shm = Path("/dev/shm")  # noqa: S108 - a tmpfs by design; private subdirectories are made with mkdtemp
    return shm if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None
