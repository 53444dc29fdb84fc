"""Warming processes up for sandbox jobs, on synthetic data only.

Two kinds of warmth:

- :func:`prepare_fork_server` runs once in the fork server (``executors.fork_server_preload``) so that
  every forked job inherits what the first Parquet read, DuckDB connection and Arrow UDF registration
  would otherwise initialise per job (about 25 ms of a small job). It holds nothing afterwards but the
  synthetic parts below and leaves no DuckDB threads behind (the connection is closed; Arrow's thread
  pools are fork-aware).
- :func:`warm_sandbox` runs inside a *warm sandbox*: a job's process forked before its job arrives
  (``LocalExecutor(warm_sandboxes=...)``). It opens the engine the job will use and walks the job's
  path once (decrypt, parse, register, group and count distinct) over a small synthetic table, so
  that the fresh process has opened its engine (10-15 ms) and touched the code the job will run before
  the job comes: a forked child otherwise pays for both on the job's time.
"""

from __future__ import annotations

import functools

import duckdb
import numpy as np
import pyarrow as pa

from crypto.envelope import seal, unseal
from executors import engine, storage
from executors.base import Limits

# The walk is for code and the engine, not for data volume: on the demo's small job, walking 65,536
# synthetic rows instead of 2,048 left the job's load and query times unchanged but made the sandbox
# ready later (it warms up while the gateway finishes the previous job), so a small walk it is.
WARM_ROWS = 2_048
_WARM_PARTS = 4
_WARM_KEY = bytes(32)  # synthetic data under a constant key: nothing here is secret
_WARM_AAD = b"warm-up"
_WARM_TABLE = "sbx_warm_up"
_WARM_SQL = (
    f"SELECT label, COUNT(DISTINCT unit) AS n, AVG(TRY(CASE WHEN value < 0 THEN 0 ELSE value END)) AS v, "
    f"COUNT(*) AS c FROM (SELECT * FROM {_WARM_TABLE} WHERE TRY(label <> 'z')) AS w GROUP BY label"
)


@functools.cache
def _synthetic_parts() -> tuple[bytes, ...]:
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "unit": pa.array(rng.permutation(WARM_ROWS)),
            "label": pa.array(rng.choice(["a", "b", "c", "d"], WARM_ROWS)),
            "value": pa.array(rng.integers(0, 1_000_000, WARM_ROWS)),
        }
    )
    size = WARM_ROWS // _WARM_PARTS
    return tuple(
        seal(_WARM_KEY, storage.parquet_bytes(table.slice(i * size, size)), aad=_WARM_AAD)
        for i in range(_WARM_PARTS)
    )


def prepare_fork_server() -> None:
    """Initialise, once, what every job would otherwise initialise itself (see the module docstring)."""
    _synthetic_parts()  # built here, inherited by every warm sandbox
    table = pa.table({"unit": [1, 2], "label": ["a", "b"]})
    part = storage.load_parts([storage.parquet_bytes(table)])
    engine.run_query(
        f"SELECT {engine.KEYED_HASH_FUNCTION}(label) AS h, COUNT(DISTINCT unit) AS n FROM t GROUP BY 1",
        {"t": part},
        keyed_hash_key=bytes(32),
        limits=Limits(memory_mb=64, threads=1),
    )


def warm_sandbox(spare: duckdb.DuckDBPyConnection) -> None:
    """Walk a job's path once on ``spare`` (from ``engine.open_spare``) over synthetic data; leaves the
    connection as it found it (the synthetic table is unregistered)."""
    plaintexts = [unseal(_WARM_KEY, part, aad=_WARM_AAD) for part in _synthetic_parts()]
    table = storage.load_parts(plaintexts, dictionaries=True)
    spare.register(_WARM_TABLE, table)
    try:
        spare.sql(_WARM_SQL).to_arrow_table()
    finally:
        spare.unregister(_WARM_TABLE)
