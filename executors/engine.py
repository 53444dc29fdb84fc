"""The locked-down DuckDB runtime: one SQL string over in-memory Arrow tables.

Defence in depth (docs/design.md §5): even a query that slipped past static analysis cannot read or write a
file, open a URL, attach a database, install or load an extension, change a setting, spill plaintext
to a temporary file, or scan a Python variable by name. The order matters: tables and the keyed-hash
function are registered first, then external access is switched off and the configuration locked;
every setting is read back and verified before the query runs.

Engine error text can quote data values (a failed cast names the value), so errors leave this module
as a fixed sentence plus the engine's error class, never the engine's message.
"""

from __future__ import annotations

import math
import platform
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType

import duckdb
import duckdb.func
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crypto.errors import CryptoError
from crypto.pseudonym import keyed_hasher
from executors.base import Limits
from executors.errors import ExecutionError, ExecutionFailed, ResourceExhausted
from executors.exact_sums import FLOAT_SUMS, OUT_OF_RANGE, OneThread, Parallel, plan_threads
from policies.exact_sums import scale_for

KEYED_HASH_FUNCTION = "sbx_keyed_hash"

# Settings given at connect time: they must hold before anything is registered.
_CONNECT_CONFIG: Mapping[str, str | bool | int] = MappingProxyType(
    {
        "python_enable_replacements": False,  # else `FROM some_variable` scans a Python object by name
        "python_scan_all_frames": False,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_community_extensions": False,
        "allow_unsigned_extensions": False,
        "allow_persistent_secrets": False,
        "temp_directory": "",  # no spilling: plaintext never reaches a temporary file
        # No asynchronous-I/O threads: the engine reads nothing but registered memory, and a connection
        # opened before a fork (a warm sandbox's) must not leave threads behind in the parent's image.
        "async_threads": 0,
    }
)

# What the engine must report after lock-down; checked by reading every setting back.
_EXPECTED_FLAGS: Mapping[str, bool] = MappingProxyType(
    {
        "enable_external_access": False,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_community_extensions": False,
        "allow_unsigned_extensions": False,
        "python_enable_replacements": False,
        "lock_configuration": True,
    }
)


def engine_versions() -> dict[str, str]:
    """Versions of what computes a result (recorded in receipts)."""
    return {
        "duckdb": duckdb.__version__,
        "pyarrow": pa.__version__,
        "python": platform.python_version(),
        # How SUM and AVG of floats are computed: a replay of a job from before the exact sums (one
        # thread, plain addition) may differ in the last bits, and its report then says why.
        "float_sums": FLOAT_SUMS,
    }


def use_job_memory_pool() -> None:
    """Route this process's Arrow allocations to jemalloc (the system allocator where pyarrow has none).

    Only for a sandbox child, which exists for one job: the pool is process-wide. Measured in freshly
    forked children on a 10-million-row aggregate (8 runs in random order): with Arrow's default
    mimalloc pool the engine's scan of the loaded tables cost about 0.55 s more CPU (median query CPU
    2.49 s against 1.93 s), while jemalloc also kept mimalloc's fast Parquet parsing.
    """
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:
        pool = pa.system_memory_pool()
    pa.set_memory_pool(pool)


def _keyed_hash_udf(key: bytes) -> Callable[[pa.Array | pa.ChunkedArray], pa.Array]:
    token = keyed_hasher(key)

    def sbx_keyed_hash(values: pa.Array | pa.ChunkedArray) -> pa.Array:
        # One HMAC per distinct value, then a gather: group keys repeat a lot.
        encoded = pc.dictionary_encode(values)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        tokens = pa.array([token(v) for v in encoded.dictionary.to_pylist()], pa.string())
        return pc.take(tokens, encoded.indices)

    return sbx_keyed_hash


