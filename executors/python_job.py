"""What a sandbox child runs instead of one rewritten SQL query: Python jobs, and jobs on mock twins.

A :class:`PythonOrMockJob` rides on ``JobSpec.python_or_mock`` and is executed by
:func:`execute_python_or_mock` inside the
same forked, hardened sandbox process as SQL jobs (limits, timeout and cancel unchanged). Steps:

1. the *source* tables: decrypted parts of the real version (real mode), or mock twins generated
   from the declared schema and a seed (mock mode: no data key ever reaches the child);
2. one SELECT per table (:class:`InputQuery`, built by the service from the scope with the policy
   engine's own mask expressions and row filters) on the locked-down DuckDB engine, so a Python job
   sees exactly what a SQL job could see: row filters applied, masks applied, denied columns absent;
3. the unit column and other join keys replaced by per-job pseudonyms (HMAC-SHA256 under a key
   derived for this job, so tokens cannot be linked across jobs);
4. the job: restricted Python (:func:`executors.pyjobs.run_python_job`) or, in mock mode, the
   operator's SQL as written (row-level output allowed: the data is synthetic).

The outcome travels back as Arrow IPC whose schema metadata says what it is (:data:`OUTCOME_KEY`):
``aggregate`` (a table from ``aggregate()`` with its ``_sbx_units`` columns, for the output check),
``withheld`` (an empty table; the object summary, printed output and disclosure report as JSON in
the metadata) or ``table`` (a mock SQL result). Plain data only: the parent never unpickles.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crypto.pseudonym import keyed_hasher
from executors import engine, storage
from executors.base import JobSpec
from executors.errors import ExecutionError, ExecutionFailed, ResourceExhausted
from executors.mock_twins import TableLike, mock_table
from executors.pyjobs import (
    AggregateOutput,
    DisclosureThresholds,
    PyJobError,
    PyJobResourceExhausted,
    PyLimits,
    WithheldOutput,
    run_python_job,
)
from executors.pyjobs_cohorts import sketch_aggregate_cohorts, stored_units
from policies.cohorts.sketch import SketchRequest

#: Schema-metadata keys of a Python or mock job's result.
OUTCOME_KEY = b"sbx.outcome"
REPORT_KEY = b"sbx.report"
PRINTED_KEY = b"sbx.printed"
WITHHELD_KEY = b"sbx.withheld"

Outcome = Literal["aggregate", "withheld", "table"]


@dataclass(frozen=True)
class InputQuery:
    """One table as the job sees it: ``sql`` reads the source table registered as ``name`` and returns
    the visible columns; ``pseudonymise`` lists the columns replaced by per-job pseudonyms."""

    name: str
    sql: str
    unit: str
    pseudonymise: tuple[str, ...] = ()
    # Columns a SQL job could group by (use group or plain): aggregate() releases automatically only
    # tables keyed by these, unmodified.
    group_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class MockSource:
    """A mock twin to generate as source table ``name`` (mock mode only)."""

    name: str
    table: TableLike  # a policies.TableSchema or an executors.mock_twins.MockTable
    n_rows: int
    seed: int


@dataclass(frozen=True)
class PythonOrMockJob:
    """What a Python or mock job runs. ``JobSpec.sql`` carries the operator's SQL for a mock SQL job."""

    kind: Literal["sql", "python"]
    mode: Literal["real", "mock"]
    inputs: tuple[InputQuery, ...]
    pseudonym_key: bytes
    code: str = ""
    modules: tuple[str, ...] = ()
    thresholds: DisclosureThresholds = field(default_factory=DisclosureThresholds)
    py_limits: PyLimits = field(default_factory=PyLimits)
    mock_sources: tuple[MockSource, ...] = ()
    #: Only to replay a job released under the disclosure rules before the current ones
    #: (``run_python_job``'s ``legacy_disclosure``).
    legacy_disclosure: bool = False


@dataclass(frozen=True)
class PythonOrMockResult:
    """A Python or mock job's outcome as the parent reads it back from a ``ResultTable``'s Arrow table."""

    outcome: Outcome
    table: pa.Table
    report: Mapping[str, object] | None = None  # disclosure report (aggregate or withheld)
    printed: Mapping[str, object] | None = None  # withheld print output of an aggregate job
    withheld: Mapping[str, object] | None = None  # WithheldOutput.to_dict() of a withheld job

    @classmethod
    def from_arrow(cls, table: pa.Table) -> PythonOrMockResult:
        meta = table.schema.metadata or {}
        outcome = meta.get(OUTCOME_KEY, b"table").decode()
        if outcome not in ("aggregate", "withheld", "table"):
            raise ExecutionFailed("the sandbox returned an outcome this service does not know")
        data = table.replace_schema_metadata(None)

        def read(key: bytes) -> Mapping[str, object] | None:
            raw = meta.get(key)
            if raw is None:
                return None
            value = json.loads(raw)
            return value if isinstance(value, dict) else None

        return cls(
            outcome=outcome,  # checked against the three names above
            table=data,
            report=read(REPORT_KEY),
            printed=read(PRINTED_KEY),
            withheld=read(WITHHELD_KEY),
        )


