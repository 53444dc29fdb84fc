"""``RayExecutor``: jobs as Ray tasks on the nodes of the data's domain, each in a forked sandbox.

The only module of the project that imports Ray. Ray places and retries the work; it does not isolate
it. Every task runs the same hardened sandbox process as the local backend (``LocalExecutor`` inside the
Ray worker: fork from a warm fork server, limits, timeout, locked-down DuckDB, no plaintext on disk), so
job code never runs in the long-lived Ray worker itself.

**Placement.** Every task asks for a sliver of the custom resource ``domain:<name>`` of the data it
reads, so Ray schedules it only on nodes started with that resource. The data keys are unwrapped on the
node with the node's own key provider (a :class:`~executors.ray_cluster.KeySource` recipe travels, never
key material), so a node can only read the domains whose keys its keyring holds.

**Two phases.** A dataset version is stored as unit-partitioned parts. When the query splits
(:func:`policies.distributed.split_query`) and its tables are parts of one version, one task per part
computes partial aggregates and a final task, on a node of the same domain, merges them exactly. The
partials cross the cluster sealed under a fresh key wrapped with the domain's key, so neither the
driver nor a node of another domain can read them. Otherwise the job is one task over all parts.

**Faults.** A task whose worker process or node dies is retried (``retries`` times) on any node of the
domain: tasks only read, so a retry is safe, and nothing is released until every part and the merge
have succeeded. Errors inside the sandbox (timeout, memory, CPU, engine, integrity) are not retried.
Cancelling a job force-kills its tasks' Ray workers; the sandbox processes die with them (their fork
server exits with its Ray worker and each sandbox has a parent-death signal).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa
import ray
import ray.exceptions
from opentelemetry.trace import Tracer

from crypto.envelope import new_data_key, seal, unseal
from crypto.errors import CryptoError, IntegrityError
from crypto.keyring import KeyProvider
from executors.base import JobSpec, ResultTable, TableInput
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
from executors.local import LocalExecutor
from executors.ray_cluster import DOMAIN_SHARE, KeySource, NodeKeyring, domain_resource
from executors.tracing import current_trace_context, job_span, record_timings
from policies.distributed import SplitQuery, split_query

# Added to a job's own wall-clock limit for scheduling and for a cold fork server on a fresh worker.
SCHEDULING_GRACE_S = 30.0
POLL_S = 0.1


@dataclass(frozen=True)
class RayJobStatus:
    """Where a job is: ``submitted``, ``waiting`` (no alive node serves its domain yet), ``running``
    (its tasks are queued on or running in the nodes of its domain) or ``merging``."""

    state: str
    detail: str


@dataclass(frozen=True)
class _Outcome:
    """What a task reports to the driver besides its (possibly sealed) Arrow bytes: no data values."""

    node_id: str
    code: str = ""
    detail: str = ""
    row_count: int = 0
    timings: Mapping[str, float] = field(default_factory=dict)
    engine: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _SealedPartial:
    """A part's partial aggregates, sealed under a fresh key wrapped by the domain's key."""

    wrapped_key: bytes
    blob: bytes


@dataclass
class _Job:
    """Driver-side book-keeping of one job (guarded by the executor's lock)."""

    domains: tuple[str, ...] = ()
    refs: list[Any] = field(default_factory=list)
    cancelled: bool = False
    status: RayJobStatus = field(
        default_factory=lambda: RayJobStatus("submitted", "accepted by the executor")
    )


# -- what runs on the worker node ----------------------------------------------------------------------


def _partial_aad(job_id: str, index: int) -> bytes:
    return f"partial/{job_id}/{index}".encode()


def _read_ipc(data: bytes) -> pa.Table:
    with pa.ipc.open_stream(data) as reader:
        return reader.read_all()


def _write_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _open_partials(
    provider: KeyProvider, domain: str, job_id: str, partials: Sequence[_SealedPartial]
) -> bytes:
    tables = []
    for index, partial in enumerate(partials):
        aad = _partial_aad(job_id, index)
        try:
            key = provider.unwrap(domain, partial.wrapped_key, aad=aad)
            tables.append(_read_ipc(unseal(key, partial.blob, aad=aad)))
        except IntegrityError as exc:
            raise PartIntegrityError(f"the partial result of part {index} failed authentication") from exc
        except CryptoError as exc:
            raise DataUnavailable(
                f"the partial result of part {index} cannot be opened: {exc.detail}"
            ) from exc
    return _write_ipc(pa.concat_tables(tables, promote_options="permissive"))


def _node_task(
    spec: JobSpec,
    key_source: KeySource,
    seal_as: tuple[str, int] | None,
    merge: tuple[str, str] | None,
    *partials: _SealedPartial,
) -> tuple[_Outcome, bytes | _SealedPartial]:
    """One task on a node of the job's domain: open the node's key provider, run the job in a forked
    sandbox, and report. ``seal_as=(domain, index)`` seals the result as partial ``index``;
    ``merge=(domain, table)`` opens the sealed ``partials`` and hands them to the sandbox as ``table``.
    Never raises for a job failure: the outcome carries the error's code and detail."""
    node_id = ray.get_runtime_context().get_node_id()
    job_id = spec.job_id.split("#", 1)[0]
    try:
        provider = key_source.open()
        arrow_tables = {}
        if merge is not None:
            domain, table = merge
            arrow_tables[table] = _open_partials(provider, domain, job_id, partials)
        # LocalExecutor forks lean children (executors.forking): they do not re-run the Ray worker's
        # entry script, which would import all of Ray in every sandbox.
        executor = LocalExecutor(key_provider=provider, max_workers=1)
        try:
            result = executor.run(spec, arrow_tables=arrow_tables)
        finally:
            executor.close()
    except ExecutionError as exc:
        return _Outcome(node_id=node_id, code=exc.code, detail=exc.detail), b""
    except CryptoError as exc:
        return _Outcome(node_id=node_id, code=DataUnavailable.code, detail=exc.detail), b""
    outcome = _Outcome(
        node_id=node_id, row_count=result.row_count, timings=dict(result.timings), engine=dict(result.engine)
    )
    if seal_as is None:
        return outcome, result.arrow_ipc
    domain, index = seal_as
    key = new_data_key()
    aad = _partial_aad(job_id, index)
    sealed = _SealedPartial(
        wrapped_key=provider.wrap(domain, key, aad=aad), blob=seal(key, result.arrow_ipc, aad=aad)
    )
    return outcome, sealed


_remote_node_task = ray.remote(_node_task)


# -- the driver ----------------------------------------------------------------------------------------


class RayExecutor:
    """The scale-out executor (``Executor`` protocol) on a Ray cluster.

    ``address``: an existing cluster (``"10.0.0.1:6379"``); ``None`` uses the Ray connection this
    process already has, or starts a local cluster with ``local_cpus`` CPUs, serving ``local_domains``,
    with ``object_store_mb`` of object store. ``key_sources``: per domain, where its nodes find their
    keys (default: the node's own keyring, :class:`~executors.ray_cluster.NodeKeyring`). ``timeout_s``:
    how long a job may wait for a node of its domain and run, in all; default its own limit plus a
    scheduling grace. ``retries``: how often a task whose worker or node died is run again.
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        key_sources: Mapping[str, KeySource] | None = None,
        default_key_source: KeySource | None = None,
        timeout_s: float | None = None,
        retries: int = 1,
        local_cpus: int | None = None,
        local_domains: Sequence[str] = (),
        object_store_mb: int | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        if retries < 0:
            raise ExecutionFailed(f"retries must be at least 0, got {retries}")
        self._key_sources = dict(key_sources or {})
        self._default_source: KeySource = default_key_source or NodeKeyring()
        self._timeout_s = timeout_s
        self._retries = retries
        self._tracer = tracer
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._closed = False
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            if address is not None:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(
                    num_cpus=local_cpus,
                    resources={domain_resource(d): 1 for d in local_domains},
                    object_store_memory=object_store_mb * 2**20 if object_store_mb else None,
                    include_dashboard=False,
                    log_to_driver=False,
                )

    # -- the Executor protocol ---------------------------------------------------------------------

    def run(self, spec: JobSpec) -> ResultTable:
        with job_span(self._tracer, spec, "executor.run", attributes={"sandbox.executor": "ray"}) as span:
            # The nodes' spans (their LocalExecutor's) continue this span: the spec carries it there.
            result = self._run(replace(spec, trace_context=current_trace_context()))
            record_timings(span, result.timings)
            return result

    def readiness(self) -> str | None:
        """None when the cluster is connected and has a node with CPUs, else why not."""
        with self._lock:
            if self._closed:
                return "the Ray executor is closed"
        if not ray.is_initialized():
            return "not connected to a Ray cluster"
        try:
            cpus = _alive_resources().get("CPU", 0.0)
        except Exception as exc:  # the cluster's own error, whatever it is: not ready
            return f"the Ray cluster does not answer ({type(exc).__name__})"
        return None if cpus > 0 else "no Ray node with CPUs is alive"

    def trace_with(self, tracer: Tracer) -> None:
        """Send the gateway side's spans to ``tracer`` from now on (nodes use their own tracing)."""
        self._tracer = tracer

    def _run(self, spec: JobSpec) -> ResultTable:
        started = time.perf_counter()
        job = self._register(spec.job_id)
        try:
            limit = (
                self._timeout_s if self._timeout_s is not None else spec.limits.timeout_s + SCHEDULING_GRACE_S
            )
            deadline = time.monotonic() + limit
            domains = sorted({table.domain for table in spec.tables})
            resources = {domain_resource(d): DOMAIN_SHARE for d in domains}
            source = self._source_for(spec.job_id, domains)
            with self._lock:
                job.domains = tuple(domains)
            self._wait_for_nodes(spec.job_id, job, domains, deadline=deadline, limit=limit)
            plan = _plan(spec)
            if isinstance(plan, SplitQuery):
                outcome, ipc, parts = self._run_split(
                    spec, plan, job, source, resources, deadline, domains[0]
                )
            else:
                self._set_status(job, "running", "one task over all parts")
                submitted = [self._submit(spec, source, resources)]
                ((outcome, ipc),) = self._gather(spec.job_id, job, submitted, deadline)
                parts = [outcome]
            return _result(outcome, ipc, parts, started=started)
        finally:
            with self._lock:
                self._jobs.pop(spec.job_id, None)

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.cancelled:
                return False
            job.cancelled = True
            refs = list(job.refs)
        _cancel(refs)
        return True

    def close(self) -> None:
        with self._lock:
            self._closed = True
            job_ids = list(self._jobs)
        for job_id in job_ids:
            self.cancel(job_id)
        deadline = time.monotonic() + 30
        while self._jobs and time.monotonic() < deadline:
            time.sleep(POLL_S)
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()

    def status(self, job_id: str) -> RayJobStatus | None:
        """Where ``job_id`` is now, or ``None`` when this executor is not running it."""
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else job.status

    # -- steps -------------------------------------------------------------------------------------

    def _register(self, job_id: str) -> _Job:
        with self._lock:
            if self._closed:
                raise ExecutionCancelled(f"job {job_id} cannot start: the executor is closed")
            if job_id in self._jobs:
                raise ExecutionFailed(f"job {job_id} is already running on this executor")
            job = _Job()
            self._jobs[job_id] = job
            return job

    def _source_for(self, job_id: str, domains: Sequence[str]) -> KeySource:
        sources = {self._key_sources.get(d, self._default_source) for d in domains}
        if len(sources) > 1:
            raise ExecutionFailed(f"job {job_id} reads domains whose nodes find their keys differently")
        return sources.pop() if sources else self._default_source

    def _set_status(self, job: _Job, state: str, detail: str) -> None:
        with self._lock:
            job.status = RayJobStatus(state, detail)

    def _check_cancelled(self, job_id: str, job: _Job) -> None:
        with self._lock:
            if job.cancelled:
                raise ExecutionCancelled(f"job {job_id} was cancelled")

    def _wait_for_nodes(
        self, job_id: str, job: _Job, domains: Sequence[str], *, deadline: float, limit: float
    ) -> None:
        while True:
            self._check_cancelled(job_id, job)
            alive = _alive_resources()
            missing = [d for d in domains if alive.get(domain_resource(d), 0) <= 0]
            if not missing:
                return
            waiting = ", ".join(repr(d) for d in missing)
            self._set_status(job, "waiting", f"waiting for a node of domain {waiting} to join the cluster")
            if time.monotonic() >= deadline:
                raise ExecutionTimeout(
                    f"job {job_id} waited {limit:g} s for a node serving domain {waiting}; no such node is "
                    "alive in the cluster, so its data cannot be read anywhere"
                )
            time.sleep(POLL_S)

    def _submit(
        self,
        spec: JobSpec,
        source: KeySource,
        resources: Mapping[str, float],
        *,
        seal_as: tuple[str, int] | None = None,
        merge: tuple[str, str] | None = None,
        partials: Sequence[Any] = (),
    ) -> tuple[Any, Any]:
        task = _remote_node_task.options(
            num_cpus=1,
            num_returns=2,
            resources=dict(resources),
            max_retries=self._retries,
            retry_exceptions=False,
            name=spec.job_id,
            # Part tasks are equal shares of one job: spread them over the domain's nodes. By default
            # Ray queues them where it first leased, and a second node sat partly idle (measured with
            # two one-CPU nodes: 0.76 of linear scaling by default, 0.87-0.90 spread).
            scheduling_strategy="SPREAD" if seal_as is not None else "DEFAULT",
        )
        refs: Any = task.remote(spec, source, seal_as, merge, *partials)  # two refs: num_returns=2
        return refs[0], refs[1]

    def _run_split(
        self,
        spec: JobSpec,
        plan: SplitQuery,
        job: _Job,
        source: KeySource,
        resources: Mapping[str, float],
        deadline: float,
        domain: str,
    ) -> tuple[_Outcome, bytes, list[_Outcome]]:
        n_parts = len(spec.tables[0].parts)
        self._set_status(job, "running", f"{n_parts} part tasks")
        submitted = [
            self._submit(_part_spec(spec, plan, i), source, resources, seal_as=(domain, i))
            for i in range(n_parts)
        ]
        gathered = self._gather(spec.job_id, job, submitted, deadline, keep_data_remote=True)
        parts = [outcome for outcome, _ in gathered]
        self._set_status(job, "merging", f"merging {n_parts} partial results")
        # The merge reads only the partial results: the statement's parameters (a DP sampling key) were
        # for the part queries, and DuckDB refuses a parameter a statement does not use.
        merge_spec = replace(
            spec,
            job_id=f"{spec.job_id}#merge",
            sql=plan.final_sql,
            tables=(),
            parameters=None,
            small_groups_sql=None,  # counted over the whole data only: a split job's count is not kept
        )
        merged = self._submit(
            merge_spec,
            source,
            resources,
            merge=(domain, plan.partials_table),
            partials=[data_ref for _, data_ref in submitted],
        )
        ((outcome, ipc),) = self._gather(spec.job_id, job, [merged], deadline)
        return outcome, ipc, [*parts, outcome]

    def _gather(
        self,
        job_id: str,
        job: _Job,
        submitted: Sequence[tuple[Any, Any]],
        deadline: float,
        *,
        keep_data_remote: bool = False,
    ) -> list[tuple[_Outcome, Any]]:
        """Wait for every task's outcome; the first failure cancels the tasks still running and raises.

        Only tasks that have not answered are ever cancelled: force-cancelling a task that has just
        completed trips an internal check in Ray 2.60 that aborts the whole driver process.
        """
        with self._lock:
            job.refs.extend(ref for ref, _ in submitted)
            cancelled = job.cancelled
        pending = [ref for ref, _ in submitted]
        outcomes: dict[Any, _Outcome] = {}
        try:
            if cancelled:
                raise ExecutionCancelled(f"job {job_id} was cancelled")
            while pending:
                self._check_cancelled(job_id, job)
                if time.monotonic() >= deadline:
                    raise self._overdue(job_id, job)
                ready, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_S, fetch_local=True)
                with self._lock:
                    job.refs = [ref for ref in job.refs if ref not in ready]
                for ref in ready:
                    outcome = _fetch_outcome(job_id, ref)
                    if outcome.code:
                        raise BY_CODE.get(outcome.code, ExecutionFailed)(outcome.detail)
                    outcomes[ref] = outcome
        except BaseException:
            with self._lock:
                job.refs = [ref for ref in job.refs if ref not in pending]
            _cancel(pending)
            raise
        if keep_data_remote:
            return [(outcomes[ref], data_ref) for ref, data_ref in submitted]
        return [(outcomes[ref], _fetch_ipc(job_id, data_ref)) for ref, data_ref in submitted]

    def _overdue(self, job_id: str, job: _Job) -> ExecutionError:
        with self._lock:
            status, domains = job.status, job.domains
        alive = _alive_resources()
        gone = [repr(d) for d in domains if alive.get(domain_resource(d), 0) <= 0]
        detail = f"job {job_id} did not finish within its time limit ({status.state}: {status.detail})"
        if gone:
            detail += f"; no node of domain {', '.join(gone)} is alive any more"
        return ExecutionTimeout(detail)


