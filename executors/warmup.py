"""Importing this module warms the current process up for sandbox jobs; only the fork server does.

The fork server imports it once (``local.PRELOAD``) so that every forked job inherits what the first
Parquet read, DuckDB connection and Arrow UDF registration would otherwise initialise per job (about
25 ms of a small job). The warm-up runs on a two-row synthetic table, holds nothing afterwards, and
leaves no DuckDB threads behind (the connection is closed; Arrow's thread pools are fork-aware).
"""

from __future__ import annotations

import pyarrow as pa

from executors import engine, storage
from executors.base import Limits


def warm_up() -> None:
    table = pa.table({"unit": [1, 2], "label": ["a", "b"]})
    part = storage.load_parts([storage.parquet_bytes(table)])
    engine.run_query(
        f"SELECT {engine.KEYED_HASH_FUNCTION}(label) AS h, COUNT(DISTINCT unit) AS n FROM t GROUP BY 1",
        {"t": part},
        keyed_hash_key=bytes(32),
        limits=Limits(memory_mb=64, threads=1),
    )


warm_up()