def run_python_or_mock(spec: JobSpec, data_keys: tuple[bytes, ...]) -> tuple[dict[str, object], bytes]:
    """What ``sandbox.execute`` returns for a Python or mock job: the JSON-able header and the Arrow IPC
    bytes."""
    timings: dict[str, float] = {}
    out = execute_python_or_mock(spec, data_keys, timings)
    started = time.perf_counter()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, out.schema) as writer:
        writer.write_table(out)
    ipc = sink.getvalue().to_pybytes()
    timings["serialize"] = time.perf_counter() - started
    versions = engine.engine_versions()
    if spec.python_or_mock is not None and spec.python_or_mock.kind == "python":
        versions["restricted_python"] = _restricted_python_version()
    header: dict[str, object] = {
        "status": "ok",
        "row_count": out.num_rows,
        "timings": timings,
        "engine": versions,
    }
    return header, ipc


def _restricted_python_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("RestrictedPython")
    except PackageNotFoundError:
        return "unknown"


def execute_python_or_mock(
    spec: JobSpec, data_keys: tuple[bytes, ...], timings: dict[str, float]
) -> pa.Table:
    """Run ``spec.python_or_mock`` in the current (sandbox) process; the outcome as an Arrow table."""
    job = spec.python_or_mock
    if job is None:
        raise ExecutionFailed("the job is not a Python or mock job")
    started = time.perf_counter()
    sources = _sources(spec, job, data_keys)
    timings["load"] = time.perf_counter() - started

    started = time.perf_counter()
    units: list[tuple[pa.Array, pa.Array]] = []
    frames = prepare_inputs(job, sources, keyed_hash_key=spec.keyed_hash_key, spec=spec, stored=units)
    del sources
    timings["inputs"] = time.perf_counter() - started

    started = time.perf_counter()
    if job.kind == "sql":
        arrow_inputs = {name: table for name, (table, _units) in frames.items()}
        result = engine.run_query(spec.sql, arrow_inputs, keyed_hash_key=None, limits=spec.limits)
        out = result.replace_schema_metadata({OUTCOME_KEY: b"table"})
    else:
        # Mock twins are synthetic: their cohorts mean nothing to the ledger.
        request = spec.cohorts if job.mode == "real" else None
        out = _run_python(job, frames, units=stored_units(units), cohorts=request)
    timings["query"] = time.perf_counter() - started
    return out


def _sources(spec: JobSpec, job: PythonOrMockJob, data_keys: tuple[bytes, ...]) -> dict[str, pa.Table]:
    if job.mode == "mock":
        if spec.tables or data_keys:
            raise ExecutionFailed("a mock job must not be given real data")
        return {s.name: mock_table(s.table, s.n_rows, s.seed) for s in job.mock_sources}
    tables: dict[str, pa.Table] = {}
    for table, key in zip(spec.tables, data_keys, strict=True):
        tables[table.sql_name] = storage.load_parts(storage.decrypt_parts(table, key))
    return tables


def prepare_inputs(
    job: PythonOrMockJob,
    sources: Mapping[str, pa.Table],
    *,
    keyed_hash_key: bytes | None,
    spec: JobSpec,
    stored: list[tuple[pa.Array, pa.Array]] | None = None,
) -> dict[str, tuple[pa.Table, frozenset[str]]]:
    """Each input query on the locked engine, then pseudonyms; ``{name: (table, unit pseudonyms)}``.
    ``stored``, when given, receives each table's (pseudonyms, unit values) columns (for the ledger)."""
    token = keyed_hasher(job.pseudonym_key)
    out: dict[str, tuple[pa.Table, frozenset[str]]] = {}
    for query in job.inputs:
        if query.name not in sources:
            raise ExecutionFailed(f"input table {query.name!r} was not loaded")
        table = engine.run_query(  # the job reads its rows in order: one thread keeps it every run
            query.sql,
            {query.name: sources[query.name]},
            keyed_hash_key=keyed_hash_key,
            limits=spec.limits,
            keep_row_order=True,
        )
        units: frozenset[str] = frozenset()
        for column in query.pseudonymise:
            index = table.schema.get_field_index(column)
            if index < 0:
                continue
            raw = table.column(index)
            tokens = pseudonymise(raw, token)
            if column == query.unit and stored is not None:
                stored.append((tokens, raw.combine_chunks()))
            table = table.set_column(index, pa.field(column, pa.string()), tokens)
            if column == query.unit:
                units = frozenset(str(v) for v in pc.unique(tokens).to_pylist() if v is not None)
        out[query.name] = (table, units)
    return out