# -- helpers -------------------------------------------------------------------------------------------


def _cancel(refs: Sequence[Any]) -> None:
    """Force-cancel the tasks of ``refs`` that have not answered yet (see ``RayExecutor._gather``)."""
    if not refs:
        return
    done, running = ray.wait(list(refs), num_returns=len(refs), timeout=0, fetch_local=False)
    del done
    for ref in running:
        with contextlib.suppress(ray.exceptions.RayError, ValueError, TypeError):
            ray.cancel(ref, force=True)


def _plan(spec: JobSpec) -> SplitQuery | None:
    """Split only when every table is one and the same version (co-partitioned by construction) with
    a known unit and more than one part; otherwise one task over all parts."""
    tables = spec.tables
    if (
        spec.python_or_mock is not None or spec.party is not None
    ):  # Python/mock jobs and party rounds run whole
        return None
    if not tables or any(t.unit is None or t.part_indices for t in tables):
        return None
    versions = {(t.domain, t.dataset, t.version_id, len(t.parts)) for t in tables}
    if len(versions) != 1 or len(tables[0].parts) < 2:
        return None
    plan = split_query(
        spec.sql,
        units={t.sql_name: t.unit for t in tables if t.unit is not None},
        column_types={t.sql_name: dict(t.column_types) for t in tables if t.column_types},
    )
    return plan if isinstance(plan, SplitQuery) else None