def _memory_bytes(text: str) -> float:
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?i?B)\s*", text)
    if match is None:
        raise ExecutionFailed("the engine reported a memory limit this sandbox cannot read")
    scale = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
    scale |= {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
    return float(match.group(1)) * scale[match.group(2)]


# DuckDB combines per-thread partial aggregates in whichever order the threads finish, and floating-point
# addition is not associative: with several threads a SUM or AVG over DOUBLE differs in its last bits
# from run to run (DuckDB's "non-deterministic behavior" notes; measured: 20 runs of a 2-million-row
# grouped SUM gave 17 different results on 2 threads, one on 1 thread). Replay must reproduce the
# released bytes, so :func:`run_query` runs a query on the job's threads only as planned by
# ``executors.exact_sums`` (float sums made exact, every other part order-independent) and otherwise on
# ``QUERY_THREADS``: one thread, which is also what a warm sandbox's spare connection opens with.
QUERY_THREADS = 1

# Below this many input rows a query runs as written on one thread: there the exact sums cost more than
# the threads save (200,000 rows, interleaved in one process: 40.6 ms as written on one thread, 42.4 ms
# as written on two, 53.1 ms exact on two; 4,000,000 rows: 522 ms, 387 ms and 451 ms). The choice
# depends on the data alone, so a replay takes the same path whatever its thread count.
PARALLEL_MIN_ROWS = 1_000_000


def verify_lockdown(con: duckdb.DuckDBPyConnection, limits: Limits, *, threads: int = QUERY_THREADS) -> None:
    """Read every protective setting back (``threads``: the thread count the query was given); raise if
    any did not take effect."""
    names = [*_EXPECTED_FLAGS, "memory_limit", "threads", "temp_directory"]
    # One scalar per setting: a scan of duckdb_settings() formats every setting the engine has and
    # costs a small job about 3 ms more.
    query = "SELECT " + ", ".join(f"current_setting('{name}')" for name in names)
    rows = con.sql(query).fetchall()
    actual = {name: str(value) for name, value in zip(names, rows[0] if rows else (), strict=False)}
    wrong = [
        name for name, flag in _EXPECTED_FLAGS.items() if actual.get(name, "").lower() != str(flag).lower()
    ]
    if actual.get("threads") != str(threads):
        wrong.append("threads")
    if abs(_memory_bytes(actual.get("memory_limit", "0 B")) - limits.memory_mb * 2**20) > 2**20:
        wrong.append("memory_limit")
    if actual.get("temp_directory", "x") != "":
        wrong.append("temp_directory")
    if wrong:
        raise ExecutionFailed(f"engine lock-down did not take effect for: {', '.join(sorted(wrong))}")


def open_spare() -> duckdb.DuckDBPyConnection:
    """A connection opened before its job is known, by a warm sandbox waiting for its payload.

    Opening an engine costs a small job 10-15 ms (the catalog of built-in functions is built per
    database), so a warm sandbox pays it ahead of time. Only the connect-time settings hold yet: the
    job's memory limit is set by :func:`open_locked`, which then registers, locks and verifies exactly
    as for a fresh connection. One thread (:data:`QUERY_THREADS`), so nothing runs in the background
    meanwhile; :func:`open_locked` gives it the query's threads.
    """
    return duckdb.connect(":memory:", config={**_CONNECT_CONFIG, "threads": QUERY_THREADS})


def open_locked(
    tables: Mapping[str, pa.Table],
    *,
    keyed_hash_key: bytes | None,
    limits: Limits,
    spare: duckdb.DuckDBPyConnection | None = None,
    threads: int = QUERY_THREADS,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with ``tables`` registered under their SQL names, the keyed-hash
    function registered when a key is given, and everything else locked away.

    ``spare``: a connection from :func:`open_spare` to use instead of opening one (it is consumed:
    closed on failure, locked on success). ``threads``: the query's threads, one unless the query was
    planned to give the same bytes on any number (:func:`run_query`).
    """
    if spare is None:
        config: dict[str, str | bool | int | float | list[str]] = {
            **_CONNECT_CONFIG,
            "threads": threads,
            "memory_limit": f"{limits.memory_mb}MiB",
        }
        con = duckdb.connect(":memory:", config=config)
    else:
        con = spare
    try:
        if spare is not None:
            con.execute(f"SET threads = {int(threads)}")
            con.execute(f"SET memory_limit = '{int(limits.memory_mb)}MiB'")
        for name, table in tables.items():
            con.register(name, table)
        if keyed_hash_key is not None:
            con.create_function(
                KEYED_HASH_FUNCTION,
                _keyed_hash_udf(keyed_hash_key),
                [duckdb.sqltype("VARCHAR")],
                duckdb.sqltype("VARCHAR"),
                type=duckdb.func.PythonUDFType.ARROW,
                side_effects=False,
            )
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        verify_lockdown(con, limits, threads=threads)
    except BaseException:
        con.close()
        raise
    return con


def sanitize(exc: BaseException, limits: Limits) -> ExecutionError:
    """A value-free error for an engine failure: our sentence plus the engine's error class only."""
    name = type(exc).__name__
    if isinstance(exc, duckdb.OutOfMemoryException | MemoryError):
        return ResourceExhausted(f"the query ran out of its memory limit of {limits.memory_mb} MiB")
    if isinstance(exc, duckdb.PermissionException):
        return ExecutionFailed(
            "the query tried to use a file, URL, database, extension or secret, which the sandbox forbids"
        )
    if isinstance(exc, duckdb.InvalidInputException | duckdb.CatalogException | duckdb.ParserException):
        return ExecutionFailed(f"the engine refused the statement ({name}); dry-run it to see why")
    if isinstance(exc, CryptoError):
        return ExecutionFailed(f"the keyed-hash function failed ({name})")
    return ExecutionFailed(
        f"the query failed in the engine: {name}; the engine's message is withheld because it can quote "
        "data. Check the casts, arithmetic and function arguments of the query, or dry-run it to see "
        "the policy's findings"
    )


def _require_one_select(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Exactly one read statement: no DDL before it (a macro shadowing ``sbx_keyed_hash``), no COPY."""
    statements = con.extract_statements(sql)
    if len(statements) != 1:
        raise ExecutionFailed(f"the engine runs exactly one statement, got {len(statements)}")
    if statements[0].type != duckdb.StatementType.SELECT:
        raise ExecutionFailed(f"the engine runs only SELECT statements, got {statements[0].type.name}")


def run_query(
    sql: str,
    tables: Mapping[str, pa.Table],
    *,
    keyed_hash_key: bytes | None,
    limits: Limits,
    spare: duckdb.DuckDBPyConnection | None = None,
    parameters: Mapping[str, str] | None = None,
    keep_row_order: bool = False,
) -> pa.Table:
    """Run ``sql`` on a locked-down in-memory engine over ``tables``; the result as an Arrow table.

    The query runs on ``limits.threads`` threads where ``executors.exact_sums`` can make its result the
    same bytes on any number of threads, and on one thread otherwise. ``keep_row_order``: the caller
    reads the rows in order (a Python job's input), so the query runs on one thread, where the order
    is the same every run.

    >>> t = pa.table({"district": ["a", "a", "b"], "pid": [1, 2, 3]})
    >>> out = run_query("SELECT district, COUNT(DISTINCT pid) AS n FROM t GROUP BY 1 ORDER BY 1",
    ...                 {"t": t}, keyed_hash_key=None, limits=Limits(memory_mb=256, threads=1))
    >>> out.to_pylist()
    [{'district': 'a', 'n': 2}, {'district': 'b', 'n': 1}]
    >>> run_query("SELECT hash($k, 1) = hash($k, 1) AS same", {}, keyed_hash_key=None,
    ...           limits=Limits(memory_mb=256, threads=1), parameters={"k": "secret"}).to_pylist()
    [{'same': True}]
    """
    # Planned whatever the thread count, so one thread and several give the same bytes.
    plan: Parallel | OneThread = OneThread("the caller reads the rows in order")
    schemas = {name: table.schema for name, table in tables.items()}
    if sum(table.num_rows for table in tables.values()) < PARALLEL_MIN_ROWS:
        plan = OneThread("a small input: one thread is faster than exact sums on several")
    elif not keep_row_order:
        plan = plan_threads(sql, schemas, scale_of=_ScaleOf(tables))
    if isinstance(plan, Parallel):
        con = open_locked(
            tables, keyed_hash_key=keyed_hash_key, limits=limits, spare=spare, threads=limits.threads
        )
        try:
            result = _run_parallel(con, sql, plan.sql, parameters, limits)
            if result is None and plan.one_limb:
                # A one-limb sum overflowed (a join added rows): the same query in two limbs.
                two_limbs = plan_threads(sql, schemas)
                if isinstance(two_limbs, Parallel):
                    result = _run_parallel(con, sql, two_limbs.sql, parameters, limits)
            if result is not None and plan.renames:
                # Bound, not run: the names the query as written gives its columns.
                result = result.rename_columns(_relation(con, sql, parameters).columns)
        finally:
            con.close()
        if result is not None:
            return result
        spare = None  # consumed: the query runs again as written on a fresh one-thread engine
    return _run(
        open_locked(tables, keyed_hash_key=keyed_hash_key, limits=limits, spare=spare),
        sql,
        parameters,
        limits,
    )


class _ScaleOf:
    """The one-limb scale of a float column (``policies.exact_sums.scale_for``): from its largest and
    smallest nonzero magnitudes over every registered table that has a column of that name and from
    the total row count, an upper bound of the rows any SUM over these tables adds (a join may add
    more: its sum then overflows, and the query runs in two limbs). A function of the data alone, as
    replay needs. Each column is read once per query, however many sums and averages name it."""

    def __init__(self, tables: Mapping[str, pa.Table]) -> None:
        self._tables = tables
        self._rows = sum(table.num_rows for table in tables.values())
        self._scales: dict[str, int | None] = {}

    def __call__(self, column: str) -> int | None:
        if column not in self._scales:
            largest, smallest = 0.0, math.inf
            for table in self._tables.values():
                for index, field in enumerate(table.schema):
                    if field.name.lower() == column:
                        high, low = _magnitudes(table.column(index))
                        largest, smallest = max(largest, high), min(smallest, low)
            self._scales[column] = scale_for(largest, smallest, self._rows)
        return self._scales[column]


#: Values per block of :func:`_magnitudes`: 256 KiB of doubles, so a block's second and third reads
#: come from the CPU's cache and the column crosses the memory bus once.
_BLOCK = 1 << 15


def _magnitudes(column: pa.ChunkedArray) -> tuple[float, float]:
    """The largest and the smallest nonzero magnitude in a float column (infinite where there is none),
    read from its value buffers: a null's slot holds some value too, which can only widen the range (a
    smaller scale or two limbs, still exact); a NaN or an infinity makes the largest infinite (two
    limbs). numpy's max and min block by block, a further masked pass only for a block with values of
    both signs or zeros. Arrow's NaN-aware min_max costs about 40 ms for 4 million values and numpy's
    absolute values (a copy) about 95 ms on a loaded machine; a max and a min over the whole column
    3.2 ms of CPU, over blocks that stay in the cache 2.4 ms."""
    largest, smallest = 0.0, math.inf
    for chunk in column.chunks:
        if not pa.types.is_floating(chunk.type):
            return math.inf, 0.0
        data = chunk.buffers()[1]
        if data is None or len(chunk) == 0:
            continue
        dtype = chunk.type.to_pandas_dtype()
        values = np.frombuffer(data, dtype=dtype, count=chunk.offset + len(chunk))[chunk.offset :]
        for start in range(0, len(values), _BLOCK):
            block = values[start : start + _BLOCK]
            top, bottom = float(block.max()), float(block.min())
            if math.isnan(top) or math.isnan(bottom):
                return math.inf, 0.0
            largest = max(largest, top, -bottom)
            if bottom > 0:
                smallest = min(smallest, bottom)
            elif top < 0:
                smallest = min(smallest, -top)
            else:
                positive = float(np.min(block, where=block > 0, initial=np.inf))
                negative = float(np.max(block, where=block < 0, initial=-np.inf))
                smallest = min(smallest, positive, -negative)
    return largest, smallest


def _run_parallel(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    planned: str,
    parameters: Mapping[str, str] | None,
    limits: Limits,
) -> pa.Table | None:
    """The planned query's result on ``con``; None where the query must run as written on one thread
    instead: a summed value lies outside the exact sum's range."""
    try:
        _require_one_select(con, sql)
        # No second bind of the query as written to compare column types: it cost a small job about
        # 6 ms, and the plan rewrites only sums whose argument it read as a float.
        table: pa.Table = _relation(con, planned, parameters).to_arrow_table()
    except ExecutionError:
        raise
    except duckdb.InvalidInputException as exc:
        if OUT_OF_RANGE in str(exc):
            return None
        raise sanitize(exc, limits) from None
    except (duckdb.ConversionException, duckdb.OutOfRangeException):
        # A NaN, an infinity or a value beyond a limb's range (or the query's own failing cast, which
        # the run as written then reports as usual).
        return None
    except (duckdb.Error, MemoryError, CryptoError) as exc:
        raise sanitize(exc, limits) from None  # from None: the engine's text must not travel on
    return table


def _relation(
    con: duckdb.DuckDBPyConnection, sql: str, parameters: Mapping[str, str] | None
) -> duckdb.DuckDBPyRelation:
    return con.sql(sql, params=dict(parameters)) if parameters else con.sql(sql)


def _run(
    con: duckdb.DuckDBPyConnection, sql: str, parameters: Mapping[str, str] | None, limits: Limits
) -> pa.Table:
    try:
        _require_one_select(con, sql)
        result: pa.Table = _relation(con, sql, parameters).to_arrow_table()
    except ExecutionError:
        raise
    except (duckdb.Error, MemoryError, CryptoError) as exc:
        raise sanitize(exc, limits) from None  # from None: the engine's text must not travel on
    finally:
        con.close()
    return result