def pseudonymise(values: pa.ChunkedArray | pa.Array, token: Callable[[str], str]) -> pa.Array:
    """Replace every value by its keyed hash (one HMAC per distinct value); missing stays missing.

    >>> from crypto.pseudonym import keyed_hasher
    >>> out = pseudonymise(pa.array([1, 1, None]), keyed_hasher(bytes(32))).to_pylist()
    >>> out[0] == out[1], out[2], len(out[0])
    (True, None, 32)
    """
    text = pc.cast(values, pa.string())
    encoded = pc.dictionary_encode(text)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    tokens = pa.array([None if v is None else token(v) for v in encoded.dictionary.to_pylist()], pa.string())
    taken: pa.Array = pc.take(tokens, encoded.indices)
    return taken


def _run_python(
    job: PythonOrMockJob,
    frames: Mapping[str, tuple[pa.Table, frozenset[str]]],
    *,
    units: pa.Table,
    cohorts: SketchRequest | None,
) -> pa.Table:
    inputs = {name: job_frame(table) for name, (table, _units) in frames.items()}
    pseudonyms: set[str] = set()
    for _table, tokens in frames.values():
        pseudonyms |= tokens
    unit = job.inputs[0].unit if job.inputs else ""
    try:
        outcome = run_python_job(
            job.code,
            inputs,
            unit_column=unit,
            modules=job.modules,
            thresholds=job.thresholds,
            limits=job.py_limits,
            mock=job.mode == "mock",
            pseudonyms=frozenset(pseudonyms),
            group_columns={q.name: frozenset(q.group_columns) for q in job.inputs},
            legacy_disclosure=job.legacy_disclosure,
        )
    except PyJobError as exc:
        raise _as_execution_error(exc) from None
    if isinstance(outcome, AggregateOutput):
        return _aggregate_table(outcome, units=units, cohorts=cohorts)
    return _withheld_table(outcome)


def job_frame(table: pa.Table) -> pd.DataFrame:
    """An input table as a Python job receives it: DATE columns as ``datetime64`` (so ``.dt.year``
    works), not as Python ``date`` objects in an object column.

    >>> import datetime as dt
    >>> frame = job_frame(pa.table({"d": pa.array([dt.date(1965, 10, 3)])}))
    >>> str(frame["d"].dtype), int(frame["d"].dt.year.iloc[0])
    ('datetime64[ms]', 1965)
    """
    frame: pd.DataFrame = table.to_pandas(date_as_object=False)
    return frame


def _as_execution_error(exc: PyJobError) -> ExecutionError:
    """The runtime's error as an executor error the parent can rebuild; its code leads the detail."""
    detail = f"{exc.code}: {exc.detail}"
    if exc.findings:
        detail += " (" + "; ".join(exc.findings[:20]) + ")"
    if isinstance(exc, PyJobResourceExhausted):
        return ResourceExhausted(detail)
    return ExecutionFailed(detail)


def _aggregate_table(outcome: AggregateOutput, *, units: pa.Table, cohorts: SketchRequest | None) -> pa.Table:
    frame: pd.DataFrame = outcome.table
    # The unit lists become ledger sketches here, or are dropped: no pseudonym leaves the sandbox.
    table = sketch_aggregate_cohorts(pa.Table.from_pandas(frame, preserve_index=False), units, cohorts)
    meta = {OUTCOME_KEY: b"aggregate", REPORT_KEY: _json(outcome.report.to_dict())}
    if outcome.printed is not None:
        meta[PRINTED_KEY] = _json(outcome.printed.to_dict())
    return table.replace_schema_metadata(meta)


def _withheld_table(outcome: WithheldOutput) -> pa.Table:
    schema = pa.schema([], metadata={OUTCOME_KEY: b"withheld", WITHHELD_KEY: _json(outcome.to_dict())})
    return pa.Table.from_batches([], schema=schema)


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
