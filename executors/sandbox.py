"""What runs inside a job's sandbox process (forked from the warm fork server).

Order of events in the child, each step for a reason:

1. its own process group, so the parent can kill everything the job started at once; every inherited
   descriptor closed but its pipe, the standard streams on /dev/null;
2. die with the fork server (``PR_SET_PDEATHSIG``), not dumpable (no core file, no ptrace);
3. the walls (``executors.walls.raise_walls``): network, mount and identity namespaces, an unprivileged
   uid, no new privileges, Landlock, the seccomp filter; under ``strict`` isolation a wall that cannot
   be raised ends the sandbox with ``SandboxWallDown`` before it is given anything;
4. an empty environment (the block inherited from the fork server zeroed, see ``walls.environment``),
   ``TMPDIR``, ``HOME`` and the working directory set to the private directory;
5. a *warm* sandbox (started before its job is known) now opens its engine and walks a job's path once
   over synthetic data (``warmup.warm_sandbox``); it holds no key and no data until step 7;
6. it says ``ready``: the parent sends a job only to a sandbox whose walls are up;
7. receive the spec, the plaintext data keys and one open file descriptor per encrypted part through the
   pipe (never disk, never arguments; the data directory itself does not exist behind the walls);
8. resource limits: CPU seconds (counted from the job's arrival), open files, no core files, no
   regular-file writes, and an address-space backstop well above the engine's own memory limit (a tight
   ``RLIMIT_AS`` crashes DuckDB instead of failing cleanly);
9. decrypt, load, query in memory; send back a JSON header (with the walls that held) and the Arrow
   IPC bytes.

A sandbox serves exactly one job, warm or not, and exits.

The child never sends pickles back: the parent only parses JSON and Arrow from it, so a compromised
child cannot run code in the parent. Error details are our own sentences (``engine.sanitize``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import pickle
import resource
import signal
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from multiprocessing import reduction
from multiprocessing.connection import Connection
from pathlib import Path

import duckdb
import pyarrow as pa

from executors import cohort_sketches, contribution_summaries, engine, python_job, storage, warmup
from executors.base import GROUPS_BELOW_K, JobSpec, Limits
from executors.crossdomain.rounds import run_round
from executors.errors import ExecutionError, ExecutionFailed, ResourceExhausted
from executors.walls import WallPlan, WallReport, environment, raise_walls

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
# File descriptors per SCM_RIGHTS message (the kernel's SCM_MAX_FD is 253).
FDS_PER_MESSAGE = 200
AS_HEADROOM_MB = 2048  # thread stacks, allocator arenas and the loaded Arrow tables above the engine limit
READY = b'{"status": "ready"}'  # what a sandbox says once its walls are up and it waits for its job


@dataclass(frozen=True)
class Payload:
    """What the parent sends through the pipe: the job and one plaintext data key per table.

    ``arrow_tables`` are further in-memory inputs as ``(sql_name, Arrow IPC stream)`` pairs: the
    partial aggregates a distributed job merges in a sandbox of its domain (never decrypted parts).
    """

    spec: JobSpec
    data_keys: tuple[bytes, ...]
    arrow_tables: tuple[tuple[str, bytes], ...] = ()
    #: A cross-domain round under the ledger: its dataset's ledger key (``TableInput.ledger_key``).
    lineage_secret: bytes = field(default=b"", repr=False)


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _harden_process(libc: ctypes.CDLL | None) -> None:
    os.setpgrp()
    if libc is None:
        return
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def network_state(report: WallReport) -> str:
    """How the sandbox reaches the network, for the result: never silently the shared network.

    >>> from executors.walls import Isolation
    >>> network_state(WallReport(Isolation.STRICT, held=("network", "mount")))
    'isolated'
    >>> network_state(WallReport(Isolation.RELAXED, held=(), missing=(("network", "unshare: EPERM"),)))
    'shared (relaxed isolation: unshare: EPERM)'
    """
    if "network" in report.held:
        return "isolated"
    reasons = [reason for wall, reason in report.missing if wall == "network"]
    return f"shared ({report.isolation.value} isolation{': ' + reasons[0] if reasons else ''})"


def send_part_fds(conn: Connection, fds: list[int]) -> None:
    """Hand ``fds`` (one per encrypted part, in spec order) to the sandbox over its Unix-socket pipe."""
    with socket.socket(fileno=os.dup(conn.fileno())) as sock:
        for start in range(0, len(fds), FDS_PER_MESSAGE):
            reduction.sendfds(sock, fds[start : start + FDS_PER_MESSAGE])


def receive_part_fds(conn: Connection, spec: JobSpec) -> JobSpec:
    """``spec`` with every part carrying the descriptor the parent sent for it (see ``PartRef.fd``)."""
    count = sum(len(table.parts) for table in spec.tables)
    fds: list[int] = []
    with socket.socket(fileno=os.dup(conn.fileno())) as sock:
        while len(fds) < count:
            fds.extend(reduction.recvfds(sock, min(FDS_PER_MESSAGE, count - len(fds))))
    handed = iter(fds)
    tables = tuple(
        replace(table, parts=tuple(replace(part, fd=next(handed)) for part in table.parts))
        for table in spec.tables
    )
    return replace(spec, tables=tables)


def _private_environment(tmpdir: str) -> None:
    os.environ.clear()
    os.environ.update({"TMPDIR": tmpdir, "HOME": tmpdir, "LC_ALL": "C.UTF-8"})
    os.chdir(tmpdir)
    os.umask(0o077)


@dataclass(frozen=True)
class Entered:
    """A process behind its walls: which walls held, and a descriptor on its own ``/proc/self/statm``
    opened before them (behind the walls of a gateway that is not root there is no ``/proc``)."""

    report: WallReport
    statm_fd: int

    def address_space_mb(self) -> int:
        pages = int(os.pread(self.statm_fd, 256, 0).split()[0])
        return pages * os.sysconf("SC_PAGE_SIZE") // 2**20


def address_space_limit_mb(limits: Limits, *, baseline_mb: int) -> int:
    """The ``RLIMIT_AS`` backstop: what the process maps already, twice the engine limit, and headroom.

    >>> address_space_limit_mb(Limits(memory_mb=1024), baseline_mb=1500)
    5596
    """
    return baseline_mb + 2 * limits.memory_mb + AS_HEADROOM_MB


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def apply_limits(limits: Limits, *, address_space_mb: int) -> None:
    """The job's resource limits; ``address_space_mb``: what the process maps now (``Entered``)."""
    # CPU time counts from here: a warm sandbox has already spent some on its warm-up.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = max(1, int(limits.cpu_s)) + int(usage.ru_utime + usage.ru_stime + 0.999)
    # Soft limit sends SIGXCPU, the hard one a second later SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a core file would be plaintext on disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # no regular file may be written at all
    space = address_space_limit_mb(limits, baseline_mb=address_space_mb) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (space, space))


