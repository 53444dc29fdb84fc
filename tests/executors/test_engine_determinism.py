"""Replay reproduces a release bit for bit: the same query over the same tables gives the same bytes.

A SUM or AVG over DOUBLE that the engine splits across threads combines its partial sums in whichever
order the threads finish; floating-point addition is not associative, so the last bits would change
from run to run and an honest replay would report a release that differs.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from executors.base import Limits
from executors.engine import run_query

RUNS = 25
FLOAT_AGGREGATES = """\
SELECT grp, SUM(x) AS total, AVG(x) AS mean, SUM(x * y) AS weighted, STDDEV_SAMP(y) AS spread
FROM t
GROUP BY grp
ORDER BY grp"""


def _many_batches(rows: int, *, batches: int) -> pa.Table:
    """A table in many record batches with values of very different magnitudes, as a job's parts are."""
    rng = np.random.default_rng(19)
    grp = rng.integers(0, 3, rows)
    x = rng.random(rows) * 10.0 ** rng.integers(-3, 9, rows)
    y = rng.normal(size=rows)
    table = pa.table({"grp": grp, "x": x, "y": y})
    return pa.Table.from_batches(table.to_batches(max_chunksize=rows // batches))


def _bits(table: pa.Table) -> list[tuple[object, ...]]:
    """Every value exactly: floats by their hex form, so a change in the last bit shows."""
    return [tuple(v.hex() if isinstance(v, float) else v for v in row.values()) for row in table.to_pylist()]


def test_a_float_aggregate_gives_the_same_bits_every_run_whatever_the_jobs_threads() -> None:
    table = _many_batches(400_000, batches=64)
    limits = Limits(memory_mb=512, threads=4)
    first = _bits(run_query(FLOAT_AGGREGATES, {"t": table}, keyed_hash_key=None, limits=limits))
    for _ in range(RUNS - 1):
        again = _bits(run_query(FLOAT_AGGREGATES, {"t": table}, keyed_hash_key=None, limits=limits))
        assert again == first