def _part_spec(spec: JobSpec, plan: SplitQuery, index: int) -> JobSpec:
    tables: tuple[TableInput, ...] = tuple(
        replace(t, parts=(t.parts[index],), part_indices=(index,)) for t in spec.tables
    )
    # One engine thread per part task: the parallelism comes from the tasks.
    limits = replace(spec.limits, threads=1)
    return replace(
        spec,
        job_id=f"{spec.job_id}#part-{index}",
        sql=plan.partial_sql,
        tables=tables,
        limits=limits,
        small_groups_sql=None,
    )


def _alive_resources() -> Mapping[str, float]:
    """The total resources of the nodes alive now (domain resources included)."""
    resources: Mapping[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return resources


def _fetch_outcome(job_id: str, ref: Any) -> _Outcome:
    try:
        outcome = ray.get(ref)
    except ray.exceptions.RayError as exc:
        raise _ray_error(job_id, exc) from exc
    if not isinstance(outcome, _Outcome):
        raise ExecutionFailed(f"job {job_id}: a task answered something that is not an outcome")
    return outcome


def _fetch_ipc(job_id: str, ref: Any) -> bytes:
    try:
        data = ray.get(ref)
    except ray.exceptions.RayError as exc:
        raise _ray_error(job_id, exc) from exc
    if not isinstance(data, bytes):
        raise ExecutionFailed(f"job {job_id}: a task answered something that is not an Arrow stream")
    return data


def _ray_error(job_id: str, exc: ray.exceptions.RayError) -> ExecutionError:
    """A Ray failure as one of ours; only the class names travel, never a message that could quote data."""
    if isinstance(exc, ray.exceptions.TaskCancelledError):
        return ExecutionCancelled(f"job {job_id} was cancelled")
    if isinstance(exc, ray.exceptions.OutOfMemoryError):
        return ResourceExhausted(
            f"job {job_id} was stopped by Ray's memory monitor: its node ran out of memory"
        )
    if isinstance(exc, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError):
        return ExecutionFailed(
            f"job {job_id} lost its Ray worker or node ({type(exc).__name__}) and every retry failed too"
        )
    if isinstance(exc, ray.exceptions.ObjectLostError | ray.exceptions.OwnerDiedError):
        return ExecutionFailed(f"job {job_id} lost an intermediate result ({type(exc).__name__})")
    return ExecutionFailed(f"job {job_id} failed in Ray ({type(exc).__name__})")


def _result(outcome: _Outcome, ipc: bytes, parts: Sequence[_Outcome], *, started: float) -> ResultTable:
    timings: dict[str, float] = {}
    # Part tasks run side by side: each phase's cost is its slowest task (the critical path).
    for part in parts:
        for name, value in part.timings.items():
            timings[name] = max(timings.get(name, 0.0), float(value))
    timings["tasks"] = float(len(parts))
    timings["total"] = time.perf_counter() - started
    engine = dict(outcome.engine)
    engine["sandbox"] = "ray+local-fork"
    engine["ray"] = ray.__version__
    engine["ray_nodes"] = ",".join(sorted({p.node_id for p in parts}))
    return ResultTable(arrow_ipc=ipc, row_count=outcome.row_count, timings=timings, engine=engine)