def warm_engine() -> duckdb.DuckDBPyConnection | None:
    """A warm sandbox's engine, opened and walked once over synthetic data; None if that failed (the
    job then opens its own, as a cold sandbox does)."""
    engine.use_job_memory_pool()
    spare = None
    try:
        spare = engine.open_spare()
        warmup.warm_sandbox(spare)
    except Exception:  # warmth is an optimisation: the job must not fail for want of it
        if spare is not None:
            spare.close()
        return None
    return spare


def execute(
    payload: Payload, *, spare: duckdb.DuckDBPyConnection | None = None
) -> tuple[dict[str, object], bytes]:
    """Decrypt, load and query; the JSON-able header and the Arrow IPC bytes of the result.

    ``spare``: the warm sandbox's engine (consumed), or None to open one.
    """
    spec = payload.spec
    if spec.party is not None:  # one round of one domain's part of a cross-domain job
        if spare is not None:
            spare.close()
        return run_round(spec, payload.data_keys, lineage_secret=payload.lineage_secret)
    if spec.python_or_mock is not None:  # a Python job or a job on mock twins: same sandbox, other engine
        if spare is not None:
            spare.close()
        return python_job.run_python_or_mock(spec, payload.data_keys)
    timings: dict[str, float] = {}
    engine.use_job_memory_pool()  # measurably faster load and scan in a fresh child (see there)
    threads = spec.limits.threads
    started = time.perf_counter()
    blobs = [
        storage.decrypt_parts(table, key, threads=threads)
        for table, key in zip(spec.tables, payload.data_keys, strict=True)
    ]
    timings["decrypt"] = time.perf_counter() - started

    started = time.perf_counter()
    tables = {
        table.sql_name: storage.load_parts(parts, columns=table.columns, dictionaries=True, threads=threads)
        for table, parts in zip(spec.tables, blobs, strict=True)
    }
    del blobs
    for name, ipc in payload.arrow_tables:
        with pa.ipc.open_stream(ipc) as reader:
            tables[name] = reader.read_all()
    timings["load"] = time.perf_counter() - started

    started = time.perf_counter()
    result = engine.run_query(
        spec.sql,
        tables,
        keyed_hash_key=spec.keyed_hash_key,
        limits=spec.limits,
        spare=spare,
        parameters=spec.parameters,
    )
    below_k = _groups_below_k(spec, tables)
    timings["query"] = time.perf_counter() - started

    started = time.perf_counter()
    # The unit lists never leave the sandbox: sketched under the ledger's secret, or dropped.
    result = cohort_sketches.sketch_cohorts(result, spec.cohorts, threads=threads)
    # Likewise the (unit, value) lists of the dominance rules: only numbers per row leave.
    result = contribution_summaries.summarise_contributions(result)
    timings["sketch"] = time.perf_counter() - started
    if below_k is not None:
        # One number beside the rows, in the schema: the operator's view never reads it (the release
        # puts it in the auditors' record only, ``services/release.py``).
        result = result.replace_schema_metadata(
            {**(result.schema.metadata or {}), GROUPS_BELOW_K: str(below_k)}
        )

    started = time.perf_counter()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, result.schema) as writer:
        writer.write_table(result)
    ipc = sink.getvalue().to_pybytes()
    timings["serialize"] = time.perf_counter() - started
    header: dict[str, object] = {
        "status": "ok",
        "row_count": result.num_rows,
        "timings": timings,
        "engine": engine.engine_versions(),
    }
    return header, ipc


