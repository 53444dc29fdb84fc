"""The executor contract: what a job needs (``JobSpec``), what it returns (``ResultTable``), and the
``Executor`` protocol every backend (local fork server, Ray) implements.

These are plain frozen dataclasses so that a spec can cross a process boundary unchanged and a result
can be compared and hashed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

from policies.cohorts.sketch import SketchRequest

if TYPE_CHECKING:
    import pandas

    from executors.crossdomain.job import CrossDomainJob, PartyRound
    from executors.python_job import PythonOrMockJob


@dataclass(frozen=True)
class PartRef:
    """One encrypted Parquet part on disk.

    ``path`` is absolute; ``aad`` is the associated data the part was sealed with
    (``f"{domain}/{dataset}/{version_id}/{table}/{index}"``). ``fd``, set only inside a sandbox, is a
    file descriptor the parent opened on ``path`` and passed through the pipe: the sandbox's walls hide
    the data directory, so it reads its parts from the descriptors it was handed and from nothing else.
    """

    path: str
    aad: bytes
    fd: int | None = None


@dataclass(frozen=True)
class TableInput:
    """One table of one dataset version, as a job reads it.

    ``unit`` names the privacy-unit column when the caller knows it (a scale-out backend needs it to
    split a query per part). ``part_indices`` is set only when ``parts`` is a subset of the version's
    parts (one task per part): the index of each listed part in the full layout, so that each part is
    still checked against the associated data of its own place. Empty means ``parts`` is the whole
    layout in order. ``columns`` are the names the query may read (case-insensitive, a superset is
    fine, a name the table lacks is skipped): the sandbox decrypts every part but parses only those
    columns. ``None`` loads every column; ``executors.columns.with_projection`` fills it from the SQL.
    ``column_types`` are the declared (name, DuckDB type) pairs where the caller knows them: a split job
    then merges its float sums exactly (``policies.distributed.split_query``).
    """

    sql_name: str
    domain: str
    dataset: str
    version_id: str
    table: str
    wrapped_key: bytes
    key_aad: bytes
    parts: tuple[PartRef, ...]
    unit: str | None = None
    part_indices: tuple[int, ...] = ()
    columns: tuple[str, ...] | None = None
    column_types: tuple[tuple[str, str], ...] = ()
    #: For a cross-domain round under the released-cohort ledger: the dataset's ledger key, wrapped
    #: under the domain's KEK with ``ledger_key_aad`` (empty: the lineage keys come from the version's
    #: data key, as for jobs stored before dataset ledger keys existed).
    ledger_key: bytes = field(default=b"", repr=False)


def ledger_key_aad(dataset: str) -> bytes:
    """What a dataset's ledger key is wrapped with (``domain/name``): bound to that dataset, unlike
    any version's data key.

    >>> ledger_key_aad("health-bureau/visits")
    b'xd-ledger-key:health-bureau/visits'
    """
    return b"xd-ledger-key:" + dataset.encode("utf-8")


@dataclass(frozen=True)
class Limits:
    """Per-job limits. ``memory_mb`` is the engine's memory limit; the address-space rlimit is only a
    generous backstop above it (DuckDB crashes instead of failing cleanly under a tight one)."""

    timeout_s: float = 60.0
    memory_mb: int = 2048
    cpu_s: int = 120
    threads: int = 2
    open_files: int = 256


@dataclass(frozen=True)
class JobSpec:
    """Everything one job needs. ``sql`` is the already rewritten query; ``keyed_hash_key`` is the
    scope's pseudonym key, set when the query calls ``sbx_keyed_hash``."""

    job_id: str
    sql: str
    tables: tuple[TableInput, ...]
    keyed_hash_key: bytes | None
    limits: Limits = field(default_factory=Limits)
    # A Python job or a job on mock twins (``executors.python_job``); None for a rewritten SQL query.
    python_or_mock: PythonOrMockJob | None = None
    # The released-cohort ledger's element secret and sketch size (``executors.cohort_sketches``);
    # None: the hidden unit lists are dropped in the sandbox and no sketch comes back.
    cohorts: SketchRequest | None = None
    # Named parameters the statement uses (``{"sbx_dp_key": …}`` for a differentially private query's
    # keyed sample); None when it uses none (the engine refuses a parameter the statement lacks).
    parameters: Mapping[str, str] | None = None
    # A cross-domain job (``executors.crossdomain.placed.run_cross_domain`` runs it as rounds, each of
    # one domain's tables only); None for every other job.
    cross_domain: CrossDomainJob | None = None
    # One round of one domain's party in a cross-domain job (``executors.crossdomain.rounds``).
    party: PartyRound | None = None
    # The W3C trace context (``traceparent``) of the span that asked for this job, so that the executor's
    # spans join the job's trace wherever it runs (``executors.tracing``); None: not traced.
    trace_context: Mapping[str, str] | None = None
    # The audit count of groups the k rule removes (``policies.small_groups``): a statement over the same
    # tables that returns one number, run after ``sql`` in the same sandbox; None: not counted.
    small_groups_sql: str | None = None


#: Schema metadata key of a SQL result: how many groups the k rule removed (``JobSpec.small_groups_sql``).
GROUPS_BELOW_K = b"sbx_groups_below_k"


@dataclass(frozen=True)
class ResultTable:
    """The job's output: an Arrow IPC stream (aggregate rows with their ``_sbx_*`` unit counts), its
    row count, where the time went (seconds), and the versions of what computed it."""

    arrow_ipc: bytes
    row_count: int
    timings: Mapping[str, float]
    engine: Mapping[str, str]
    #: A cross-domain job's parts, one per domain (what ran where, on which inputs, what it sent), for
    #: the audit log; empty for every other job.
    parts: tuple[Mapping[str, object], ...] = ()

    def to_arrow(self) -> pa.Table:
        with pa.ipc.open_stream(self.arrow_ipc) as reader:
            return reader.read_all()

    def to_pandas(self) -> pandas.DataFrame:
        frame: pandas.DataFrame = self.to_arrow().to_pandas()
        return frame

    @property
    def groups_below_k(self) -> int | None:
        """How many groups the k rule removed inside the sandbox (for auditors only; never shown to the
        operator), or None where it was not counted (no ``small_groups_sql``, a split job)."""
        with pa.ipc.open_stream(self.arrow_ipc) as reader:
            value = (reader.schema.metadata or {}).get(GROUPS_BELOW_K)
        return None if value is None else int(value)


@dataclass(frozen=True)
class VersionLayout(Mapping[str, tuple[PartRef, ...]]):
    """Where ``write_version`` put a version: ``{table: parts}`` plus each table's row count."""

    version_id: str
    parts: Mapping[str, tuple[PartRef, ...]]
    row_counts: Mapping[str, int]

    def __getitem__(self, table: str) -> tuple[PartRef, ...]:
        return self.parts[table]

    def __iter__(self) -> Iterator[str]:
        return iter(self.parts)

    def __len__(self) -> int:
        return len(self.parts)


class Executor(Protocol):
    """A backend that runs one job at a time per call, in a fresh sandboxed process."""

    def run(self, spec: JobSpec) -> ResultTable:
        """Blocking; raises ``ExecutionError`` subclasses."""
        ...

    def cancel(self, job_id: str) -> bool:
        """True if the job was waiting or running and is now stopped."""
        ...

    def close(self) -> None:
        """Stop every running job and release the backend's processes."""
        ...