def _groups_below_k(spec: JobSpec, tables: Mapping[str, pa.Table]) -> int | None:
    """The audit count of groups the k rule removed (``policies.small_groups``): its statement over the
    same tables, or None without one. Only the count leaves. The job's result does not depend on it:
    a statement the engine refuses or cannot finish leaves the count out (None) rather than fail a
    job whose query ran (the operator cannot tell either way)."""
    if spec.small_groups_sql is None:
        return None
    try:
        counted = engine.run_query(
            spec.small_groups_sql,
            tables,
            keyed_hash_key=spec.keyed_hash_key,
            limits=spec.limits,
            parameters=spec.parameters,
        )
    except ExecutionError:
        return None
    value = counted.column(0)[0].as_py() if counted.num_rows else 0
    return int(value or 0)


def close_inherited(keep: int) -> None:
    """Close every descriptor the process inherited from the fork server but ``keep`` (its pipe), and
    point the standard streams at /dev/null: the gateway's log streams and the fork server's own pipes
    (its liveness pipe, the resource tracker's, which would take commands) are not the job's."""
    null = os.open("/dev/null", os.O_RDWR)
    for stream in (0, 1, 2):
        os.dup2(null, stream)
    os.close(null)
    for fd in {int(entry.name) for entry in Path("/proc/self/fd").iterdir()} - {0, 1, 2, keep}:
        with contextlib.suppress(OSError):  # the descriptor the listing itself used is closed already
            os.close(fd)


def enter_sandbox(tmpdir: str, plan: WallPlan, *, pipe: int) -> Entered:
    """Steps 1-4 of the module docstring: what every sandbox process does first, whatever it runs.
    ``pipe``: the descriptor of the pipe to the parent, the one inherited descriptor it keeps."""
    _harden_process(_libc())
    close_inherited(pipe)
    statm_fd = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
    environment.scrub()  # the block the fork server started with (already empty under local.PRELOAD)
    report = raise_walls(plan, jobdir=tmpdir)
    _private_environment(report.workdir)
    return Entered(report=report, statm_fd=statm_fd)


def child_main(conn: Connection, tmpdir: str, warm: bool = False, plan: WallPlan | None = None) -> None:
    """Entry point of the sandbox process; reports through ``conn`` and never raises.

    ``warm``: warm up before waiting for the job (see the module docstring, step 5). ``plan``: the walls
    to raise (default: every wall, strict).
    """
    started_at = time.monotonic()
    try:
        entered = enter_sandbox(tmpdir, plan or WallPlan(), pipe=conn.fileno())
        report = entered.report
        spare = warm_engine() if warm else None
        conn.send_bytes(READY)  # the parent hands a job only to a sandbox that said so
        try:
            message = conn.recv_bytes()
        except EOFError:
            return  # never given a job (the executor closed): nothing to report
        payload = pickle.loads(message)  # noqa: S301 - from our own parent, over a private pipe
        payload = replace(payload, spec=receive_part_fds(conn, payload.spec))
        received_at = time.monotonic()
        cpu_before = _cpu_seconds()
        apply_limits(payload.spec.limits, address_space_mb=entered.address_space_mb())
        header, ipc = execute(payload, spare=spare)
        header["started_at"] = started_at
        header["received_at"] = received_at
        header["warm"] = spare is not None
        header["network"] = network_state(report)
        header["walls"] = report.summary()
        timings = header.setdefault("timings", {})
        if isinstance(timings, dict):
            # The walls were raised before the job came (in a warm sandbox: before its warm-up). "cpu":
            # the CPU seconds the job itself used, for per-principal CPU quotas.
            timings.update({f"wall.{wall}": seconds for wall, seconds in report.seconds.items()})
            timings["cpu"] = _cpu_seconds() - cpu_before
        header["isolation"] = report.isolation.value
        conn.send_bytes(json.dumps(header).encode())
        conn.send_bytes(ipc)
    except BaseException as exc:
        with contextlib.suppress(OSError):  # the parent may be gone (cancelled, closed)
            conn.send_bytes(json.dumps(_error_header(exc)).encode())
    finally:
        conn.close()


def _error_header(exc: BaseException) -> dict[str, object]:
    error: ExecutionError
    if isinstance(exc, ExecutionError):
        error = exc
    elif isinstance(exc, MemoryError):
        error = ResourceExhausted("the job ran out of memory in its sandbox")
    elif isinstance(exc, OSError) and exc.errno == 24:  # EMFILE
        error = ResourceExhausted("the job ran out of open files")
    else:
        # The class only: an arbitrary exception's text may quote data.
        error = ExecutionFailed(f"the sandbox failed: {type(exc).__name__}")
    return {"status": "error", "code": error.code, "detail": error.detail}
